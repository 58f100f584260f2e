"""Detection engine: stream one recording through an :class:`~owlfinder.detect.model.OwlClassifier` into events.

The one place that windows a recording and scores it. Decoding, resampling, windowing and feature
extraction run in a producer thread, overlapped with the model in the caller's thread; both hold at most a
few batches, so memory does not grow with the file. When the model waits for audio, the producer hands it
raw windows and the model's thread extracts their features itself, so the work splits itself between the
two threads whichever side is slower.

- :func:`scan_windows` scores the windows of the grid (all of them, or a range ``[k0, k1)`` of window
  indices, as the Space's ZeroGPU slices do) batch by batch;
- :class:`DetectionBuilder` collects such batches into a (partial or complete)
  :class:`~owlfinder.detect.detection.Detection`;
- :func:`second_look` scores the half-hop neighbours of the windows near or above the threshold (a call the
  grid cuts in two is then seen whole in one window);
- :func:`iter_detect` yields a growing partial result after every batch (the Space draws its timeline from
  it; its events are derived only when read); :func:`detect` returns the final one.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from owlfinder import audio
from owlfinder.detect.detection import DEFAULT_PARAMS, Detection, DetectionParams, _Deferred, _events
from owlfinder.detect.events import shift_threshold
from owlfinder.detect.model import OwlClassifier
from owlfinder.detect.windows import frame_batches
from owlfinder.timestamps import parse_recording_start

__all__ = ["Detection", "DetectionBuilder", "DetectionParams", "check_description", "detect", "iter_detect",
           "scan_windows", "second_look"]

Progress = Callable[[float, float], None]
#: One scored batch: window starts (samples at the model's rate from the start of the file), owl scores,
#: and the sample (from the start of the file) decoding had reached.
Batch = tuple[np.ndarray, np.ndarray, int]
WindowRange = tuple[int, "int | None"]


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
             window_range: WindowRange | None, out: queue.Queue, stop: threading.Event,
             timings: dict[str, float], threads: int | None) -> None:
    """Producer thread: decode, resample, frame and feature-extract batches into ``out``.

    When the queue is empty (the model's thread is waiting for work) a batch goes out as raw windows and
    the model's thread extracts their features; otherwise the producer does it and stays ahead.
    """
    sr = clf.sampling_rate
    win = clf.window_samples
    hop = max(1, int(round(params.hop_s * sr)))
    k0, k1 = window_range if window_range is not None else (0, None)
    first = k0 * hop  # sample where decoding starts
    # A range decodes only the audio its windows need, plus a second of margin for the resampler.
    end_s = None if k1 is None else ((k1 - 1) * hop + win) / sr + 1.0
    keep = None
    if k1 is not None:
        def keep(rel: int) -> bool:  # on the grid and inside the range (not the stream's end-aligned window)
            return rel % hop == 0 and first + rel < k1 * hop
    n_total = first
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
        blocks = audio.stream(path, sr, block_s=params.block_s, start_s=first / sr, end_s=end_s, info=info,
                              quality=params.resample_quality, timings=timings)
        for starts, batch in frame_batches(counted(blocks), win, hop, params.batch_size, keep=keep):
            if first:
                starts = starts + first
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


def scan_windows(
    path: str | Path,
    clf: OwlClassifier,
    params: DetectionParams = DEFAULT_PARAMS,
    *,
    window_range: WindowRange | None = None,
    info: audio.AudioInfo | None = None,
    timings: dict[str, float] | None = None,
) -> Iterator[Batch]:
    """Score the windows of a recording's grid, batch by batch.

    Window ``k`` starts at ``k * hop`` samples; when the grid does not end at the end of the file, a final
    window ends there (see :func:`owlfinder.detect.windows.window_grid`).

    Args:
        path: the recording.
        clf: a loaded classifier.
        params: scan parameters (hop, batch size, decode block, resampler quality, threads).
        window_range: ``(k0, k1)``: only the windows ``k0 <= k < k1`` (``k1=None``: to the end of the file,
            including the final end-aligned window). Only the audio they need is decoded, and they are
            exactly the windows a scan of the whole file gives for those indices.
        info: a probe result, to avoid probing twice.
        timings: when given, seconds spent in ``decode``, ``resample``, ``features`` and ``model`` are added
            to it (the first three in the producer thread, overlapped with the model).

    Yields:
        ``(start_samples, scores, n_samples)`` per batch (see :data:`Batch`).

    Raises:
        owlfinder.audio.AudioError: decoding failed; the batches cut before the failure were yielded first.
    """
    path = str(path)
    info = info or audio.probe(path)
    if timings is None:
        timings = {}
    for key in ("decode", "resample", "features", "model"):
        timings.setdefault(key, 0.0)
    on_cpu = clf.device.type == "cpu"
    policy = _ThreadPolicy(params.num_threads) if on_cpu else None
    # Two batches in flight are enough to keep both threads busy; each more costs up to 10 MB of peak RSS.
    q: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()
    producer = threading.Thread(target=_produce, args=(path, info, clf, params, window_range, q, stop, timings,
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
                    return
                err = payload
                if isinstance(err, audio.AudioError):
                    raise err
                raise audio.AudioError(path, f"{type(err).__name__}: {err}") from err
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
            yield st, batch_scores, n_total
    finally:
        stop.set()
        producer.join(timeout=5)


class DetectionBuilder:
    """Collects scored batches (from :func:`scan_windows`, in order) into a :class:`Detection`.

    Args:
        path: the recording, as named in the result.
        clf: the classifier that scored the windows.
        params: the scan parameters.
        info: the recording's probe result.
        recorded_at: ISO wall-clock start of the recording, or ``None``.
    """

    def __init__(self, path: str, clf: OwlClassifier, params: DetectionParams, info: audio.AudioInfo,
                 recorded_at: str | None):
        self.path, self.clf, self.params, self.info, self.recorded_at = path, clf, params, info, recorded_at
        self.threshold = clf.threshold if params.threshold is None else float(params.threshold)
        capacity = int(info.duration_s / max(params.hop_s, 1e-3)) + 4
        self._starts = _Grow(capacity, np.int64)
        self._scores = _Grow(capacity, np.float32)
        self.n_samples = 0

    def add(self, starts: np.ndarray, scores: np.ndarray, n_samples: int) -> None:
        """Append one batch; ``n_samples`` is the sample (from the start of the file) decoding reached."""
        self._scores.append(np.asarray(scores, dtype=np.float32))
        self._starts.append(starts)
        self.n_samples = max(self.n_samples, int(n_samples))

    def add_off_grid(self, starts: np.ndarray, scores: np.ndarray) -> None:
        """Merge extra windows (from :func:`second_look`) into the collected ones, kept in start order; a start
        already present is not added twice."""
        st, sc = self._starts.view(), self._scores.view()
        new = ~np.isin(starts, st)
        st = np.concatenate([st, np.asarray(starts, dtype=np.int64)[new]])
        sc = np.concatenate([sc, np.asarray(scores, dtype=np.float32)[new]])
        order = np.argsort(st, kind="stable")
        self._starts, self._scores = _Grow(len(st), np.int64), _Grow(len(st), np.float32)
        self._starts.append(st[order])
        self._scores.append(sc[order])

    def result(self, status: str, error: str | None = None, timings: dict[str, float] | None = None
               ) -> Detection:
        """The windows so far as a :class:`Detection` (``status``: complete | running | partial).

        Only a complete result derives its events at once; the others when ``events`` is first read.
        Partial results share the window arrays (read-only views of the growing buffers).
        """
        clf, params, info = self.clf, self.params, self.info
        sr, win = clf.sampling_rate, clf.window_samples
        st = self._starts.view()
        sc = self._scores.view()
        total = max(self.n_samples, int(st[-1]) + 1 if len(st) else 0)
        starts_s = st / sr
        ends_s = np.minimum(st + win, max(total, 1)) / sr
        duration = total / sr if status == "complete" else max(info.duration_s, total / sr)
        args = (starts_s, ends_s, sc, self.threshold, params.gap_s, params.min_duration_s, self.recorded_at)
        return Detection(
            file=self.path, duration_s=float(duration), sample_rate=info.sample_rate, model=clf.name,
            threshold=self.threshold, window_s=clf.window_s, hop_s=params.hop_s, gap_s=params.gap_s,
            min_duration_s=params.min_duration_s, recorded_at=self.recorded_at, starts_s=starts_s,
            ends_s=ends_s, scores=sc, events=_events(*args) if status == "complete" else _Deferred(_events, *args),
            status=status, error=error, model_fingerprint=clf.fingerprint, timings_s=dict(timings or {}),
            second_look_logit=params.second_look_logit,
        )


def second_look(path: str | Path, clf: OwlClassifier, params: DetectionParams, built: DetectionBuilder,
                info: audio.AudioInfo | None = None, timings: dict[str, float] | None = None,
                scan: Callable[[DetectionParams, list[WindowRange]], Iterator[Batch]] | None = None) -> int:
    """Score the windows half a hop before and after each grid window that came within
    ``params.second_look_logit`` logits of the threshold, and add them to ``built``.

    The grid puts a window every hop; a call that straddles two windows is seen only in part by each, and
    scores lower than it would centred. The neighbours are the windows a scan at half the hop would add there,
    decoded with :func:`scan_windows` (its window ranges), so only the audio around the candidates is read
    again. ``scan(params, ranges)`` replaces that scan: it scores the windows ``k0 <= k < k1`` of each
    ``(k0, k1)`` in ``ranges`` on the half-hop grid (the Space's ZeroGPU slices pass their GPU call, so a few GPU
    calls cover every candidate).

    Returns:
        How many windows were added.
    """
    if params.second_look_logit is None:
        return 0
    sr, win = clf.sampling_rate, clf.window_samples
    hop = max(1, int(round(params.hop_s * sr)))
    half = hop // 2
    if half < 1:
        return 0
    thr = min(max(built.threshold, 1e-7), 1 - 1e-7)
    floor = shift_threshold(thr, -params.second_look_logit)
    st, sc = built._starts.view(), built._scores.view()
    cand = st[(sc >= floor) & (st % hop == 0)]  # grid windows only (not the end-aligned last one)
    last = built.n_samples - win  # no neighbour runs past the end of the audio decoded
    # on the half-hop grid (for an odd hop, the nearest point of it)
    want = np.unique(np.rint(np.concatenate([cand - half, cand + half]) / half).astype(np.int64) * half)
    want = want[(want >= 0) & (want <= last) & ~np.isin(want, st)]
    if not len(want):
        return 0
    fine = replace(params, hop_s=half / sr)
    idx = want // half
    runs = np.split(idx, np.flatnonzero(np.diff(idx) > 2) + 1)  # neighbours one window apart share a decode
    if scan is None:
        def scan(prm: DetectionParams, ranges: list[WindowRange]) -> Iterator[Batch]:
            for k0, k1 in ranges:
                yield from scan_windows(path, clf, prm, window_range=(k0, k1), info=info, timings=timings)
    starts, scores = [], []
    for s0, p, _ in scan(fine, [(int(run[0]), int(run[-1]) + 1) for run in runs]):
        keep = np.isin(s0, want)
        starts.append(np.asarray(s0)[keep])
        scores.append(np.asarray(p)[keep])
    if not starts:
        return 0
    starts_a, scores_a = np.concatenate(starts), np.concatenate(scores)
    built.add_off_grid(starts_a, scores_a)
    return int(len(starts_a))


def check_description(path: str | Path, clf: OwlClassifier, params: DetectionParams, det: Detection,
                      info: audio.AudioInfo | None = None) -> Detection:
    """``det`` with its candidate windows checked against the published call description
    (:func:`owlfinder.detect.verifier.verify_detection`), when ``params.description_check_logit`` asks for it:
    the windows within that many logits of the threshold, or above it, are read again and those the description
    rules out keep 1 % of their score. An unreadable stretch leaves its window as it was."""
    if params.description_check_logit is None:
        return det
    from owlfinder.detect.verifier import verify_detection

    t0 = time.perf_counter()
    thr = min(max(det.threshold, 1e-7), 1 - 1e-7)
    floor = shift_threshold(thr, -params.description_check_logit)
    info = info or audio.probe(path)
    sr = clf.sampling_rate

    def read(start_s: float, end_s: float) -> np.ndarray:
        try:
            return audio.load(path, sr, start_s=start_s, end_s=end_s, info=info)
        except audio.AudioError as err:  # the window was scored, so this is rare: keep it rather than guess
            logging.getLogger(__name__).warning("%s: description check skipped a window (%s)", path, err.reason)
            return np.zeros(0, dtype=np.float32)

    out, checked, rejected = verify_detection(det, read, sr, floor, unpaired_logit=params.description_unpaired_logit)
    out.description_check_logit = params.description_check_logit
    out.description_unpaired_logit = params.description_unpaired_logit
    out.timings_s = {**det.timings_s, "description_check": time.perf_counter() - t0}
    if "total" in out.timings_s:
        out.timings_s["total"] += out.timings_s["description_check"]
    return out


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
    recorded = parse_recording_start(path)
    built = DetectionBuilder(path, clf, params, info, recorded.isoformat() if recorded else None)
    sr = clf.sampling_rate
    timings = {"decode": 0.0, "resample": 0.0, "features": 0.0, "model": 0.0, "total": 0.0}
    t_start = time.perf_counter()

    def result(status: str, error: str | None = None) -> Detection:
        timings["total"] = time.perf_counter() - t_start
        return built.result(status, error, timings)

    batches = scan_windows(path, clf, params, info=info, timings=timings)
    try:
        for st, sc, n_total in batches:
            built.add(st, sc, n_total)
            if progress is not None:
                progress(min(n_total / sr, info.duration_s), info.duration_s)
            yield result("running")
    except audio.AudioError as err:
        yield result("partial", err.reason)
        raise
    finally:
        batches.close()  # a caller that stops early stops the decoding thread at once
    try:
        second_look(path, clf, params, built, info=info, timings=timings)
    except audio.AudioError as err:  # the grid is complete and stands; the extra windows are only a refinement
        logging.getLogger(__name__).warning("%s: second look skipped (%s)", path, err.reason)
    final = check_description(path, clf, params, result("complete"), info=info)
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
