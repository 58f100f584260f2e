"""Tiny audio classifiers built from configs (no Hub), in both label orders, saved as local folders."""

from __future__ import annotations

from pathlib import Path

import torch

LABEL_ORDERS = {
    "owl_first": {0: "owl", 1: "not_owl"},
    "owl_second": {0: "not_owl", 1: "owl"},
}


def _labels(order: str) -> dict:
    id2label = LABEL_ORDERS[order]
    return {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}, "num_labels": 2}


def tiny_sewd(order: str = "owl_first"):
    from transformers import SEWDConfig, SEWDForSequenceClassification, Wav2Vec2FeatureExtractor

    cfg = SEWDConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     conv_dim=(16, 16, 16, 16), conv_kernel=(10, 3, 3, 3), conv_stride=(5, 4, 4, 4),
                     num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, squeeze_factor=2,
                     max_position_embeddings=64, position_buckets=16, **_labels(order))
    return SEWDForSequenceClassification(cfg), Wav2Vec2FeatureExtractor(sampling_rate=16000)


def tiny_wav2vec2(order: str = "owl_first"):
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    cfg = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         conv_dim=(16, 16, 16, 16), conv_kernel=(10, 3, 3, 3), conv_stride=(5, 4, 4, 4),
                         num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                         classifier_proj_size=16, **_labels(order))
    return Wav2Vec2ForSequenceClassification(cfg), Wav2Vec2FeatureExtractor(sampling_rate=16000)


def tiny_ast(order: str = "owl_first"):
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    # max_length is set so 5 s clips are not padded to AST's default 10.24 s.
    cfg = ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                    num_mel_bins=32, max_length=500, patch_size=16, frequency_stride=16, time_stride=16,
                    **_labels(order))
    return ASTForAudioClassification(cfg), ASTFeatureExtractor(num_mel_bins=32, max_length=500)


BUILDERS = {"sew-d": tiny_sewd, "wav2vec2": tiny_wav2vec2, "ast": tiny_ast}


def save_tiny(arch: str, order: str, folder: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model, fe = BUILDERS[arch](order)
    model.save_pretrained(folder)
    fe.save_pretrained(folder)
    return folder
