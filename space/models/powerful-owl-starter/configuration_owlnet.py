"""Configuration of OwlNet, the band-focused CNN call detector (``model_type = "owlnet"``).

Self-contained (``transformers`` only): ``save_pretrained`` copies this file into the model folder, so that
``AutoConfig.from_pretrained(folder, trust_remote_code=True)`` works without ``owlfinder`` installed.
"""

from __future__ import annotations

from transformers import PretrainedConfig


class OwlNetConfig(PretrainedConfig):
    """OwlNet's architecture.

    The model reads log-frequency band powers in dB (:class:`OwlNetFeatureExtractor`), removes each band's
    background floor (its ``floor_quantile`` over the window's frames), so that neither recording level nor a
    steady background changes what it sees, and classifies the normalised image with a small CNN that keeps
    absolute pitch (a frequency-collapsing layer) and looks about 2 s along time (dilated temporal convolutions)
    before pooling over the whole window.

    Args:
        n_bins: band rows of the input (the feature extractor's ``feature_size``).
        floor_quantile: quantile of each band over time taken as its background floor.
        db_scale: dB per unit of the normalised input.
        clamp_low, clamp_high: the normalised input is clamped to this range (units of ``db_scale``).
        channels: output channels of the three convolution stages.
        hidden_size: channels after the frequency-collapsing layer.
        temporal_dilations: dilations of the residual temporal convolutions (kernel 3).
        dropout: before the classifier.
        n_members: independently initialised copies of the network (after the shared normalisation) whose
            logits are averaged: an ensemble, ``n_members`` times the compute.
    """

    model_type = "owlnet"

    def __init__(self, n_bins: int = 70, floor_quantile: float = 0.2, db_scale: float = 10.0,
                 clamp_low: float = -1.0, clamp_high: float = 6.0, channels: tuple[int, int, int] = (16, 32, 48),
                 hidden_size: int = 96, temporal_dilations: tuple[int, ...] = (2, 4), dropout: float = 0.1,
                 n_members: int = 1, **kwargs):
        self.n_bins = int(n_bins)
        self.floor_quantile = float(floor_quantile)
        self.db_scale = float(db_scale)
        self.clamp_low, self.clamp_high = float(clamp_low), float(clamp_high)
        self.channels = [int(c) for c in channels]
        self.hidden_size = int(hidden_size)
        self.temporal_dilations = [int(d) for d in temporal_dilations]
        self.dropout = float(dropout)
        self.n_members = int(n_members)
        super().__init__(**kwargs)
