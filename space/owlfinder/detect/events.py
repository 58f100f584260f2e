"""From window scores to owl events: threshold, merge overlapping or close windows, drop short events."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Event", "merge_events", "shift_threshold"]


def shift_threshold(threshold: float, logits: float) -> float:
    """``threshold`` moved by ``logits`` in logit units (up when positive); ``threshold`` lies strictly in (0, 1)."""
    return 1.0 / (1.0 + math.exp(-(math.log(threshold / (1 - threshold)) + logits)))


@dataclass
class Event:
    """A stretch of audio that the model thinks holds an owl call.

    Attributes:
        start_s: start in seconds from the beginning of the file.
        end_s: end in seconds.
        score: highest window score in the event (the ranking score).
        mean_score: mean of the merged windows' scores.
        n_windows: how many windows were merged.
        start_time: ISO 8601 wall-clock start, when the file name gives the recording time.
    """

    start_s: float
    end_s: float
    score: float
    mean_score: float
    n_windows: int
    start_time: str | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_dict(self) -> dict:
        return asdict(self)


def merge_events(
    starts_s: np.ndarray,
    ends_s: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    *,
    gap_s: float = 0.7,
    min_duration_s: float = 0.0,
) -> list[Event]:
    """Merge windows whose score is at least ``threshold`` into events.

    Windows are merged when they overlap or when the silence between them is at most ``gap_s`` seconds;
    events shorter than ``min_duration_s`` seconds are then dropped.

    Args:
        starts_s, ends_s: window bounds in seconds (any order).
        scores: owl probability per window.
        threshold: decision threshold in [0, 1].
        gap_s: largest gap in seconds bridged between two positive windows.
        min_duration_s: shortest event kept, in seconds.

    Returns:
        Events sorted by start time.
    """
    starts_s = np.asarray(starts_s, dtype=np.float64)
    ends_s = np.asarray(ends_s, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    hit = scores >= threshold
    order = np.argsort(starts_s[hit], kind="stable")
    s, e, p = starts_s[hit][order], ends_s[hit][order], scores[hit][order]
    events: list[Event] = []
    i = 0
    while i < len(s):
        j = i
        end = e[i]
        while j + 1 < len(s) and s[j + 1] <= end + gap_s + 1e-9:
            j += 1
            end = max(end, e[j])
        chunk = p[i: j + 1]
        events.append(Event(float(s[i]), float(end), float(chunk.max()), float(chunk.mean()), int(j - i + 1)))
        i = j + 1
    return [ev for ev in events if ev.duration_s >= min_duration_s - 1e-9]
