"""OwlNet, the project's own call detector architecture, registered with transformers' Auto classes.

- :mod:`~owlfinder.owlnet.feature_extraction_owlnet`: :class:`OwlNetFeatureExtractor`, log-frequency band powers
  (dB) of 150-3000 Hz.
- :mod:`~owlfinder.owlnet.configuration_owlnet`: :class:`OwlNetConfig` (``model_type = "owlnet"``).
- :mod:`~owlfinder.owlnet.modeling_owlnet`: :class:`OwlNetForAudioClassification`, per-band background
  removal then a small pitch-aware CNN.

Importing this package registers the three with ``AutoConfig``, ``AutoFeatureExtractor`` and
``AutoModelForAudioClassification`` (``owlfinder.detect.model`` imports it, so the engine loads OwlNet folders
without remote code), and marks them to be saved *with their code*: a saved folder carries the three modules
and an ``auto_map``, so plain ``transformers`` loads it with ``trust_remote_code=True``.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification

from .configuration_owlnet import OwlNetConfig
from .feature_extraction_owlnet import OwlNetFeatureExtractor, log_band_filters
from .modeling_owlnet import OwlNetForAudioClassification, normalise_bands

__all__ = ["OwlNetConfig", "OwlNetFeatureExtractor", "OwlNetForAudioClassification", "log_band_filters",
           "normalise_bands"]

AutoConfig.register(OwlNetConfig.model_type, OwlNetConfig, exist_ok=True)
AutoFeatureExtractor.register(OwlNetConfig, OwlNetFeatureExtractor, exist_ok=True)
AutoModelForAudioClassification.register(OwlNetConfig, OwlNetForAudioClassification, exist_ok=True)
OwlNetConfig.register_for_auto_class()
OwlNetFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
OwlNetForAudioClassification.register_for_auto_class("AutoModelForAudioClassification")
