"""Fine-tuning and training from scratch: models, datasets, collator, Trainer, calibration and the saved folder.

``scripts/train.py`` is a thin :class:`~transformers.HfArgumentParser` front end over this module:

1. :func:`check_output_dir` refuses to reuse a stale, non-empty output folder (``--resume`` continues from
   its last checkpoint on purpose; ``--overwrite_output_dir`` starts afresh);
2. :func:`owlfinder.train.clipsets.load_clip_sets` / :func:`~owlfinder.train.clipsets.train_validation_sets`
   load clips and split them by group;
3. :func:`build_model` makes the model and feature extractor: a Hub id or local folder to fine-tune, or a
   named small architecture (:data:`NAMED_CONFIGS`) or config JSON to train from scratch, offline;
4. :class:`ClipDataset` (on-the-fly augmentation, :mod:`owlfinder.train.augment`) and :class:`AudioCollator`
   (batched feature extraction) feed :class:`OwlTrainer`, a :class:`~transformers.Trainer` with a
   class-weighted loss or a balanced sampler, and :class:`TimeBudgetCallback` for time-boxed runs;
5. :func:`finalize` calibrates the threshold on validation (:mod:`owlfinder.train.calibration`), writes it into
   the saved ``config.json`` with the validation metrics, and writes the model card.

Kept as one module (about 520 lines): these five steps are one pipeline around one Trainer subclass.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer

from owlfinder.audio import resample
from owlfinder.data.schema import LABELS, SAMPLE_RATE
from owlfinder.errors import OwlFinderError
from owlfinder.evaluation.metrics import binary_metrics
from owlfinder.train.augment import AugmentConfig, Augmenter
from owlfinder.train.calibration import Calibration, calibrate_threshold, calibration_config
from owlfinder.train.clipsets import ClipSet
from owlfinder.train.distributed import BalancedSampler, TimeBudgetCallback, broadcast_flag

__all__ = [
    "CHECKPOINT_PREFIX",
    "NAMED_CONFIGS",
    "AudioCollator",
    "BalancedSampler",
    "ClipDataset",
    "OwlTrainer",
    "TimeBudgetCallback",
    "TrainingError",
    "broadcast_flag",
    "build_model",
    "check_output_dir",
    "class_weights",
    "finalize",
    "last_checkpoint",
    "predict_scores",
]

CHECKPOINT_PREFIX = "checkpoint-"


class TrainingError(OwlFinderError):
    """A training run that cannot start or finish; ``str(err)`` is one line."""


# ------------------------------------------------------------------------------------------- output dir


def last_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The ``checkpoint-<step>`` folder with the highest step in ``output_dir`` (``None`` when none)."""
    d = Path(output_dir)
    if not d.is_dir():
        return None
    ckpts = [p for p in d.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX)
             and p.name[len(CHECKPOINT_PREFIX):].isdigit()]
    return max(ckpts, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):])) if ckpts else None


def check_output_dir(output_dir: str | os.PathLike, *, resume: bool = False, overwrite: bool = False,
                     resume_from_checkpoint: str | None = None) -> str | None:
    """Decide what a run may do with ``output_dir``; return the checkpoint to resume from, if any.

    - empty or missing: a fresh run;
    - ``resume``: continue from its last checkpoint (error when there is none);
    - ``resume_from_checkpoint``: that checkpoint (must exist);
    - ``overwrite``: old ``checkpoint-*`` folders are deleted (so nothing stale is resumed or kept) and the
      rest is overwritten;
    - otherwise a non-empty folder is refused.

    Raises:
        TrainingError: one line saying what to do.
    """
    d = Path(output_dir)
    if resume and overwrite:
        raise TrainingError("--resume and --overwrite_output_dir contradict each other; pick one")
    if resume_from_checkpoint:
        if not Path(resume_from_checkpoint).is_dir():
            raise TrainingError(f"checkpoint {resume_from_checkpoint} does not exist")
        return str(resume_from_checkpoint)
    if d.exists() and not d.is_dir():
        raise TrainingError(f"output folder {d} is a file")
    non_empty = d.is_dir() and any(d.iterdir())
    if resume:
        ckpt = last_checkpoint(d)
        if ckpt is None:
            raise TrainingError(f"--resume: no {CHECKPOINT_PREFIX}* folder in {d} to continue from")
        return str(ckpt)
    if non_empty and not overwrite:
        raise TrainingError(f"output folder {d} is not empty; pass --resume to continue its last checkpoint or "
                            "--overwrite_output_dir to start afresh")
    if non_empty and overwrite:
        for p in d.iterdir():
            if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX):
                shutil.rmtree(p)
    return None


# ----------------------------------------------------------------------------------------------- models

#: Small architectures to train from scratch offline (``--from_config NAME``): (config kwargs, extractor
#: kwargs) keyed by name. ``owlnet`` is the bundled starter model's.
NAMED_CONFIGS: dict[str, dict] = {
    # The previous starter (before OwlNet): 128 mel bands (about 23 Hz apart below 1 kHz, to tell a 350-550 Hz Powerful Owl from a
    # 600-750 Hz Boobook), 50 ms FFT (20 Hz bins), 25 ms frames: 200 frames, 100 encoder positions per 5 s.
    "owl-whisper-tiny": {
        "model_type": "whisper",
        "config": dict(num_mel_bins=128, d_model=64, encoder_layers=2, encoder_attention_heads=4,
                       encoder_ffn_dim=256, classifier_proj_size=32),
        "feature_extractor": dict(feature_size=128, hop_length=400, n_fft=800),
    },
    "owl-whisper-tiny-10ms": {  # Whisper's own 10 ms frames and 25 ms FFT, 64 mel bands (250 positions)
        "model_type": "whisper",
        "config": dict(num_mel_bins=64, d_model=64, encoder_layers=2, encoder_attention_heads=4,
                       encoder_ffn_dim=256, classifier_proj_size=32),
        "feature_extractor": dict(feature_size=64, hop_length=160, n_fft=400),
    },
    "owl-whisper-small": {
        "model_type": "whisper",
        "config": dict(num_mel_bins=64, d_model=96, encoder_layers=3, encoder_attention_heads=4,
                       encoder_ffn_dim=256, classifier_proj_size=32),
        "feature_extractor": dict(feature_size=64, hop_length=160, n_fft=400),
    },
    "owl-whisper-micro": {  # for tests: trains in seconds
        "model_type": "whisper",
        "config": dict(num_mel_bins=32, d_model=16, encoder_layers=1, encoder_attention_heads=2,
                       encoder_ffn_dim=32, classifier_proj_size=8),
        "feature_extractor": dict(feature_size=32, hop_length=160, n_fft=400),
    },
    # The bundled starter's architecture (owlfinder.owlnet): per-band background removal, a small pitch-aware CNN.
    "owlnet": {"model_type": "owlnet", "config": {}, "feature_extractor": {}},
    "owl-ast-tiny": {
        "model_type": "audio-spectrogram-transformer",
        "config": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                       num_mel_bins=64, patch_size=16, frequency_stride=16, time_stride=16),
        "feature_extractor": dict(num_mel_bins=64),
    },
}


def _labels_kwargs(label_names: Sequence[str]) -> dict:
    id2label = {i: n for i, n in enumerate(label_names)}
    return {"num_labels": len(label_names), "id2label": id2label, "label2id": {n: i for i, n in id2label.items()}}


def _scratch_config_and_extractor(model_type: str, cfg_kwargs: dict, fe_kwargs: dict, *, label_names,
                                  sampling_rate: int, window_s: float):
    from transformers import (
        ASTConfig,
        ASTFeatureExtractor,
        AutoConfig,
        Wav2Vec2FeatureExtractor,
        WhisperConfig,
        WhisperFeatureExtractor,
    )

    labels = _labels_kwargs(label_names)
    if model_type == "owlnet":
        from owlfinder.owlnet import OwlNetConfig, OwlNetFeatureExtractor

        fe = OwlNetFeatureExtractor(**{"sampling_rate": sampling_rate, **fe_kwargs})
        return OwlNetConfig(**{"n_bins": fe.feature_size, **cfg_kwargs, **labels}), fe
    if model_type == "whisper":
        fe_kw = dict(feature_size=cfg_kwargs.get("num_mel_bins", 80), sampling_rate=sampling_rate, hop_length=160,
                     chunk_length=int(round(window_s)), n_fft=400)
        fe_kw.update(fe_kwargs)
        fe = WhisperFeatureExtractor(**fe_kw)
        if abs(fe.chunk_length - window_s) > 1e-6:
            raise TrainingError(f"Whisper extractors need a whole number of seconds per window, not {window_s}")
        # Tiny vocabulary with valid special ids: the decoder is never used for classification.
        kw = dict(vocab_size=8, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
                  decoder_layers=1, decoder_attention_heads=cfg_kwargs.get("encoder_attention_heads", 2),
                  decoder_ffn_dim=cfg_kwargs.get("encoder_ffn_dim", 64), max_target_positions=8,
                  max_source_positions=fe.nb_max_frames // 2, begin_suppress_tokens=None,
                  suppress_tokens=None, num_mel_bins=fe.feature_size)
        kw.update(cfg_kwargs)
        kw.update(labels)
        return WhisperConfig(**kw), fe
    if model_type == "audio-spectrogram-transformer":
        frames = int(round(window_s * 100))  # 10 ms frame shift
        fe_kw = dict(num_mel_bins=cfg_kwargs.get("num_mel_bins", 128), max_length=frames, sampling_rate=sampling_rate)
        fe_kw.update(fe_kwargs)
        fe = ASTFeatureExtractor(**fe_kw)
        kw = dict(max_length=fe.max_length, num_mel_bins=fe.num_mel_bins)
        kw.update(cfg_kwargs)
        kw.update(labels)
        return ASTConfig(**kw), fe
    kw = dict(cfg_kwargs)
    kw.update(labels)
    config = AutoConfig.for_model(model_type, **kw)
    fe = Wav2Vec2FeatureExtractor(sampling_rate=sampling_rate, **fe_kwargs)
    return config, fe


def build_model(
    model_name_or_path: str | None = None,
    *,
    from_config: str | None = None,
    label_names: Sequence[str] = tuple(LABELS),
    sampling_rate: int = SAMPLE_RATE,
    window_s: float = 5.0,
    token: str | None = None,
    freeze_feature_encoder: bool = False,
    cache_dir: str | None = None,
):
    """The model to train and its feature extractor.

    Args:
        model_name_or_path: a Hub id or local folder to fine-tune (its classification head is replaced by
            one for ``label_names``).
        from_config: instead, a fresh model: a name from :data:`NAMED_CONFIGS`, a JSON file (``model_type``
            plus config keys, optionally ``feature_extractor``: extractor keys), or a folder with
            ``config.json`` (and ``preprocessor_config.json``).
        label_names: class names in label order.
        sampling_rate: the clips' rate in Hz; a fresh extractor works at it unless its named config sets
            another (the collator and the detection engine resample).
        window_s: window length in s (sets Whisper's ``chunk_length`` and AST's ``max_length``).
        token: Hub token.
        freeze_feature_encoder: freeze a wav2vec2-style convolutional front end (fine-tuning only).

    Returns:
        ``(model, feature_extractor, description)``.

    Raises:
        TrainingError: a model that cannot be found, read or used for audio classification.
    """
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification

    if bool(model_name_or_path) == bool(from_config):
        raise TrainingError("give exactly one of --model_name_or_path and --from_config")
    if from_config:
        spec_path = Path(from_config)
        try:
            if from_config in NAMED_CONFIGS:
                spec = NAMED_CONFIGS[from_config]
                config, fe = _scratch_config_and_extractor(spec["model_type"], dict(spec["config"]),
                                                           dict(spec["feature_extractor"]), label_names=label_names,
                                                           sampling_rate=sampling_rate, window_s=window_s)
            elif spec_path.is_file():
                raw = json.loads(spec_path.read_text(encoding="utf-8"))
                model_type = raw.pop("model_type", None)
                if not model_type:
                    raise TrainingError(f"{spec_path}: a config JSON needs a 'model_type'")
                fe_kwargs = raw.pop("feature_extractor", {})
                for k in ("id2label", "label2id", "num_labels", "architectures"):
                    raw.pop(k, None)
                config, fe = _scratch_config_and_extractor(model_type, raw, fe_kwargs, label_names=label_names,
                                                           sampling_rate=sampling_rate, window_s=window_s)
            elif spec_path.is_dir() and (spec_path / "config.json").is_file():
                config = AutoConfig.from_pretrained(spec_path, **_labels_kwargs(label_names))
                fe = AutoFeatureExtractor.from_pretrained(spec_path)
            else:
                raise TrainingError(f"--from_config {from_config!r} is neither a known name "
                                    f"({', '.join(NAMED_CONFIGS)}) nor a config JSON file or folder")
            model = AutoModelForAudioClassification.from_config(config)
        except TrainingError:
            raise
        except (ValueError, KeyError, TypeError, OSError, json.JSONDecodeError) as err:
            raise TrainingError(f"--from_config {from_config}: {' '.join(str(err).split())[:200]}") from None
        desc = f"from config: {from_config} (random initialisation, {config.model_type})"
    else:
        try:
            fe = AutoFeatureExtractor.from_pretrained(model_name_or_path, token=token, cache_dir=cache_dir)
            model = AutoModelForAudioClassification.from_pretrained(
                model_name_or_path, token=token, cache_dir=cache_dir, ignore_mismatched_sizes=True,
                **_labels_kwargs(label_names))
        except OSError as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise TrainingError(f"cannot load {model_name_or_path!r}: {first}") from None
        except (ValueError, KeyError) as err:
            raise TrainingError(f"{model_name_or_path!r} is not an audio-classification model: "
                                f"{' '.join(str(err).split())[:200]}") from None
        if freeze_feature_encoder and hasattr(model, "freeze_feature_encoder"):
            model.freeze_feature_encoder()
        desc = str(model_name_or_path)
    return model, fe, desc


# ------------------------------------------------------------------------------------- data plumbing


class ClipDataset(torch.utils.data.Dataset):
    """A :class:`~owlfinder.train.clipsets.ClipSet` as ``{"audio": float32, "label": int}`` items.

    With an :class:`~owlfinder.train.augment.Augmenter` every access draws a fresh augmentation (training); without
    one items are the clips as stored (evaluation). Worker processes reseed the augmenter so that they do
    not repeat each other.
    """

    def __init__(self, clips: ClipSet, augmenter: Augmenter | None = None):
        self.clips = clips
        self.augmenter = augmenter
        self._worker_seeded = False

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict:
        y = self.clips.wave(int(i))
        label = int(self.clips.labels[int(i)])
        if self.augmenter is not None:
            if not self._worker_seeded:
                info = torch.utils.data.get_worker_info()
                if info is not None:
                    self.augmenter.rng = np.random.default_rng([info.seed % 2**32, info.id])
                self._worker_seeded = True
            y = self.augmenter(y, label == self.clips.positive_index)
        return {"audio": y, "label": label, "weight": float(self.clips.weights[int(i)])}


@dataclass
class AudioCollator:
    """Turns a list of ``{"audio", "label"}`` items into model inputs with one batched feature-extractor call.

    Clips at ``sampling_rate`` are resampled first when the extractor expects another rate.

    Only the extractor outputs the model's ``forward`` accepts are kept (``input_features`` for Whisper/AST,
    ``input_values`` for wav2vec2-style models, plus ``attention_mask`` where accepted).
    """

    feature_extractor: object
    sampling_rate: int
    input_names: tuple[str, ...] = ("input_features", "input_values", "attention_mask")

    @classmethod
    def for_model(cls, model, feature_extractor, sampling_rate: int) -> AudioCollator:
        params = set(inspect.signature(model.forward).parameters)
        names = tuple(n for n in ("input_features", "input_values", "attention_mask") if n in params)
        return cls(feature_extractor, sampling_rate, names)

    @property
    def model_rate(self) -> int:
        return int(getattr(self.feature_extractor, "sampling_rate", self.sampling_rate) or self.sampling_rate)

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        waves = [f["audio"] for f in features]
        if self.model_rate != self.sampling_rate:  # e.g. 16 kHz clips for an 8 kHz model
            waves = [resample(np.asarray(w, dtype=np.float32), self.sampling_rate, self.model_rate) for w in waves]
        batch = self.feature_extractor(waves, sampling_rate=self.model_rate, return_tensors="pt")
        out = {k: v for k, v in batch.items() if k in self.input_names and isinstance(v, torch.Tensor)}
        out["labels"] = torch.tensor([int(f["label"]) for f in features], dtype=torch.long)
        if any("weight" in f for f in features):  # per-clip loss weights (hard negatives), see OwlTrainer
            out["sample_weight"] = torch.tensor([float(f.get("weight", 1.0)) for f in features], dtype=torch.float32)
        return out


def class_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse-frequency class weights normalised to mean 1 (a class absent from ``labels`` gets 1)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 1.0)
    return torch.tensor(w / w.mean(), dtype=torch.float32)


# ---------------------------------------------------------------------------------------------- trainer


class OwlTrainer(Trainer):
    """A :class:`~transformers.Trainer` for imbalanced owl data.

    Args:
        balance: ``"loss"`` (class-weighted cross-entropy with ``class_weights``), ``"sampler"`` (draw
            training clips with replacement so each class is equally likely) or ``"none"``.
        class_weights: per-class loss weights for ``balance="loss"``.
        card_writer: called with the output folder to write the model card (used by ``push_to_hub``
            instead of the generic ``Trainer`` card).
    """

    # compute_loss below returns a per-batch mean, which Trainer must divide for gradient accumulation.
    loss_is_scaled_for_ga = False

    def __init__(self, *args, balance: str = "loss", class_weights: torch.Tensor | None = None,
                 card_writer: Callable[[str], None] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if balance not in ("loss", "sampler", "none"):
            raise TrainingError(f"balance must be loss, sampler or none, not {balance!r}")
        self.balance = balance
        self.class_weights = class_weights
        self.card_writer = card_writer
        # Our losses are per-batch means (the models' own, or the weighted one below), never sums over
        # num_items_in_batch; left True (models taking **kwargs), Trainer multiplies them by the number of
        # processes, so N processes would train at N times the learning rate.
        self.model_accepts_loss_kwargs = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        sample_weight = inputs.pop("sample_weight", None)
        uniform = sample_weight is None or bool(torch.all(sample_weight == 1))
        use_cw = self.balance == "loss" and self.class_weights is not None
        if (not use_cw and uniform) or "labels" not in inputs:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        labels = labels.to(logits.device)
        # Weighted mean: class weight times clip weight (hard negatives weigh more), as cross_entropy's
        # own weighted mean does for class weights alone.
        w = (self.class_weights.to(logits.device)[labels] if use_cw
             else torch.ones(len(labels), device=logits.device))
        if sample_weight is not None:
            w = w * sample_weight.to(logits.device)
        per = torch.nn.functional.cross_entropy(logits.float(), labels, reduction="none")
        loss = (per * w).sum() / w.sum().clamp_min(1e-12)
        return (loss, outputs) if return_outputs else loss

    def _get_train_sampler(self, train_dataset=None):
        ds = train_dataset if train_dataset is not None else self.train_dataset
        if self.balance == "sampler" and isinstance(ds, ClipDataset):
            # The same sequence in every process; accelerate gives each process its share of the batches.
            return BalancedSampler(ds.clips.labels, seed=self.args.seed)
        return super()._get_train_sampler(train_dataset)

    def create_model_card(self, *args, **kwargs) -> None:
        if self.card_writer is None:
            return super().create_model_card(*args, **kwargs)
        if self.is_world_process_zero():
            self.card_writer(self.args.output_dir)


# --------------------------------------------------------------------------------------- after training


@torch.inference_mode()
def predict_scores(model, feature_extractor, clips: ClipSet, *, batch_size: int = 32,
                   device: torch.device | str | None = None, progress: bool = True) -> np.ndarray:
    """Owl probability of every clip (no augmentation), in order."""
    from tqdm.auto import tqdm

    device = torch.device(device) if device is not None else next(model.parameters()).device
    collate = AudioCollator.for_model(model, feature_extractor, clips.sampling_rate)
    pos = int(model.config.label2id.get("owl", clips.positive_index))
    was_training = model.training
    model.eval()
    out = []
    for lo in tqdm(range(0, len(clips), batch_size), desc="scoring", unit="batch", disable=not progress):
        items = [{"audio": clips.wave(i), "label": 0} for i in range(lo, min(lo + batch_size, len(clips)))]
        batch = collate(items)
        batch.pop("labels")
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float()
        # The same float32 softmax as OwlClassifier.predict, so the threshold means the same at detection.
        out.append(torch.softmax(logits, dim=-1)[:, pos].cpu().numpy().astype(np.float64))
    if was_training:
        model.train()
    return np.concatenate(out) if out else np.zeros(0)


@dataclass
class FinalizeResult:
    """What :func:`finalize` measured and wrote."""

    calibration: Calibration
    metrics: dict
    config_entries: dict = field(default_factory=dict)


def finalize(model, feature_extractor, validation: ClipSet, output_dir: str | os.PathLike, *,
             target_precision: float, window_s: float, save: Callable[[str], None] | None = None,
             progress: bool = True) -> FinalizeResult:
    """Calibrate the threshold on ``validation``, store it in the model's config and save the model.

    The calibration (``owl_threshold``, ``owl_window_s``, ``owl_target_precision`` and ``owl_calibration``
    with the validation metrics at the threshold) is set on ``model.config`` so that every later save,
    including ``push_to_hub``, carries it; ``save`` (e.g. ``trainer.save_model``) then writes the folder.
    """
    scores = predict_scores(model, feature_extractor, validation, progress=progress)
    y = validation.is_owl.astype(int)
    cal = calibrate_threshold(y, scores, target_precision)
    m = binary_metrics(y, scores, cal.threshold)
    at_half = binary_metrics(y, scores, 0.5)
    metrics = {k: m[k] for k in ("precision", "recall", "f1", "f0.5", "average_precision", "tp", "fp", "fn", "tn",
                                 "n_pos", "n_neg")}
    extra = {"validation": metrics, "validation_at_0.5": {k: at_half[k] for k in ("precision", "recall", "f0.5")}}
    entries = calibration_config(cal, window_s=window_s, extra=extra)
    for k, v in entries.items():
        setattr(model.config, k, v)
    if save is not None:
        save(str(output_dir))
    else:
        model.save_pretrained(output_dir)
        feature_extractor.save_pretrained(output_dir)
    if math.isnan(float(metrics["average_precision"])):
        metrics["average_precision"] = None
    return FinalizeResult(cal, metrics, entries)


def model_size(model, folder: str | os.PathLike | None = None) -> tuple[int, float]:
    """(parameter count, size in MB of ``folder/model.safetensors`` or of fp32 weights)."""
    n = sum(p.numel() for p in model.parameters())
    f = Path(folder) / "model.safetensors" if folder else None
    size = f.stat().st_size / 1e6 if f is not None and f.exists() else n * 4 / 1e6
    return n, size


def default_augment(no_augment: bool = False) -> AugmentConfig | None:
    """The augmentation used unless switched off."""
    return None if no_augment else AugmentConfig()
