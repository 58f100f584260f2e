"""Offline stand-ins for what a user fine-tunes from the Hub, saved in the Hub's own layouts.

- :func:`write_seed_dataset`: a dataset folder laid out like ``sgoedecke/powerful_owl_5s_16k_v2``
  (``data/train-00000-of-00001.parquet`` with the audio bytes embedded, written by ``datasets``, and a
  ``README.md`` whose ``dataset_info`` carries the ClassLabel names), in either label order;
- :func:`save_base_checkpoint`: small-config checkpoints shaped like the real ones people start from:
  head-less SEW-D (``asapp/sew-d-tiny-100k``) and HuBERT, wav2vec2 pre-training weights
  (``facebook/wav2vec2-base``), AST with AudioSet's 527 labels (``MIT/ast-finetuned-audioset-*``) and a
  Whisper encoder-decoder (``openai/whisper-tiny``), each with its feature extractor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

SR = 16000

#: (recording, [segment numbers], owl segments) — seed-style names in both of its naming styles.
RECORDINGS = [
    ("WCS5_20231229_045900", [95, 96, 97], {96}),
    ("WCS5_20231230_031500", [3, 4, 5], {3}),
    ("555995", [6, 7, 8], {7}),
    ("556010", [1, 2, 3], {2}),
    ("BRK2_20240105_220000", [10, 11, 12], set()),
    ("557001", [0, 1, 2], set()),
]


def seed_clip(owl: bool, seed: int) -> np.ndarray:
    """5 s of noise; owl clips hold a 400 Hz double hoot (two 0.6 s tones), the call's shape in brief."""
    rng = np.random.default_rng(seed)
    y = 0.02 * rng.standard_normal(5 * SR)
    if owl:
        t = np.arange(int(0.6 * SR)) / SR
        hoot = 0.3 * np.sin(2 * np.pi * 400 * t) * np.hanning(len(t))
        start = int(rng.integers(0, 3 * SR))
        y[start:start + len(t)] += hoot
        y[start + SR:start + SR + len(t)] += hoot
    return y.astype(np.float32)


def write_seed_dataset(folder: Path, label_names: tuple[str, ...] = ("owl", "not_owl"),
                       recordings=RECORDINGS) -> Path:
    """A seed-layout dataset folder (one ``train`` split) with the given ClassLabel order; returns it."""
    from datasets import Audio, ClassLabel, Dataset, Features, Value

    audio, labels, names = [], [], []
    for k, (rec, segments, owls) in enumerate(recordings):
        for seg in segments:
            owl = seg in owls
            audio.append({"array": seed_clip(owl, 1000 * k + seg), "sampling_rate": SR})
            labels.append(label_names.index("owl" if owl else "not_owl") if "owl" in label_names else int(not owl))
            names.append(f"{rec}_segment_{seg}.wav")
    features = Features({"audio": Audio(sampling_rate=SR), "label": ClassLabel(names=list(label_names)),
                         "filename": Value("string")})
    ds = Dataset.from_dict({"audio": audio, "label": labels, "filename": names}, features=features)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    yaml = ds.info._to_yaml_dict()
    class_names = "\n".join(f"          '{i}': {n}" for i, n in enumerate(label_names))
    assert [f["name"] for f in yaml["features"]] == ["audio", "label", "filename"]
    (folder / "README.md").write_text(f"""---
dataset_info:
  features:
  - name: audio
    dtype:
      audio:
        sampling_rate: {SR}
  - name: label
    dtype:
      class_label:
        names:
{class_names}
  - name: filename
    dtype: string
  splits:
  - name: train
    num_examples: {len(ds)}
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
---
# Powerful Owl clips (test stand-in)
""", encoding="utf-8")
    return folder


_CONV = dict(conv_dim=(16, 16, 16, 16), conv_kernel=(10, 3, 3, 3), conv_stride=(5, 4, 4, 4),
             num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
_ENC = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def _base(arch: str):
    import transformers as tf

    if arch == "sew-d":  # asapp/sew-d-tiny-100k: hidden 384, 12 layers, 6 heads, 1536, 31 pos. kernel
        cfg = tf.SEWDConfig(**_ENC, **_CONV, squeeze_factor=2, max_position_embeddings=64, position_buckets=16)
        return tf.SEWDModel(cfg), tf.Wav2Vec2FeatureExtractor(sampling_rate=SR, return_attention_mask=True)
    if arch == "hubert":
        return tf.HubertModel(tf.HubertConfig(**_ENC, **_CONV)), tf.Wav2Vec2FeatureExtractor(sampling_rate=SR)
    if arch == "wav2vec2":  # facebook/wav2vec2-base: Wav2Vec2ForPreTraining, no attention mask
        cfg = tf.Wav2Vec2Config(**_ENC, **_CONV, codevector_dim=16, proj_codevector_dim=16, num_codevectors_per_group=8)
        return tf.Wav2Vec2ForPreTraining(cfg), tf.Wav2Vec2FeatureExtractor(sampling_rate=SR, return_attention_mask=False)
    if arch == "ast":  # MIT/ast-finetuned-audioset-*: 527 AudioSet classes
        id2label = {i: f"AudioSet class {i}" for i in range(527)}
        id2label[0] = "Speech"
        cfg = tf.ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                           num_mel_bins=32, max_length=512, id2label=id2label,
                           label2id={v: k for k, v in id2label.items()})
        return tf.ASTForAudioClassification(cfg), tf.ASTFeatureExtractor(num_mel_bins=32, max_length=512)
    if arch == "whisper":  # openai/whisper-tiny: encoder-decoder, 30 s windows (3000 frames, 1500 positions)
        cfg = tf.WhisperConfig(vocab_size=16, d_model=16, encoder_layers=1, decoder_layers=1,
                               encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                               decoder_ffn_dim=32, num_mel_bins=16, max_source_positions=1500,
                               max_target_positions=8, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                               decoder_start_token_id=1, begin_suppress_tokens=None, suppress_tokens=None)
        return tf.WhisperForConditionalGeneration(cfg), tf.WhisperFeatureExtractor(feature_size=16)
    raise ValueError(arch)


BASE_ARCHS = ("sew-d", "hubert", "wav2vec2", "ast", "whisper")


def save_base_checkpoint(arch: str, folder: Path, seed: int = 0) -> Path:
    """A small checkpoint of ``arch`` (see :data:`BASE_ARCHS`) as a local Hub-layout model folder."""
    torch.manual_seed(seed)
    model, fe = _base(arch)
    model.save_pretrained(folder)
    fe.save_pretrained(folder)
    return folder
