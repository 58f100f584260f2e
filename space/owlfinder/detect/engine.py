"""Detection engine: stream one recording through an :class:`~owlfinder.detect.model.OwlClassifier` into events.

Decoding, resampling, windowing and feature extraction run in a producer thread, overlapped with the
model in the caller's thread; both hold at most a few batches, so memory does not grow with the file.
When the model waits for audio, the producer hands it raw windows and the model's thread extracts their
features itself, so the work splits itself between the two threads whichever side is slower.
:func:`iter_detect` yields a growing partial result after every batch (the Space draws its timeline from
it; its events are derived only when read); :func:`detect` returns the final one.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from owlfinder import audio
from owlfinder.detect.events import Event, merge_events
from owlfinder.detect.model import OwlClassifier
from owlfinder.detect.windows import frame_batches
from owlfinder.timestamps import offset_time, parse_recording_start

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
        num_threads: torch threads for the model on the CPU while a recording is scanned (``None``: one
            fewer than the cores, leaving one to the decoding thread, or all of them while the model is
            the bottleneck; see :class:`_ThreadPolicy`). The caller's setting is restored after each batch.
        resample_quality: soxr quality for resampling to the model's rate (``"HQ"``; see
            :func:`owlfinder.audio.stream`).
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
            "threshold": round(self.threshold, THRESHOLD_DIGITS),
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


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class _ThreadPolicy:
    """How many torch threads the model's thread uses on the CPU.

    ``num_threads`` fixes it. Otherwise the model starts with one core fewer than the machine has, leaving
    one to the decoding thread; when the model is the bottleneck (it has not waited for audio over the
    last few batches, so the decoding thread is mostly idle) it takes every core, and gives one back as
    soon as it waits again, or when other work keeps the machine busy. On two cores that is 1 thread for a
    small model such as the starter (decoding is the bottleneck) and 2 for a SEW-D-size one on an idle
    machine (measured 2x faster per batch than 1 thread there).
    """

    def __init__(self, fixed: int | None):
        self.fixed = fixed
        self.cores = _cores()
        self.n = fixed if fixed is not None else max(1, self.cores - 1)
        self._idle_batches = 0

    def update(self, waited_s: float, model_s: float) -> None:
        if self.fixed is not None or self.cores < 2:
            return
        if waited_s < 0.02 * model_s:
            self._idle_batches += 1
            if self._idle_batches >= 3 and self._cores_free():
                self.n = self.cores
        else:
            self._idle_batches = 0
            self.n = max(1, self.cores - 1)

    def _cores_free(self) -> bool:
        """Whether the machine is otherwise idle enough for one more busy thread (the 1-minute load average,
        which counts this scan's own two threads, is below the core count). On a shared machine an extra
        OpenMP thread that keeps being descheduled makes every forward pass wait for it: under a load of 8
        on 2 cores a Whisper-size model ran 2.5x slower per batch with 2 threads than with 1."""
        try:
            return os.getloadavg()[0] < self.cores
        except OSError:
            return True


class _Threads:
    """Run torch with ``n`` intra-op threads in the calling thread, then put back what was there.

    Torch's thread count is per OS thread here (OpenMP), so it is set around each call rather than once:
    a generator may be resumed from different threads (Gradio does), and the caller's own setting must
    survive between batches.
    """

    __slots__ = ("n", "prev")

    def __init__(self, n: int | None):
        self.n, self.prev = n, None

    def __enter__(self) -> None:
        if self.n is not None:
            self.prev = torch.get_num_threads()
            if self.prev != self.n:
                torch.set_num_threads(self.n)

    def __exit__(self, *exc) -> None:
        if self.prev is not None and self.prev != self.n:
            torch.set_num_threads(self.prev)


def _produce(path: str, info: audio.AudioInfo, clf: OwlClassifier, params: DetectionParams,
             out: queue.Queue, stop: threading.Event, timings: dict[str, float],
             threads: int | None) -> None:
    """Producer thread: decode, resample, frame and feature-extract batches into ``out``.

    When the queue is empty (the model's thread is waiting for work) a batch goes out as raw windows and
    the model's thread extracts its features; otherwise the producer does it and stays ahead.
    """
    sr = clf.sampling_rate
    win = clf.window_samples
    hop = max(1, int(round(params.hop_s * sr)))
    n_total = 0
    clock = time.perf_counter
    if threads is not None:
        torch.set_num_threads(threads)  # this thread is ours: no need to put it back

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
        for block in blocks:
            n_total += len(block)
            yield block

    try:
        blocks = audio.stream(path, sr, block_s=params.block_s, info=info, quality=params.resample_quality,
                              timings=timings)
        for starts, batch in frame_batches(counted(blocks), win, hop, params.batch_size):
            if out.empty():
                put((starts, n_total, batch))  # the model's thread is idle: it extracts the features
                continue
            t = clock()
            feats = clf.features(batch)
            timings["features"] += clock() - t
            put((starts, n_total, feats))
        put(("done", n_total, None))
    except _Stop:
        return
    except BaseException as err:  # handed to the consumer, which re-raises it
        try:
            put(("error", n_total, err))
        except _Stop:
            return


class _Grow:
    """An append-only 1-D buffer whose prefix views stay valid after later appends."""

    __slots__ = ("buf", "n")

    def __init__(self, capacity: int, dtype):
        self.buf = np.empty(max(16, capacity), dtype=dtype)
        self.n = 0

    def append(self, values: np.ndarray) -> None:
        end = self.n + len(values)
        if end > len(self.buf):  # a new buffer: views handed out earlier keep the old one
            grown = np.empty(max(end, 2 * len(self.buf)), dtype=self.buf.dtype)
            grown[: self.n] = self.buf[: self.n]
            self.buf = grown
        self.buf[self.n: end] = values
        self.n = end

    def view(self) -> np.ndarray:
        return self.buf[: self.n]


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

    Partial results share their window arrays with the scan (read-only views) and derive their events
    only when ``events`` is read, so each costs next to nothing to yield.

    ``timings_s`` holds the seconds spent in ``decode`` (with the downmix), ``resample``, ``features``,
    ``model`` and the ``total``; the first three run in the producer thread, overlapped with the model.

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
    timings = {"decode": 0.0, "resample": 0.0, "features": 0.0, "model": 0.0, "total": 0.0}
    t_start = time.perf_counter()
    capacity = int(info.duration_s / max(params.hop_s, 1e-3)) + 4
    starts = _Grow(capacity, np.int64)
    scores = _Grow(capacity, np.float32)
    n_total = 0
    on_cpu = clf.device.type == "cpu"
    policy = _ThreadPolicy(params.num_threads) if on_cpu else None

    def result(status: str, error: str | None = None) -> Detection:
        st = starts.view()
        sc = scores.view()
        total = max(n_total, int(st[-1]) + 1 if len(st) else 0)
        starts_s = st / sr
        ends_s = np.minimum(st + win, max(total, 1)) / sr
        duration = total / sr if status == "complete" else max(info.duration_s, total / sr)
        timings["total"] = time.perf_counter() - t_start
        args = (starts_s, ends_s, sc, threshold, params.gap_s, params.min_duration_s, recorded_at)
        return Detection(
            file=path, duration_s=float(duration), sample_rate=info.sample_rate, model=clf.name,
            threshold=threshold, window_s=clf.window_s, hop_s=params.hop_s, gap_s=params.gap_s,
            min_duration_s=params.min_duration_s, recorded_at=recorded_at, starts_s=starts_s, ends_s=ends_s,
            scores=sc, events=_events(*args) if status == "complete" else _Deferred(_events, *args),
            status=status, error=error, model_fingerprint=clf.fingerprint, timings_s=dict(timings),
        )

    # Two batches in flight are enough to keep both threads busy; each more costs up to 10 MB of peak RSS.
    q: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()
    producer = threading.Thread(target=_produce, args=(path, info, clf, params, q, stop, timings,
                                                       1 if on_cpu else None),
                                name="owl-decode", daemon=True)
    producer.start()
    try:
        while True:
            t_wait = time.perf_counter()
            st, n_total, payload = q.get()
            t_got = time.perf_counter()
            if isinstance(st, str):
                if st == "done":
                    break
                err = payload
                msg = err.reason if isinstance(err, audio.AudioError) else f"{type(err).__name__}: {err}"
                yield result("partial", msg)
                if isinstance(err, audio.AudioError):
                    raise err
                raise audio.AudioError(path, msg) from err
            with _Threads(policy.n if policy is not None else None):
                if isinstance(payload, np.ndarray):  # raw windows: the producer was behind
                    t = time.perf_counter()
                    payload = clf.features(payload)
                    timings["features"] += time.perf_counter() - t
                t = time.perf_counter()
                batch_scores = clf.predict(payload)
                model_s = time.perf_counter() - t
                timings["model"] += model_s
            if policy is not None:
                policy.update(t_got - t_wait, model_s)
            scores.append(batch_scores)
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
