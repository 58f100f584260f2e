"""GPU help for the Space: ZeroGPU's ``@spaces.GPU`` when it is there, and scans in GPU-sized slices.

Three cases, picked at run time:

- **a dedicated GPU** (CUDA present): :func:`owlfinder.detect.model.load_classifier` with ``device="auto"`` puts the
  model on CUDA in fp16 and the engine scans the whole file in one go with large batches;
- **ZeroGPU** (``SPACES_ZERO_GPU=true``): a GPU is attached only inside functions decorated with
  ``@spaces.GPU(duration=...)``, for at most the duration asked for. Long recordings are therefore scanned in
  slices of :func:`plan_slices`, one GPU call each, with a duration from :func:`gpu_seconds`; progress and
  the growing timeline are shown between (and during) slices;
- **CPU**: the engine alone.

The ``spaces`` package is optional: off Spaces (or when it is not installed) :func:`gpu_task` returns the
function unchanged, as ``spaces.GPU`` itself does off ZeroGPU. On ZeroGPU ``spaces`` must be imported before
torch initialises CUDA, so import this module first (``space/app.py`` does); it imports neither torch nor
the rest of the package at import time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from owlfinder.audio import AudioInfo
    from owlfinder.detect.detection import DetectionParams
    from owlfinder.detect.model import OwlClassifier

__all__ = [
    "SPACES_AVAILABLE",
    "gpu_seconds",
    "gpu_task",
    "on_zero_gpu",
    "plan_slices",
    "register_classifier",
    "scan_range",
    "scan_ranges",
    "scan_slice",
    "slice_seconds",
]


def on_zero_gpu(environ: Mapping[str, str] | None = None) -> bool:
    """True on a ZeroGPU Space (``SPACES_ZERO_GPU`` set to a true value); the app reads it once, into
    :attr:`owlfinder.ui.config.AppConfig.zero_gpu`."""
    env = os.environ if environ is None else environ
    return str(env.get("SPACES_ZERO_GPU", "")).strip().lower() in ("1", "t", "true")


try:  # optional: a no-op off Spaces, absent from plain installs
    import spaces as _spaces
except Exception:  # ImportError, or its own import-time checks failing outside a Space
    _spaces = None

#: Whether the ``spaces`` package could be imported.
SPACES_AVAILABLE = _spaces is not None


def gpu_task(duration: int | Callable[..., int]) -> Callable[[Callable], Callable]:
    """Decorator: ``spaces.GPU(duration=duration)`` when ``spaces`` is importable, else the identity.

    ``duration`` is seconds, or a function of the decorated function's arguments returning seconds (ZeroGPU
    calls it with the same arguments before attaching the GPU). Off ZeroGPU ``spaces.GPU`` itself returns the
    function unchanged, so this never changes behaviour there.
    """
    if _spaces is None:
        return lambda fn: fn
    return _spaces.GPU(duration=duration)


def gpu_seconds(audio_s: float, *, rtf: float = 150.0, overhead_s: float = 15.0, max_s: float = 120.0) -> int:
    """GPU time to ask ZeroGPU for to scan ``audio_s`` seconds of audio (decoding included).

    Args:
        audio_s: seconds of audio in the slice.
        rtf: assumed seconds of audio scanned per second (decode, resample, features, model).
        overhead_s: fixed cost of a call (attaching the GPU, moving the model, warm-up).
        max_s: the most asked for.
    """
    return int(min(max_s, math.ceil(overhead_s + max(0.0, audio_s) / max(rtf, 1e-6))))


def slice_seconds(rtf: float = 150.0, overhead_s: float = 15.0, max_s: float = 120.0,
                  cap_s: float = 3600.0) -> float:
    """Longest slice that fits in one GPU call of at most ``max_s`` seconds (and at most ``cap_s``)."""
    return max(60.0, min(cap_s, (max_s - overhead_s) * rtf * 0.8))


def plan_slices(duration_s: float, slice_s: float, hop_s: float, window_s: float) -> list[tuple[int, int | None]]:
    """Cut a recording's window grid into slices for separate GPU calls.

    Slices are ranges of window indices ``[k0, k1)`` on the engine's grid (window ``k`` starts at
    ``k * hop_s``); the last is ``(k0, None)``: up to the end of the file, including the engine's final window
    that ends exactly at the end. The last slice always spans at least one window plus one hop, so no slice
    is shorter than a window. A recording shorter than two slices' worth is one slice.
    """
    if hop_s <= 0 or window_s <= 0 or slice_s <= 0:
        raise ValueError("hop, window and slice must be positive")
    per = max(1, int(slice_s // hop_s))
    n_grid = max(1, int(math.floor(max(0.0, duration_s - window_s) / hop_s)) + 1)
    bounds = list(range(0, n_grid, per))
    # The last slice must hold a full window and a hop of audio beyond its first window's start.
    while len(bounds) > 1 and duration_s - bounds[-1] * hop_s < window_s + hop_s:
        bounds.pop()
    return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False)] + [(bounds[-1], None)]


#: Classifiers by key, so a forked ZeroGPU worker finds the model without pickling it.
_CLASSIFIERS: dict[str, OwlClassifier] = {}


def register_classifier(key: str, clf: OwlClassifier) -> None:
    """Make ``clf`` known to :func:`scan_slice` under ``key`` (before any GPU call, so a forked worker has it)."""
    _CLASSIFIERS[key] = clf


def scan_range(path: str, clf: OwlClassifier, params: DetectionParams, k0: int, k1: int | None,
               info: AudioInfo | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """Score the windows ``k0 <= k < k1`` of the engine's grid (``k1=None``: to the end of the file).

    The engine's :func:`~owlfinder.detect.engine.scan_windows` with a window range: it decodes only the audio
    those windows need and gives exactly the windows a whole-file scan gives for the same indices.

    Yields:
        ``(start_samples, scores, n_samples)`` per batch: window starts in samples at the model's rate from
        the start of the file, owl scores, and the sample (from the start of the file) decoding reached.
    """
    from owlfinder.detect.engine import scan_windows

    yield from scan_windows(path, clf, params, window_range=(k0, k1), info=info)


def _slice_duration(key: str, path: str, params: DetectionParams, k0: int, k1: int | None, audio_s: float,
                    info: AudioInfo, rtf: float, max_s: float) -> int:
    return gpu_seconds(audio_s, rtf=rtf, max_s=max_s)


@gpu_task(duration=_slice_duration)
def scan_slice(key: str, path: str, params: DetectionParams, k0: int, k1: int | None, audio_s: float,
               info: AudioInfo, rtf: float, max_s: float) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """One GPU call: :func:`scan_range` with the classifier registered under ``key``, asking ZeroGPU for
    :func:`gpu_seconds` of ``audio_s`` seconds of audio (at most ``max_s``)."""
    yield from scan_range(path, _CLASSIFIERS[key], params, k0, k1, info)


def _ranges_duration(key: str, path: str, params: DetectionParams, ranges: list[tuple[int, int]], audio_s: float,
                     info: AudioInfo, rtf: float, max_s: float) -> int:
    return gpu_seconds(audio_s, rtf=rtf, max_s=max_s)


@gpu_task(duration=_ranges_duration)
def scan_ranges(key: str, path: str, params: DetectionParams, ranges: list[tuple[int, int]], audio_s: float,
                info: AudioInfo, rtf: float, max_s: float) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """One GPU call over several window ranges (the engine's second look): :func:`scan_range` for each, asking
    for :func:`gpu_seconds` of their ``audio_s`` seconds of audio together."""
    for k0, k1 in ranges:
        yield from scan_range(path, _CLASSIFIERS[key], params, k0, k1, info)
