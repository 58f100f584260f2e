"""The result of a scan and the settings it ran with: :class:`Detection` and :class:`DetectionParams`.

A type only: exports, plots, labelling and evaluation import it without the engine
(:mod:`owlfinder.detect.engine`, which makes them). Events of a partial result are derived from its
windows only when first read (:class:`_LazyField`), so a scan can yield one per batch at no cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from owlfinder.detect.events import Event, merge_events
from owlfinder.timestamps import offset_time

__all__ = ["DEFAULT_PARAMS", "THRESHOLD_DIGITS", "Detection", "DetectionParams", "same_threshold"]


@dataclass(frozen=True)
class DetectionParams:
    """How a recording is scanned.

    Attributes:
        threshold: decision threshold; ``None`` uses the model's calibrated threshold.
        hop_s: seconds between window starts.
        gap_s: largest gap in seconds bridged when merging positive windows into one event.
        min_duration_s: events shorter than this many seconds are dropped.
        batch_size: windows per model call.
        max_duration_s: recordings longer than this are refused (``None``: no limit).
        block_s: decode block in seconds of input audio.
        num_threads: torch threads for the model on the CPU while a recording is scanned (``None``: one
            fewer than the cores, leaving one to the decoding thread, or all of them while the model is
            the bottleneck; see :class:`owlfinder.detect.engine._ThreadPolicy`). The caller's setting is
            restored after each batch.
        resample_quality: soxr quality for resampling to the model's rate (``"HQ"``; see
            :func:`owlfinder.audio.stream`).
        second_look_logit: after the scan, every grid window scoring within this many logits of the threshold
            (or above it) is looked at again: the windows half a hop before and after it are scored too, so a
            call cut by the grid is seen whole. ``None`` turns it off. On the leave-one-family-out calibration
            sites it raised recall at <= 1 false event per hour in all four folds, at about the cost of a few
            extra windows per candidate (docs/generalisation.md).
        description_check_logit: after the scan (and its second look), every window scoring within this many
            logits of the threshold (or above it) is checked against the published call description
            (:func:`owlfinder.detect.verifier.check_window`): one holding clear tonal notes of which none fits
            keeps only 1 % of its score. ``None`` turns it off. On by default: on calibration-site clips it passes
            99.5-100 % of every call family's calls (no family was used to build it) and rejects 3-28 % of the
            owl-like confusers, and on the leave-one-family-out folds it moved no calibration-site threshold or
            recall (docs/generalisation.md). Lowering the threshold afterwards more than this many logits below
            the scan's shows windows the check never looked at.
        description_unpaired_logit: with the description check on, a checked window that holds clear notes but
            no double hoot among those that fit (:meth:`owlfinder.detect.verifier.NoteRule.pair`) is lowered by
            this many logits. ``None``: left as it is.
    """

    threshold: float | None = None
    hop_s: float = 2.5
    gap_s: float = 0.7
    min_duration_s: float = 0.0
    batch_size: int = 32
    max_duration_s: float | None = None
    block_s: float = 5.0
    num_threads: int | None = None
    resample_quality: str = "HQ"
    second_look_logit: float | None = 3.0
    description_check_logit: float | None = 3.0
    description_unpaired_logit: float | None = None

    def __post_init__(self) -> None:
        if self.hop_s <= 0:
            raise ValueError("hop must be positive")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError("threshold must lie in [0, 1]")
        if self.batch_size < 1:
            raise ValueError("batch size must be at least 1")
        if self.gap_s < 0 or self.min_duration_s < 0:
            raise ValueError("gap and min-duration cannot be negative")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError("num_threads must be at least 1")
        if self.second_look_logit is not None and self.second_look_logit < 0:
            raise ValueError("second_look_logit cannot be negative")
        if self.description_unpaired_logit is not None and self.description_unpaired_logit < 0:
            raise ValueError("description_unpaired_logit cannot be negative")
        if self.description_check_logit is not None and self.description_check_logit < 0:
            raise ValueError("description_check_logit cannot be negative")

    def scan_key(self) -> dict:
        """The settings that decide which windows a scan scores and how (the scan part of
        :meth:`Detection.params_key`)."""
        return {"hop_s": self.hop_s, "second_look_logit": self.second_look_logit,
                "description_check_logit": self.description_check_logit,
                "description_unpaired_logit": self.description_unpaired_logit}


class _Deferred:
    """``fn(*args)``, computed when a :class:`_LazyField` is first read (picklable when ``fn`` is)."""

    __slots__ = ("fn", "args")

    def __init__(self, fn: Callable, *args):
        self.fn, self.args = fn, args


class _LazyField:
    """A dataclass field that may be given a :class:`_Deferred`; it is resolved (once) on first read."""

    def __set_name__(self, owner, name: str) -> None:
        self.slot = f"_lazy_{name}"

    def __get__(self, obj, objtype=None):
        if obj is None:
            raise AttributeError(self.slot)  # no class-level default: the field stays required
        val = obj.__dict__[self.slot]
        if isinstance(val, _Deferred):
            val = obj.__dict__[self.slot] = val.fn(*val.args)
        return val

    def __set__(self, obj, value) -> None:
        obj.__dict__[self.slot] = value


#: Decimal digits the JSON keeps of the threshold (a calibrated one like 0.8598797 is written 0.85988).
THRESHOLD_DIGITS = 6


def same_threshold(written: float, wanted: float) -> bool:
    """Whether a threshold read back from a result JSON is ``wanted``, at the precision it was written."""
    return round(float(written), THRESHOLD_DIGITS) == round(float(wanted), THRESHOLD_DIGITS)


@dataclass
class Detection:
    """The result of scanning one recording (complete, or partial while it runs or after a failure).

    ``events`` of the partial results that :func:`iter_detect` yields while it runs are derived from the
    windows only when first read, so a caller that only wants the final result pays nothing for them.
    """

    file: str
    duration_s: float
    sample_rate: int
    model: str
    threshold: float
    window_s: float
    hop_s: float
    gap_s: float
    min_duration_s: float
    recorded_at: str | None
    starts_s: np.ndarray
    ends_s: np.ndarray
    scores: np.ndarray
    events: list[Event] = _LazyField()  # type: ignore[assignment]
    status: str = "complete"  # complete | running | partial (stopped by an error part-way)
    error: str | None = None
    model_fingerprint: str = ""
    timings_s: dict[str, float] = field(default_factory=dict)
    #: the scan's :attr:`DetectionParams.second_look_logit` (``None``: the grid alone, as before it existed)
    second_look_logit: float | None = None
    #: the scan's :attr:`DetectionParams.description_check_logit` (``None``: no description check)
    description_check_logit: float | None = None
    #: the scan's :attr:`DetectionParams.description_unpaired_logit`
    description_unpaired_logit: float | None = None

    @property
    def max_score(self) -> float:
        return float(self.scores.max()) if len(self.scores) else 0.0

    def rethreshold(self, threshold: float, gap_s: float | None = None,
                    min_duration_s: float | None = None) -> Detection:
        """The same windows with events re-derived for another threshold (no model call)."""
        gap = self.gap_s if gap_s is None else gap_s
        mind = self.min_duration_s if min_duration_s is None else min_duration_s
        return replace(self, threshold=float(threshold), gap_s=gap, min_duration_s=mind,
                       events=_events(self.starts_s, self.ends_s, self.scores, threshold, gap, mind,
                                      self.recorded_at))

    def params_key(self) -> dict:
        """What must match for a saved result to be reused."""
        return {"model": self.model, "model_fingerprint": self.model_fingerprint, "window_s": self.window_s,
                "hop_s": self.hop_s, "second_look_logit": self.second_look_logit,
                "description_check_logit": self.description_check_logit,
                "description_unpaired_logit": self.description_unpaired_logit}  # = DetectionParams.scan_key()

    def to_dict(self, *, include_windows: bool = True) -> dict:
        """The JSON document described in docs/cli.md (``file, duration_s, ..., windows[], events[]``)."""
        doc = {
            "file": self.file,
            "duration_s": round(self.duration_s, 3),
            "sample_rate": self.sample_rate,
            "model": self.model,
            "model_fingerprint": self.model_fingerprint,
            "threshold": round(self.threshold, THRESHOLD_DIGITS),
            "window_s": self.window_s,
            "hop_s": self.hop_s,
            "second_look_logit": self.second_look_logit,
            "description_check_logit": self.description_check_logit,
            "description_unpaired_logit": self.description_unpaired_logit,
            "gap_s": self.gap_s,
            "min_duration_s": self.min_duration_s,
            "recorded_at": self.recorded_at,
            "status": self.status,
            "error": self.error,
            "events": [ev.to_dict() for ev in self.events],
        }
        if include_windows:
            doc["windows"] = [
                {"start_s": round(float(s), 3), "end_s": round(float(e), 3), "score": round(float(p), 6)}
                for s, e, p in zip(self.starts_s, self.ends_s, self.scores, strict=True)
            ]
        return doc

    @classmethod
    def from_dict(cls, doc: dict) -> Detection:
        wins = doc.get("windows", [])
        return cls(
            file=doc["file"],
            duration_s=float(doc["duration_s"]),
            sample_rate=int(doc.get("sample_rate") or 0),
            model=doc.get("model", ""),
            threshold=float(doc["threshold"]),
            window_s=float(doc["window_s"]),
            hop_s=float(doc["hop_s"]),
            gap_s=float(doc.get("gap_s", 0.7)),
            min_duration_s=float(doc.get("min_duration_s", 0.0)),
            recorded_at=doc.get("recorded_at"),
            starts_s=np.array([w["start_s"] for w in wins], dtype=np.float64),
            ends_s=np.array([w["end_s"] for w in wins], dtype=np.float64),
            scores=np.array([w["score"] for w in wins], dtype=np.float32),
            events=[Event(**ev) for ev in doc.get("events", [])],
            status=doc.get("status", "complete"),
            error=doc.get("error"),
            model_fingerprint=doc.get("model_fingerprint", ""),
            second_look_logit=doc.get("second_look_logit"),
            description_check_logit=doc.get("description_check_logit"),
            description_unpaired_logit=doc.get("description_unpaired_logit"),
        )


#: Defaults (docs/cli.md): 2.5 s hop, 0.7 s gap, the model's calibrated threshold.
DEFAULT_PARAMS = DetectionParams()


def _events(starts, ends, scores, threshold, gap_s, min_duration_s, recorded_at) -> list[Event]:
    events = merge_events(starts, ends, scores, threshold, gap_s=gap_s, min_duration_s=min_duration_s)
    if recorded_at:
        from datetime import datetime

        t0 = datetime.fromisoformat(recorded_at)
        for ev in events:
            ev.start_time = offset_time(t0, ev.start_s)
    return events
