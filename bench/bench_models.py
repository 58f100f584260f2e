"""Models for the benchmark, built from configs with random weights (no Hub, no download).

- :func:`starter_standin`: the bundled starter model's architecture (OwlNet, ``owlfinder.owlnet``), used when
  ``space/models/powerful-owl-starter`` is not there yet. Speed does not depend on the weights.
- :func:`sewd_tiny_size`: a SEW-D model the size of ``asapp/sew-d-tiny-100k`` (hidden 384, 12 layers, 6 heads,
  intermediate 1536, 31-tap positional convolution; other settings are ``SEWDConfig`` defaults).
"""

from __future__ import annotations

import json
from pathlib import Path

LABELS = {0: "owl", 1: "not_owl"}

SEWD_TINY_SIZE = dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                      num_conv_pos_embeddings=31)


def _label_kwargs() -> dict:
    return {"num_labels": 2, "id2label": dict(LABELS), "label2id": {v: k for k, v in LABELS.items()}}


def _done(folder: Path) -> bool:
    return (folder / "config.json").exists() and (folder / "preprocessor_config.json").exists() and any(
        folder.glob("*.safetensors"))


def starter_standin(folder: str | Path, seed: int = 0) -> Path:
    """Save a randomly initialised model with the starter model's architecture (OwlNet, ``owlfinder.owlnet``)
    in ``folder`` (cached)."""
    import torch

    folder = Path(folder)
    if _done(folder):
        return folder
    from owlfinder.owlnet import OwlNetConfig, OwlNetFeatureExtractor, OwlNetForAudioClassification

    torch.manual_seed(seed)
    fe = OwlNetFeatureExtractor()
    model = OwlNetForAudioClassification(OwlNetConfig(n_bins=fe.feature_size, **_label_kwargs()))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    fe.save_pretrained(folder)
    return folder


def sewd_tiny_size(folder: str | Path, seed: int = 0) -> Path:
    """Save a randomly initialised SEW-D classifier the size of sew-d-tiny in ``folder`` (cached)."""
    import torch
    from transformers import SEWDConfig, SEWDForSequenceClassification, Wav2Vec2FeatureExtractor

    folder = Path(folder)
    if _done(folder):
        return folder
    torch.manual_seed(seed)
    cfg = SEWDConfig(**SEWD_TINY_SIZE, **_label_kwargs())
    model = SEWDForSequenceClassification(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True, return_attention_mask=False).save_pretrained(
        folder)
    return folder


def describe(folder: str | Path) -> str:
    """A short description of a saved model: architecture, size, sampling rate."""
    folder = Path(folder)
    cfg = json.loads((folder / "config.json").read_text())
    pre = json.loads((folder / "preprocessor_config.json").read_text())
    arch = (cfg.get("architectures") or [cfg.get("model_type", "?")])[0]
    size = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    dims = cfg.get("d_model") or cfg.get("hidden_size")
    layers = cfg.get("encoder_layers") or cfg.get("num_hidden_layers")
    if layers is None and "channels" in cfg:  # OwlNet: convolution stages, then temporal convolutions
        depth = f"{len(cfg['channels'])} conv stages + {len(cfg.get('temporal_dilations') or [])} temporal"
    else:
        depth = f"{layers} layers"
    return f"{arch} (width {dims}, {depth}, {size / 1e6:.1f} MB, {pre.get('sampling_rate')} Hz)"


#: AST's kaldi fbank gives 1 + (80000 - 400) // 160 = 498 frames for a 5 s window at 16 kHz.
AST_5S_FRAMES = 1 + (5 * 16000 - 400) // 160


def _spread_head(model, fe, seed: int = 1, target_std: float = 1.5) -> float:
    """Rescale the last Linear layer so the owl-vs-other logit difference has ``target_std`` over probe audio.

    A random head gives probabilities within 1e-3 of 0.5, which would hide any backend's drift; a fine-tuned
    head spreads them over (0, 1). The scale (hundreds of times for a random encoder, whose pooled features
    hardly vary) amplifies the int8 noise of the encoder with it, so the drifts measured are pessimistic.
    """
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    t = np.arange(5 * 16000) / 16000
    probe = [rng.standard_normal(len(t)) * a + (b * np.sin(2 * np.pi * f * t))
             for a, b, f in zip(rng.uniform(0.001, 0.3, 12), rng.uniform(0, 0.3, 12), rng.uniform(200, 3000, 12), strict=False)]
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        x = fe([p.astype(np.float32) for p in probe], sampling_rate=16000, return_tensors="pt")
        logits = model.eval()(**{model.main_input_name: x[model.main_input_name]}).logits
        d = logits[:, 0] - logits[:, 1]
        s = float(target_std / d.std().clamp_min(1e-12))
        last.weight.mul_(s)
        last.bias.mul_(s)
        shift = s * float(d.mean()) / 2
        last.bias[0] -= shift
        last.bias[1] += shift
    return s


def _save_spread(folder: Path, model, fe) -> Path:
    model.config.owl_head_scale = _spread_head(model, fe)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    fe.save_pretrained(folder)
    return folder


def sewd_tiny_size_spread(folder: str | Path, seed: int = 0) -> Path:
    """:func:`sewd_tiny_size` with a spread head (for score differences between backends)."""
    import torch
    from transformers import SEWDConfig, SEWDForSequenceClassification, Wav2Vec2FeatureExtractor

    folder = Path(folder)
    if _done(folder):
        return folder
    torch.manual_seed(seed)
    model = SEWDForSequenceClassification(SEWDConfig(**SEWD_TINY_SIZE, **_label_kwargs()))
    return _save_spread(folder, model, Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True))


def wav2vec2_base_size(folder: str | Path, seed: int = 0) -> Path:
    """A wav2vec2 classifier the size of ``facebook/wav2vec2-base`` (95 M parameters), spread head."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    folder = Path(folder)
    if _done(folder):
        return folder
    torch.manual_seed(seed)
    model = Wav2Vec2ForSequenceClassification(Wav2Vec2Config(**_label_kwargs()))
    return _save_spread(folder, model, Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True))


def ast_size(folder: str | Path, seed: int = 0) -> Path:
    """An AST classifier the size of ``MIT/ast-finetuned-audioset`` (87 M parameters) on 5 s windows, spread head."""
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    folder = Path(folder)
    if _done(folder):
        return folder
    torch.manual_seed(seed)
    model = ASTForAudioClassification(ASTConfig(max_length=AST_5S_FRAMES, **_label_kwargs()))
    return _save_spread(folder, model, ASTFeatureExtractor(max_length=AST_5S_FRAMES))
