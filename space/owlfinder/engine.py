"""Detection engine: stream one recording through an :class:`~owlfinder.model.OwlClassifier` into events.

Decoding, resampling, windowing and feature extraction run in a producer thread, overlapped with the
model in the caller's thread; both hold at most a few batches, so memory does not grow with the file.
:func:`iter_detect` yields a growing partial result after every batch (the Space draws its timeline from
it); :func:`detect` returns the final one.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from . import audio
from .events import Event, merge_events
from .model import OwlClassifier
from .timestamps import offset_time, parse_recording_start
from .windows import frame_stream

__all__ = ["Detection", "DetectionParams", "detect", "iter_detect"]

Progress = Callable[[float, float], None]


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
    """

    threshold: float | None = None
    hop_s: float = 2.5
    gap_s: float = 0.7
    min_duration_s: float = 0.0
    batch_size: int = 32
    max_duration_s: float | None = None
    block_s: float = 30.0

    def __post_init__(self) -> None:
        if self.hop_s <= 0:
            raise ValueError("hop must be positive")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError("threshold must lie in [0, 1]")
        if self.batch_size < 1:
            raise ValueError("batch size must be at least 1")
        if self.gap_s < 0 or self.min_duration_s < 0:
            raise ValueError("gap and min-duration cannot be negative")


@dataclass
class Detection:
    """The result of scanning one recording (complete, or partial while it runs or after a failure)."""

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
    events: list[Event]
    status: str = "complete"  # complete | running | partial (stopped by an error part-way)
    error: str | None = None
    model_fingerprint: str = ""
    timings_s: dict[str, float] = field(default_factory=dict)

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
                "hop_s": self.hop_s}

    def to_dict(self, *, include_windows: bool = True) -> dict:
        """The JSON document described in the README (``file, duration_s, ..., windows[], events[]``)."""
        doc = {
            "file": self.file,
            "duration_s": round(self.duration_s, 3),
            "sample_rate": self.sample_rate,
            "model": self.model,
            "model_fingerprint": self.model_fingerprint,
            "threshold": round(self.threshold, 6),
            "window_s": self.window_s,
            "hop_s": self.hop_s,
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
        )


#: Defaults from the README: 2.5 s hop, 0.7 s gap, the model's calibrated threshold.
DEFAULT_PARAMS = DetectionParams()


def _events(starts, ends, scores, threshold, gap_s, min_duration_s, recorded_at) -> list[Event]:
    events = merge_events(starts, ends, scores, threshold, gap_s=gap_s, min_duration_s=min_duration_s)
    if recorded_at:
        from datetime import datetime

        t0 = datetime.fromisoformat(recorded_at)
        for ev in events:
            ev.start_time = offset_time(t0, ev.start_s)
    return events


class _Stop(Exception):
    pass


def _produce(path: str, info: audio.AudioInfo, clf: OwlClassifier, params: DetectionParams,
             out: queue.Queue, stop: threading.Event, timings: dict[str, float]) -> None:
    """Producer thread: decode, resample, frame and feature-extract batches into ``out``."""
    sr = clf.sampling_rate
    win = clf.window_samples
    hop = max(1, int(round(params.hop_s * sr)))
    n_total = 0

    def put(item) -> None:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stop

    def counted(blocks):
        nonlocal n_total
        it = iter(blocks)
        while True:
            t = time.perf_counter()
            try:
                block = next(it)
            except StopIteration:
                return
            finally:
                timings["decode"] += time.perf_counter() - t
            n_total += len(block)
            yield block

    try:
        starts: list[int] = []
        batch = np.empty((params.batch_size, win), dtype=np.float32)
        for start, window in frame_stream(counted(audio.stream(path, sr, block_s=params.block_s, info=info)),
                                          win, hop):
            batch[len(starts)] = window
            starts.append(start)
            if len(starts) == params.batch_size:
                t = time.perf_counter()
                feats = clf.features(batch)
                timings["features"] += time.perf_counter() - t
                put((np.array(starts), n_total, feats))
                starts = []
        if starts:
            t = time.perf_counter()
            feats = clf.features(batch[: len(starts)])
            timings["features"] += time.perf_counter() - t
            put((np.array(starts), n_total, feats))
        put(("done", n_total, None))
    except _Stop:
        return
    except BaseException as err:  # handed to the consumer, which re-raises it
        try:
            if starts and isinstance(err, audio.AudioError):
                # Score the windows already cut before the damage, so a partial result keeps them.
                put((np.array(starts), n_total, clf.features(batch[: len(starts)])))
            put(("error", n_total, err))
        except _Stop:
            return


def iter_detect(
    path: str | Path,
    clf: OwlClassifier,
    params: DetectionParams = DEFAULT_PARAMS,
    *,
    progress: Progress | None = None,
    info: audio.AudioInfo | None = None,
) -> Iterator[Detection]:
    """Scan a recording, yielding a growing partial :class:`Detection` after every batch.

    The last item yielded is the final result (``status == "complete"``). A decoding failure part-way
    raises :class:`~owlfinder.audio.AudioError` after yielding the windows done so far with
    ``status == "partial"`` and the error set, so a caller can keep them.

    Args:
        path: the recording.
        clf: a loaded classifier.
        params: scan parameters.
        progress: called as ``progress(seconds_done, seconds_total)``.
        info: a probe result, to avoid probing twice.
    """
    path = str(path)
    info = info or audio.probe(path)
    if params.max_duration_s is not None and info.duration_s > params.max_duration_s:
        raise audio.AudioError(path, f"recording is {info.duration_s / 3600:.1f} h long; the limit is "
                                     f"{params.max_duration_s / 3600:.1f} h")
    threshold = clf.threshold if params.threshold is None else float(params.threshold)
    recorded = parse_recording_start(path)
    recorded_at = recorded.isoformat() if recorded else None
    sr = clf.sampling_rate
    win = clf.window_samples
    timings = {"decode": 0.0, "features": 0.0, "model": 0.0, "total": 0.0}
    t_start = time.perf_counter()
    starts: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    n_total = 0

    def result(status: str, error: str | None = None) -> Detection:
        st = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
        sc = np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)
        total = max(n_total, int(st[-1]) + 1 if len(st) else 0)
        starts_s = st / sr
        ends_s = np.minimum(st + win, max(total, 1)) / sr
        duration = total / sr if status == "complete" else max(info.duration_s, total / sr)
        timings["total"] = time.perf_counter() - t_start
        return Detection(
            file=path, duration_s=float(duration), sample_rate=info.sample_rate, model=clf.name,
            threshold=threshold, window_s=clf.window_s, hop_s=params.hop_s, gap_s=params.gap_s,
            min_duration_s=params.min_duration_s, recorded_at=recorded_at, starts_s=starts_s, ends_s=ends_s,
            scores=sc, events=_events(starts_s, ends_s, sc, threshold, params.gap_s, params.min_duration_s,
                                      recorded_at),
            status=status, error=error, model_fingerprint=clf.fingerprint, timings_s=dict(timings),
        )

    q: queue.Queue = queue.Queue(maxsize=3)
    stop = threading.Event()
    producer = threading.Thread(target=_produce, args=(path, info, clf, params, q, stop, timings),
                                name="owl-decode", daemon=True)
    producer.start()
    try:
        while True:
            st, n_total, payload = q.get()
            if isinstance(st, str):
                if st == "done":
                    break
                err = payload
                msg = err.reason if isinstance(err, audio.AudioError) else f"{type(err).__name__}: {err}"
                yield result("partial", msg)
                if isinstance(err, audio.AudioError):
                    raise err
                raise audio.AudioError(path, msg) from err
            t = time.perf_counter()
            scores.append(clf.predict(payload))
            timings["model"] += time.perf_counter() - t
            starts.append(st)
            if progress is not None:
                progress(min(n_total / sr, info.duration_s), info.duration_s)
            yield result("running")
    finally:
        stop.set()
        producer.join(timeout=5)
    final = result("complete")
    if progress is not None:
        progress(final.duration_s, final.duration_s)
    yield final


def detect(
    path: str | Path,
    clf: OwlClassifier,
    params: DetectionParams = DEFAULT_PARAMS,
    *,
    progress: Progress | None = None,
    info: audio.AudioInfo | None = None,
) -> Detection:
    """Scan a recording and return the complete :class:`Detection` (see :func:`iter_detect`)."""
    last = None
    for last in iter_detect(path, clf, params, progress=progress, info=info):
        pass
    assert last is not None
    return last


def params_dict(params: DetectionParams) -> dict:
    return asdict(params)
