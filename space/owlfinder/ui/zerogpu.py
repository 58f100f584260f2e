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
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from owlfinder.audio import AudioInfo
    from owlfinder.detect.engine import DetectionParams
    from owlfinder.detect.model import OwlClassifier

__all__ = [
    "SPACES_AVAILABLE",
    "gpu_seconds",
    "gpu_task",
    "on_zero_gpu",
    "plan_slices",
    "scan_range",
    "slice_seconds",
]


def on_zero_gpu(environ: dict | None = None) -> bool:
    """True on a ZeroGPU Space (``SPACES_ZERO_GPU`` set to a true value)."""
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


def scan_range(path: str, clf: OwlClassifier, params: DetectionParams, k0: int, k1: int | None,
               info: AudioInfo | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """Score the windows ``k0 <= k < k1`` of the engine's grid (``k1=None``: to the end of the file).

    Decodes only the audio those windows need (plus a second of margin) and gives exactly the windows the
    engine would for the same indices, including the final end-aligned window in the last slice.

    Yields:
        ``(start_samples, scores, n_samples)`` per batch: window starts in samples at the model's rate from
        the start of the file, owl scores, and the sample (from the start of the file) decoding reached.
    """
    from owlfinder import audio
    from owlfinder.detect.windows import frame_stream

    sr = clf.sampling_rate
    win = clf.window_samples
    hop = max(1, int(round(params.hop_s * sr)))
    a = k0 * hop
    end_s = None if k1 is None else ((k1 - 1) * hop + win) / sr + 1.0
    reached = a
    batch: list[np.ndarray] = []
    starts: list[int] = []

    def counted(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        nonlocal reached
        for block in blocks:
            reached += len(block)
            yield block

    def flush() -> tuple[np.ndarray, np.ndarray, int]:
        scores = clf.score(np.stack(batch))
        out = (np.array(starts, dtype=np.int64), np.asarray(scores, dtype=np.float32), reached)
        batch.clear()
        starts.clear()
        return out

    extra = {}
    quality = getattr(params, "resample_quality", None)  # newer engines choose the resampler's quality
    if quality:
        extra["quality"] = quality
    blocks = audio.stream(path, sr, block_s=params.block_s, start_s=a / sr, end_s=end_s, info=info, **extra)
    for rel, window in frame_stream(counted(blocks), win, hop):
        if k1 is not None and (rel % hop or a + rel >= k1 * hop):
            continue  # beyond this slice, or the stream's own end-aligned window (off the grid)
        batch.append(window)
        starts.append(a + rel)
        if len(batch) == params.batch_size:
            yield flush()
    if batch:
        yield flush()
