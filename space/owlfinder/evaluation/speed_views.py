"""Speed views: a candidate window scored again with its audio played a little faster and slower.

A test-time augmentation measured on the leave-one-family-out folds (``scripts/evaluate_speed_views.py``) and not
kept (docs/generalisation.md, "Tried and not kept: speed views at test time"). Training plays calls 0.85-1.18
times as fast, so a call a model half-knows might score more steadily averaged over a few speeds than at one; the
folds said it moves recall between the two groups of held-out sites rather than raising it, and it let one more
owl-like real sound through. It lives here, outside the engine, so that the measurement can be repeated.

- :func:`speed_view`: ``n`` samples of a recording played ``factor`` times as fast, centred where a window was.
- :func:`rescore_with_speed_views`: a detection whose candidate windows score the mean logit of their views.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import soxr

__all__ = ["rescore_with_speed_views", "speed_view"]


def speed_view(y: np.ndarray, sr: int, factor: float, centre_s: float, n: int) -> np.ndarray:
    """``n`` samples of ``y`` played ``factor`` times as fast, centred on what was at ``centre_s`` in ``y``.

    Playing faster raises every frequency by ``factor`` and shortens every note by it, as a smaller bird or a
    faster call would (``factor`` 1 is the plain window).

    Args:
        y: mono audio at ``sr`` Hz.
        sr: sample rate, Hz.
        factor: playback speed (> 0); 1.06 raises a 400 Hz note to 424 Hz.
        centre_s: the centre of the window in ``y``, seconds.
        n: samples wanted; zero where the sped-up audio runs out.

    Returns:
        float32 ``[n]`` at ``sr`` Hz.
    """
    if factor <= 0:
        raise ValueError("factor must be positive")
    y = np.asarray(y, dtype=np.float32)
    z = y if factor == 1 else soxr.resample(y, sr * factor, sr)  # read at sr * factor, written at sr: faster
    lo = int(round(centre_s / factor * sr)) - n // 2
    out = np.zeros(n, np.float32)
    src = z[max(0, lo):max(0, lo + n)]
    out[max(0, -lo):max(0, -lo) + len(src)] = src
    return out


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-7), 1 - 1e-7)
    return math.log(p / (1 - p))


def rescore_with_speed_views(det, score: Callable[[np.ndarray], np.ndarray], read: Callable[[float, float], np.ndarray],
                             sr: int, window_samples: int, factors: Sequence[float], floor: float,
                             pad_s: float = 0.8):
    """``det`` with every window scoring ``floor`` or more scored again at each playback speed of ``factors``;
    its score becomes the sigmoid of the mean logit of the plain window and its views.

    Args:
        det: a complete :class:`~owlfinder.detect.detection.Detection` (window scores kept).
        score: ``score(batch)`` returns the owl probability of each window of a float32 batch
            ``[B, window_samples]`` (:meth:`owlfinder.detect.model.OwlClassifier.score`).
        read: ``read(start_s, end_s)`` returns that stretch of the recording, mono at ``sr`` Hz.
        sr: the rate ``read`` returns and ``score`` expects, Hz.
        window_samples: samples per window.
        factors: playback speeds of the views, besides the plain window (e.g. ``(0.94, 1.06)``).
        floor: windows scoring below this keep their score; a window the description check rejected keeps 1 % of
            its score, so it stays below any floor near a threshold.
        pad_s: audio read on each side of a window, seconds, so that a slower view is filled.

    Returns:
        ``(detection, n_rescored)``; events re-derived at ``det``'s threshold.
    """
    scores = np.array(det.scores, dtype=np.float32, copy=True)
    cand = np.flatnonzero(scores >= floor)
    if not len(cand) or not len(factors):
        return det, 0
    batch = []
    for i in cand:
        start, end = float(det.starts_s[i]), float(det.ends_s[i])
        t0 = max(0.0, start - pad_s)
        y = read(t0, end + pad_s)
        batch += [speed_view(y, sr, a, (start + end) / 2 - t0, window_samples) for a in factors]
    views = np.asarray(score(np.stack(batch)), dtype=np.float64).reshape(len(cand), len(factors))
    for i, row in zip(cand, views, strict=True):
        mean = (_logit(scores[i]) + sum(_logit(p) for p in row)) / (1 + len(factors))
        scores[i] = 1.0 / (1.0 + math.exp(-mean))
    return replace(det, scores=scores).rethreshold(det.threshold), int(len(cand))
