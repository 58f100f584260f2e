"""Model layer: load any ``AutoModelForAudioClassification`` and score batches of fixed-length windows.

A model is a Hub repo id or a local folder with the same layout (``config.json``, weights,
``preprocessor_config.json``). Nothing here knows about files, windows or events.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "BUNDLED_MODEL",
    "DEFAULT_THRESHOLD",
    "DEFAULT_WINDOW_S",
    "ModelError",
    "OwlClassifier",
    "default_model",
    "find_positive_index",
    "load_classifier",
    "resolve_device",
]

#: The starter model shipped inside ``space/`` (trained with ``scripts/train.py``; see its model card).
BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "models" / "powerful-owl-starter"
DEFAULT_THRESHOLD = 0.5
DEFAULT_WINDOW_S = 5.0

# Config keys written by scripts/train.py into the saved model's config.json.
THRESHOLD_KEY = "owl_threshold"
WINDOW_KEY = "owl_window_s"

_NEGATED = re.compile(r"^(not|no|non)[\s_\-]", re.IGNORECASE)


class ModelError(Exception):
    """A model that cannot be loaded or used; ``str(err)`` is one line."""


def default_model() -> str:
    """The model used when none is given: ``$OWL_MODEL``, else the bundled starter model."""
    env = os.environ.get("OWL_MODEL", "").strip()
    if env:
        return env
    if not (BUNDLED_MODEL / "config.json").exists():
        raise ModelError(
            f"no model given and the bundled starter model is missing ({BUNDLED_MODEL}); "
            "pass --model (a Hub id or a local folder) or set OWL_MODEL"
        )
    return str(BUNDLED_MODEL)


def find_positive_index(id2label: dict[int, str], positive_label: str | None = None) -> int:
    """Index of the Powerful Owl class among a model's labels.

    ``positive_label`` (case-insensitive exact match) wins; otherwise a label equal to ``owl``, then one
    naming *Ninox strenua*, then one containing ``owl`` that is not a negation (``not_owl``, ``no owl``).
    Works for the seed's ``{0: "owl", 1: "not_owl"}`` and for either label order.
    """
    labels = {int(i): str(name) for i, name in id2label.items()}
    if positive_label:
        for i, name in labels.items():
            if name.lower() == positive_label.lower():
                return i
        raise ModelError(f"label {positive_label!r} is not one of the model's labels {sorted(labels.values())}")
    for test in (
        lambda s: s.lower() == "owl",
        lambda s: "ninox strenua" in s.lower() or "ninox_strenua" in s.lower(),
        lambda s: "powerful owl" in s.lower() or "powerful_owl" in s.lower(),
        lambda s: "owl" in s.lower() and not _NEGATED.match(s),
    ):
        hits = [i for i, name in labels.items() if test(name)]
        if len(hits) == 1:
            return hits[0]
    raise ModelError(
        f"cannot tell which of the model's labels {sorted(labels.values())} is the owl; pass --positive-label"
    )


def resolve_device(device: str | None = "auto") -> torch.device:
    """``"auto"`` is CUDA when present, else CPU; anything else is passed to :class:`torch.device`."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} was asked for but CUDA is not available")
    return dev


@dataclass
class OwlClassifier:
    """A loaded audio classifier that turns windows of audio into owl probabilities.

    Attributes:
        model: the ``transformers`` model, in eval mode on ``device``.
        feature_extractor: its feature extractor.
        name: the Hub id or local folder it came from.
        positive_index: index of the owl class in the logits.
        sampling_rate: the rate the model expects, in Hz.
        window_s: window length in seconds.
        threshold: the calibrated decision threshold from the model's config (0.5 when absent).
        device: where the model runs.
        fingerprint: short hash of the config, so results from another model are never mixed up.
    """

    model: torch.nn.Module
    feature_extractor: object
    name: str
    positive_index: int
    sampling_rate: int
    window_s: float
    threshold: float
    device: torch.device
    fingerprint: str
    dtype: torch.dtype = torch.float32
    labels: dict[int, str] = field(default_factory=dict)

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.sampling_rate))

    @property
    def positive_label(self) -> str:
        return self.labels.get(self.positive_index, str(self.positive_index))

    def features(self, batch: np.ndarray) -> dict[str, torch.Tensor]:
        """Feature-extract a batch ``[B, samples]`` of windows in one call."""
        inputs = self.feature_extractor(
            list(batch) if batch.ndim == 2 else [batch],
            sampling_rate=self.sampling_rate,
            return_tensors="pt",
        )
        out = {}
        for key, val in inputs.items():
            if not isinstance(val, torch.Tensor):
                continue
            val = val.to(self.device, non_blocking=True)
            out[key] = val.to(self.dtype) if val.is_floating_point() else val
        return out

    @torch.inference_mode()
    def predict(self, inputs: dict[str, torch.Tensor]) -> np.ndarray:
        """Owl probability (softmax of the positive class) for feature-extracted inputs, shape ``[B]``."""
        logits = self.model(**inputs).logits.float()
        return torch.softmax(logits, dim=-1)[:, self.positive_index].cpu().numpy()

    def score(self, batch: np.ndarray) -> np.ndarray:
        """Owl probability for each window of a float32 batch ``[B, window_samples]`` at ``sampling_rate``."""
        return self.predict(self.features(np.asarray(batch, dtype=np.float32)))


def _window_seconds(config, fe) -> float:
    if getattr(config, WINDOW_KEY, None):
        return float(getattr(config, WINDOW_KEY))
    chunk = getattr(fe, "chunk_length", None)  # Whisper-style extractors pad to a fixed length
    if isinstance(chunk, (int, float)) and chunk > 0:
        return float(chunk)
    return DEFAULT_WINDOW_S


def _fingerprint(model_dir_or_id: str, config) -> str:
    blob = json.dumps(config.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256((model_dir_or_id + blob).encode()).hexdigest()[:12]


def load_classifier(
    model: str | os.PathLike | None = None,
    *,
    device: str | None = "auto",
    positive_label: str | None = None,
    backend: str = "torch",
    token: str | None = None,
) -> OwlClassifier:
    """Load a classifier from a Hub repo id or a local folder.

    Args:
        model: Hub id or folder; ``None`` uses :func:`default_model`.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        positive_label: name of the owl label when it cannot be guessed.
        backend: ``"torch"`` (fp16 on CUDA, fp32 on CPU) or ``"int8"`` (dynamic int8 quantisation of the
            linear layers, CPU only).
        token: Hub token for private models (defaults to the environment).

    Raises:
        ModelError: the model cannot be found or loaded, or has no owl label.
    """
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars would drown the detection progress
    name = str(model) if model is not None else default_model()
    dev = resolve_device(device)
    try:
        config = AutoConfig.from_pretrained(name, token=token)
        fe = AutoFeatureExtractor.from_pretrained(name, token=token)
        net = AutoModelForAudioClassification.from_pretrained(name, token=token)
    except OSError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"cannot load model {name!r}: {first}") from None
    except (ValueError, KeyError) as err:
        raise ModelError(f"{name!r} is not an audio-classification model: {err}") from None
    id2label = dict(getattr(config, "id2label", {}) or {})
    pos = find_positive_index(id2label, positive_label)
    dtype = torch.float32
    if backend == "int8":
        if dev.type != "cpu":
            raise ModelError("backend 'int8' runs on the CPU only; use --device cpu")
        net = torch.ao.quantization.quantize_dynamic(net, {torch.nn.Linear}, dtype=torch.qint8)
    elif backend != "torch":
        raise ModelError(f"unknown backend {backend!r} (choose torch or int8)")
    elif dev.type == "cuda":
        dtype = torch.float16
    net = net.to(dev, dtype=dtype) if backend == "torch" else net
    net.eval()
    sr = int(getattr(fe, "sampling_rate", 16000) or 16000)
    threshold = getattr(config, THRESHOLD_KEY, None)
    return OwlClassifier(
        model=net,
        feature_extractor=fe,
        name=name,
        positive_index=pos,
        sampling_rate=sr,
        window_s=_window_seconds(config, fe),
        threshold=float(threshold) if threshold is not None else DEFAULT_THRESHOLD,
        device=dev,
        fingerprint=_fingerprint(name, config),
        dtype=dtype,
        labels={int(k): str(v) for k, v in id2label.items()},
    )
