"""Model layer: load any ``AutoModelForAudioClassification`` and score batches of fixed-length windows.

A model is a Hub repo id or a local folder with the same layout (``config.json``, weights,
``preprocessor_config.json``). Nothing here knows about files, windows or events.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from owlfinder import owlnet  # noqa: F401 - registers OwlNet with transformers' Auto classes
from owlfinder.errors import OwlFinderError

__all__ = [
    "BACKENDS",
    "BUNDLED_MODEL",
    "DEFAULT_THRESHOLD",
    "DEFAULT_WINDOW_S",
    "ModelError",
    "OwlClassifier",
    "WhisperLogMel",
    "default_model",
    "find_positive_index",
    "load_classifier",
    "resolve_device",
]

#: The starter model shipped inside ``space/`` (trained with ``scripts/train.py``; see its model card).
BUNDLED_MODEL = Path(__file__).resolve().parents[2] / "models" / "powerful-owl-starter"
DEFAULT_THRESHOLD = 0.5
DEFAULT_WINDOW_S = 5.0

# Config keys written by scripts/train.py into the saved model's config.json.
THRESHOLD_KEY = "owl_threshold"
WINDOW_KEY = "owl_window_s"
SITE_THRESHOLDS_KEY = "owl_site_thresholds"

#: The scoring backends (see :func:`load_classifier`).
BACKENDS = ("torch", "int8", "onnx", "onnx-int8")
#: torch's dynamic int8 also takes one activation scale per tensor, so ``int8`` scores one window per call too.
INT8_CPU_CHUNK = 1

_NEGATED = re.compile(r"^(not|no|non)[\s_\-]", re.IGNORECASE)


class ModelError(OwlFinderError):
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

    model: torch.nn.Module | None
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
    #: On the CPU the model runs at most this many windows per forward pass (0: the whole batch at once).
    #: ``None`` picks by size: 8 for models over 5 M parameters, whose activations for a batch of 32 windows
    #: fall out of cache (a sew-d-tiny-size model ran 1.3x faster per window in passes of 8 and needed a
    #: quarter of the scratch memory), the whole batch for small ones such as the starter model (passes of
    #: 8 were 1.25x slower there). Scores are the same either way: windows are independent.
    cpu_chunk: int | None = None
    #: Features -> logits without torch (the ``onnx`` backends, :class:`owlfinder.detect.onnx.OnnxRunner`):
    #: called with :meth:`features`' dict, returns float32 logits ``[B, labels]``; ``model`` is then ``None``.
    runner: Callable[[dict], np.ndarray] | None = field(default=None, repr=False, compare=False)
    #: The backend that scores: torch, int8, onnx or onnx-int8.
    backend: str = "torch"
    #: A faster, equivalent path for the feature extractor when one exists (see :class:`WhisperLogMel`).
    _fast_features: WhisperLogMel | None = field(default=None, repr=False, compare=False)
    #: Per-site thresholds (``owl_site_thresholds`` in the config): ``{site: {"threshold", "message", ...}}``.
    site_thresholds: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cpu_chunk is None:
            params = self.model.parameters() if self.model is not None else ()
            self.cpu_chunk = _cpu_chunk(sum(p.numel() for p in params))
        if self._fast_features is None:
            self._fast_features = WhisperLogMel.for_extractor(self.feature_extractor, self.window_samples)

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.sampling_rate))

    def threshold_for(self, name: str | os.PathLike | None) -> tuple[float, str]:
        """The threshold for a recording and why: its site's own when the file name names a site that has
        one (A2O ``..._Site-Name_12345.flac``, Song Meter ``SITE_20240101_203000.wav``), else the model's."""
        from owlfinder.timestamps import parse_site

        site = parse_site(str(name)) if name else None
        if site and self.site_thresholds:
            for key, entry in self.site_thresholds.items():
                if key.casefold() == site.casefold():
                    return float(entry["threshold"]), str(entry.get("message") or f"per-site threshold for {key}")
        why = "the model's calibrated threshold" if self.threshold != DEFAULT_THRESHOLD else "the default threshold"
        if site and self.site_thresholds:
            why += f" (no per-site threshold for {site})"
        return self.threshold, why

    @property
    def positive_label(self) -> str:
        return self.labels.get(self.positive_index, str(self.positive_index))

    def features(self, batch: np.ndarray) -> dict[str, torch.Tensor]:
        """Feature-extract a batch ``[B, samples]`` of windows in one call."""
        fast = self._fast_features
        if fast is not None and batch.ndim == 2 and batch.shape[1] == fast.n_samples and len(batch):
            feats = fast(batch, self.device)
            return {"input_features": feats.to(self.dtype) if feats.dtype != self.dtype else feats}
        inputs = self.feature_extractor(
            list(batch) if batch.ndim == 2 else [batch],
            sampling_rate=self.sampling_rate,
            return_tensors="pt",
        )
        out = {}
        for key, val in inputs.items():
            if not isinstance(val, torch.Tensor):
                continue
            if self.device.type == "cuda":
                val = val.pin_memory()  # lets the copy to the GPU run asynchronously
            val = val.to(self.device, non_blocking=True)
            out[key] = val.to(self.dtype) if val.is_floating_point() else val
        return out

    @torch.inference_mode()
    def predict(self, inputs: dict[str, torch.Tensor]) -> np.ndarray:
        """Owl probability (softmax of the positive class) for feature-extracted inputs, shape ``[B]``."""
        n = len(next(iter(inputs.values()))) if inputs else 0
        step = self.cpu_chunk if self.device.type == "cpu" and self.cpu_chunk else n
        if n <= step:
            return self._predict(inputs)
        return np.concatenate([self._predict({k: v[i: i + step] for k, v in inputs.items()})
                               for i in range(0, n, step)])

    def _predict(self, inputs: dict[str, torch.Tensor]) -> np.ndarray:
        if self.runner is not None:
            logits = torch.from_numpy(self.runner(inputs))
        else:
            logits = self.model(**inputs).logits.float()  # fp16 weights and inputs on CUDA, fp32 on the CPU
        return torch.softmax(logits, dim=-1)[:, self.positive_index].cpu().numpy()

    def score(self, batch: np.ndarray) -> np.ndarray:
        """Owl probability for each window of a float32 batch ``[B, window_samples]`` at ``sampling_rate``."""
        return self.predict(self.features(np.asarray(batch, dtype=np.float32)))


def _cpu_chunk(n_params: int) -> int:
    """Windows per forward pass on the CPU (see :attr:`OwlClassifier.cpu_chunk`)."""
    return 8 if n_params > 5_000_000 else 0


class WhisperLogMel:
    """Whisper's log-mel features for a batch of whole windows in one pass of torch ops.

    The same numbers as :class:`transformers.WhisperFeatureExtractor` (centred reflect-padded STFT, power,
    mel filter bank, ``log10``, per-window clamp to ``max - 8``, ``(x + 4) / 4``) without its per-window
    list and padding machinery, and with the power spectrum computed as ``re^2 + im^2`` rather than
    ``abs()**2`` (a square root and a square saved per bin; differences are at float32 rounding).
    On a CUDA device the spectrogram is computed there. Built only after a self-check against the extractor.
    """

    def __init__(self, n_fft: int, hop_length: int, n_samples: int, mel_filters: np.ndarray):
        self.n_fft, self.hop_length, self.n_samples = int(n_fft), int(hop_length), int(n_samples)
        self._window = torch.hann_window(self.n_fft)
        self._mel_t = torch.from_numpy(np.ascontiguousarray(np.asarray(mel_filters, dtype=np.float32).T))
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def for_extractor(cls, fe: object, window_samples: int) -> WhisperLogMel | None:
        """A fast path for ``fe`` when it is a Whisper extractor whose output it reproduces, else ``None``."""
        if type(fe).__name__ != "WhisperFeatureExtractor":
            return None
        if getattr(fe, "dither", 0.0) or getattr(fe, "return_attention_mask", False):
            return None
        try:
            fast = cls(fe.n_fft, fe.hop_length, fe.n_samples, fe.mel_filters)
            if fast.n_samples != window_samples:
                return None  # the extractor pads or truncates: leave that to it
            probe = np.random.default_rng(0).standard_normal((2, fast.n_samples)).astype(np.float32) * 0.1
            probe[1, : fast.n_samples // 2] = 0.0  # a half-silent window exercises the clamp
            ref = fe(list(probe), sampling_rate=fe.sampling_rate, return_tensors="pt")["input_features"]
            got = fast(probe, torch.device("cpu"))
            if ref.shape != got.shape or float((ref - got).abs().max()) > 1e-4:
                return None
        except Exception:  # any surprise: keep the extractor's own path
            return None
        return fast

    #: Windows per STFT call on the CPU: as fast as the whole batch, with an eighth of the scratch memory.
    cpu_chunk = 4

    def __call__(self, batch: np.ndarray, device: torch.device) -> torch.Tensor:
        if device not in self._on:
            self._on[device] = (self._window.to(device), self._mel_t.to(device))
        window, mel_t = self._on[device]
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        if device.type == "cuda":
            return self._log_mel(x.pin_memory().to(device, non_blocking=True), window, mel_t)
        if len(x) <= self.cpu_chunk:
            return self._log_mel(x, window, mel_t)
        return torch.cat([self._log_mel(x[i: i + self.cpu_chunk], window, mel_t)
                          for i in range(0, len(x), self.cpu_chunk)])

    def _log_mel(self, x: torch.Tensor, window: torch.Tensor, mel_t: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(x, self.n_fft, self.hop_length, window=window, return_complex=True)
        ri = torch.view_as_real(spec)[:, :, :-1]  # the last frame is dropped, as Whisper does
        power = torch.addcmul(ri[..., 0] * ri[..., 0], ri[..., 1], ri[..., 1]).contiguous()
        del spec, ri
        log_spec = torch.matmul(mel_t, power).clamp_(min=1e-10).log10_()
        floor = log_spec.amax(dim=(1, 2), keepdim=True) - 8.0
        return torch.maximum(log_spec, floor).add_(4.0).div_(4.0)

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


@contextlib.contextmanager
def _loading_errors(name: str) -> Iterator[None]:
    """Turn transformers' loading errors (long, multi-line) into one-line :class:`ModelError` naming the model."""
    try:
        yield
    except OSError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"cannot load model {name!r}: {first}") from None
    except (ValueError, KeyError) as err:
        raise ModelError(f"{name!r} is not an audio-classification model: {err}") from None


def load_classifier(
    model: str | os.PathLike | None = None,
    *,
    device: str | None = "auto",
    positive_label: str | None = None,
    backend: str = "torch",
    token: str | None = None,
    threads: int | None = None,
    onnx_cache: str | os.PathLike | None = None,
) -> OwlClassifier:
    """Load a classifier from a Hub repo id or a local folder.

    Args:
        model: Hub id or folder; ``None`` uses :func:`default_model`.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        positive_label: name of the owl label when it cannot be guessed.
        backend: ``"torch"`` (fp16 on CUDA, fp32 on CPU), ``"int8"`` (dynamic int8 quantisation of the
            linear layers, CPU only), ``"onnx"`` or ``"onnx-int8"`` (ONNX Runtime on the CPU, exported once
            and cached: see :mod:`owlfinder.detect.onnx`). The int8 backends score one window per call, so a
            window's score does not depend on the other windows of its batch.
        token: Hub token for private models (defaults to the environment).
        threads: intra-op threads of the ONNX Runtime session (default: ``$OWL_ONNX_THREADS``, else the cores
            this process may use); the torch backends take theirs from the engine.
        onnx_cache: where exported models are cached (default: :func:`owlfinder.detect.onnx.default_cache_dir`).

    Raises:
        ModelError: the model cannot be found or loaded, or has no owl label.
    """
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars would drown the detection progress
    name = str(model) if model is not None else default_model()
    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r} (choose one of {', '.join(BACKENDS)})")
    dev = resolve_device(device)
    if backend != "torch" and dev.type != "cpu":
        raise ModelError(f"backend {backend!r} runs on the CPU only; use --device cpu")
    if backend in ("onnx", "onnx-int8"):
        return _load_onnx(name, backend, positive_label, token, threads, onnx_cache)
    with _loading_errors(name):
        config = AutoConfig.from_pretrained(name, token=token)
        fe = AutoFeatureExtractor.from_pretrained(name, token=token)
        net = AutoModelForAudioClassification.from_pretrained(name, token=token)
    id2label = dict(getattr(config, "id2label", {}) or {})
    pos = find_positive_index(id2label, positive_label)
    n_params = sum(p.numel() for p in net.parameters())  # before int8 packs the linear layers away
    dtype = torch.float32
    if hasattr(net, "optimize_for_inference"):  # OwlNet: batch norms folded, channels-last (same scores)
        net = net.optimize_for_inference()
    if backend == "int8":
        net = torch.ao.quantization.quantize_dynamic(net, {torch.nn.Linear}, dtype=torch.qint8)
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
        cpu_chunk=INT8_CPU_CHUNK if backend == "int8" else getattr(net, "cpu_chunk", None) or _cpu_chunk(n_params),
        backend=backend,
        site_thresholds=_site_thresholds(config, name),
    )


def _load_onnx(name: str, backend: str, positive_label: str | None, token: str | None, threads: int | None,
               cache: str | os.PathLike | None) -> OwlClassifier:
    """The ``onnx`` backends: config and feature extractor from the model, the weights only to export once."""
    from transformers import AutoConfig, AutoFeatureExtractor

    from owlfinder.detect import onnx

    with _loading_errors(name):
        folder = onnx.local_model_dir(name, token)
        config = AutoConfig.from_pretrained(folder)
        fe = AutoFeatureExtractor.from_pretrained(folder)
    id2label = dict(getattr(config, "id2label", {}) or {})
    pos = find_positive_index(id2label, positive_label)
    sr = int(getattr(fe, "sampling_rate", 16000) or 16000)
    window_s = _window_seconds(config, fe)
    try:
        path = onnx.export_onnx(folder, int(round(window_s * sr)), quantize=backend == "onnx-int8",
                                cache_dir=cache)
        runner = onnx.OnnxRunner(path, threads)
    except Exception as err:  # the exporter's and ORT's errors are many and long: one line, named
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"cannot export {name!r} to ONNX: {first[:300]}") from None
    threshold = getattr(config, THRESHOLD_KEY, None)
    return OwlClassifier(
        model=None, feature_extractor=fe, name=name, positive_index=pos, sampling_rate=sr, window_s=window_s,
        threshold=float(threshold) if threshold is not None else DEFAULT_THRESHOLD, device=torch.device("cpu"),
        fingerprint=_fingerprint(name, config), labels={int(k): str(v) for k, v in id2label.items()},
        cpu_chunk=onnx.ONNX_INT8_CPU_CHUNK if backend == "onnx-int8" else onnx.ONNX_CPU_CHUNK,
        runner=runner, backend=backend, site_thresholds=_site_thresholds(config, name),
    )


def _site_thresholds(config, name: str) -> dict[str, dict]:
    """The config's per-site thresholds, checked (a bad entry is a one-line :class:`ModelError`)."""
    raw = getattr(config, SITE_THRESHOLDS_KEY, None) or {}
    if not isinstance(raw, dict):
        raise ModelError(f"{name}: {SITE_THRESHOLDS_KEY} in config.json must map site names to thresholds")
    out = {}
    for site, entry in raw.items():
        thr = entry.get("threshold") if isinstance(entry, dict) else entry
        if not isinstance(thr, (int, float)) or not 0.0 <= float(thr) <= 1.0:
            raise ModelError(f"{name}: {SITE_THRESHOLDS_KEY}[{site!r}] needs a threshold in 0-1, not {thr!r}")
        out[str(site)] = dict(entry) if isinstance(entry, dict) else {"threshold": float(thr)}
    return out
