"""What the Space does, without gradio: take an upload, scan it, keep the session's results, cut event clips.

:class:`DetectService` is the whole back end of the Detect tab and of the ``/detect`` API. Its methods take
plain paths and numbers and return plain data (:class:`View`, :class:`EventView`, JSON dicts); errors meant
for people are :class:`ServiceError` with a one-line message. The gradio callbacks only call these methods.

Files. An upload's file name is only ever *shown* (and read for the recording's wall-clock start): the file
itself is hard-linked (or copied) into a fresh scratch folder under the server's own name ``recording`` plus
a known audio suffix, and the original upload is removed at once. A browser session keeps its recording
(for event playback and re-thresholding) until it starts another run, closes, or stays idle for
``session_ttl_s``; an API call removes everything when it returns, after an error too. Scratch folders left
behind by a crash are swept when the service starts (at once when the process that made them is gone).

Gradio stores uploads by content (``<upload folder>/<sha256>/<name>``), so two requests that upload the same
bytes under the same name share one path. The original upload is removed only while it is the file this
request took (same inode) and no request waiting in the queue names it (``upload_refs``, wired to gradio's
queue by :func:`owlfinder.ui.app.build_app`; the waiting one removes it after its turn). A taken upload also
stays hard-linked under ``<scratch>/recent/`` for ``recent_s`` seconds, for a request with the same upload
that reaches the queue just after the first one took it.

Limits: ``max_upload_bytes`` (gradio refuses larger uploads; the service checks again), ``max_hours`` (from
the header, before any decoding) and ``max_request_s`` (checked between batches while scanning). Messages
never hold a server path: :func:`owlfinder.errors.scrub_paths` cuts them to file names.

Why one module of about 730 lines: the upload life cycle (take, share, release, sweep) and the scan it
serves hold each other's invariants (who may remove which file, when); the scan itself is the engine's
(:func:`owlfinder.detect.engine.iter_detect`, or :func:`~owlfinder.detect.engine.scan_windows` in ZeroGPU
slices), the pictures are :mod:`owlfinder.ui.plots`.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from owlfinder import audio
from owlfinder.audio import AudioError, AudioInfo
from owlfinder.detect.detection import Detection, DetectionParams
from owlfinder.detect.engine import DetectionBuilder, check_description, iter_detect, second_look
from owlfinder.detect.exports import FORMATS, SUFFIXES, write_detection
from owlfinder.detect.model import ModelError, OwlClassifier, load_classifier
from owlfinder.errors import OwlFinderError, public_message, scrub_paths
from owlfinder.timestamps import parse_recording_start
from owlfinder.ui import plots
from owlfinder.ui import zerogpu as gpu
from owlfinder.ui.config import AppConfig

__all__ = [
    "UPLOAD_SUFFIXES",
    "DetectService",
    "EventView",
    "LabelQueueLike",
    "ServiceError",
    "Session",
    "Upload",
    "View",
    "public_error",
    "safe_stem",
    "scrub_paths",
    "summary_markdown",
]

log = logging.getLogger(__name__)

#: Offered in the upload dialog; anything else that :func:`owlfinder.audio.probe` can read works via the API.
UPLOAD_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a")
#: Download formats, in the order shown.
DOWNLOAD_FORMATS = FORMATS
#: Playback clips are written at most at this rate (Hz).
CLIP_MAX_SR = 48_000
#: This process incarnation, in scratch folder names (``run-<pid>-<token>-<id>``): a restarted Space that got
#: the same PID still knows the folders of the process before it are orphans.
_PROCESS_TOKEN = uuid.uuid4().hex[:12]
_RUN_RE = re.compile(r"^run-(\d+)-([0-9a-f]{12})-[0-9a-f]{32}$")

Progress = Callable[[float, str], None]


class ServiceError(OwlFinderError):
    """A problem to show a person: ``str(err)`` is one line naming the file and what is wrong."""


class LabelQueueLike:  # pragma: no cover - documentation of the contract only
    """What the service needs of :class:`owlfinder.labelling.queue.LabelQueue`."""

    def add_detection(self, det: Detection, source_path: str, *, n_uncertain: int = 10,
                      display_name: str | None = None) -> int: ...


def safe_stem(name: str, default: str = "recording") -> str:
    """A file-name stem for downloads made from an uploaded name: ASCII letters, digits, ``.+-_`` only."""
    stem = Path(str(name).replace("\\", "/")).name
    for suffix in audio.AUDIO_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    stem = re.sub(r"[^A-Za-z0-9.+_-]+", "_", stem).strip("._-")[:120]
    return stem or default


def _scrub(reason: str, path: Path, display_name: str) -> str:
    """An error reason with the server's paths (full or as a bare name) replaced by the upload's name."""
    for text in (str(path), str(path.resolve()), path.name):
        reason = reason.replace(text, display_name)
    return reason


#: One line for an unexpected error, safe to show anyone (see :func:`owlfinder.errors.public_message`).
public_error = public_message


def _file_id(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(device, inode)`` of a file, or ``None`` when it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _orphaned(name: str) -> bool:
    """Whether a scratch folder ``run-<pid>-<token>-<id>`` was made by a process that is gone."""
    m = _RUN_RE.match(name)
    if m is None:
        return False  # an older name: left to the age rule
    pid, token = int(m.group(1)), m.group(2)
    if pid == os.getpid():
        return token != _PROCESS_TOKEN  # an earlier process that had our PID (a restarted container)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, someone else's
        return False
    return False


def _fmt_bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} bytes"


def _display_name(name: str | None, fallback: str) -> str:
    text = " ".join(str(name or "").replace("\\", "/").split("/")[-1].split())
    return text[:200] or fallback


# --------------------------------------------------------------------------------------------- data


@dataclass
class Upload:
    """A recording the service owns for the length of a run or a session.

    Attributes:
        path: the server's own path for it (``<scratch>/<id>/recording<suffix>``).
        display_name: the uploaded file's name, for people and wall-clock parsing only.
        info: its probe result.
        recorded_at: ISO start parsed from ``display_name``, or ``None``.
        source: where the upload arrived, so a second run on the same upload reuses this one.
        dir: the scratch folder holding it (removed by :meth:`close`).
        taken: ``(device, inode)`` of the original upload that was taken over.
    """

    path: Path
    display_name: str
    info: AudioInfo
    recorded_at: str | None
    source: str
    dir: Path
    taken: tuple[int, int] | None = None
    #: Why the last scan used its threshold (a per-site threshold, the model's, or set by hand).
    threshold_note: str = ""

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Session:
    """One browser session's recording and results. :meth:`close` deletes its files."""

    upload: Upload | None = None
    #: The complete detection, at the threshold last chosen.
    detection: Detection | None = None
    downloads: list[str] = field(default_factory=list)
    queued: int | None = None
    queue_note: str = ""
    selected: int | None = None
    _n_exports: int = 0

    def close(self) -> None:
        if self.upload is not None:
            self.upload.close()
        self.upload = None
        self.detection = None
        self.downloads = []

    def __deepcopy__(self, memo) -> Session:  # gradio deep-copies state values; files are not copied
        return self


@dataclass
class View:
    """What the Detect tab shows after a step: the timeline, the events table, a summary and downloads."""

    figure: Any
    rows: list[list]
    summary: str
    downloads: list[str] | None
    done: bool
    #: the events table's columns (no wall-clock column when the file name gives no start time)
    columns: list[str] = field(default_factory=lambda: plots.event_columns(None))


@dataclass
class EventView:
    """One event's playback: a short audio clip with context, its spectrogram and a caption."""

    number: int
    audio_path: str
    image_path: str
    caption: str
    figure: Any


def summary_markdown(det: Detection, display_name: str, *, done: bool, queued: int | None = None,
                     queue_note: str = "", threshold_note: str = "") -> str:
    """The one-paragraph summary above the results."""
    n = len(det.events)
    when = plots.wall_clock(det.recorded_at, 0.0, with_date=True)
    head = f"**{display_name}** · {plots.fmt_hms(det.duration_s)} long" + (f" · recorded {when}" if when else "")
    if not done:
        # How far the scan is lives in the progress bar alone (one source of truth, never two numbers).
        return (f"{head}  \nScanning… **{n} event{'s' * (n != 1)}** so far above threshold "
                f"{plots.fmt_score(det.threshold)}.")
    best = f", best score {plots.fmt_score(det.max_score)}" if len(det.scores) else ""
    lines = [head, f"**{n} event{'s' * (n != 1)}** above threshold {plots.fmt_score(det.threshold)} "
                   f"in {len(det.scores)} windows{best}."]
    if threshold_note:
        lines.append(f"Threshold {plots.fmt_score(det.threshold)}: {threshold_note}.")
    if n:
        lines.append("Pick an event in the table to hear it and see its spectrogram.")
    total = det.timings_s.get("total") if det.timings_s else None
    if total:
        lines.append(f"Scanned in {total:.1f} s ({det.duration_s / max(total, 1e-6):.0f}× real time).")
    if queued is not None:
        lines.append(f"{queued} new clip{'s' * (queued != 1)} queued for labelling.")
    if queue_note:
        lines.append(queue_note)
    return "  \n".join(lines)


# ----------------------------------------------------------------------------------------- service


class DetectService:
    """The Space's back end.

    Args:
        cfg: the settings.
        queue: the labelling queue (:class:`owlfinder.labelling.queue.LabelQueue`), or ``None``.
        classifier: an already loaded classifier (default: load ``cfg.model`` on ``cfg.device``).
        sliced: scan in GPU-sized slices (default: ``cfg.zero_gpu``, only on ZeroGPU).
        upload_root: where uploads arrive (gradio's upload folder); a path outside it is refused, so no
            request can make the service take (and remove) any other file.

    Attributes:
        upload_refs: ``path -> n``: how many requests waiting in the queue name an uploaded file (set by
            :func:`owlfinder.ui.app.build_app`; ``None``: none).
        recent_s: seconds a taken upload stays findable after its original was removed (a hard link under
            ``<scratch>/recent``): a request whose identical upload was taken by another one just before
            its own turn still finds it.

    Raises:
        owlfinder.detect.model.ModelError: the model cannot be loaded.
    """

    def __init__(self, cfg: AppConfig, queue: LabelQueueLike | None = None, *,
                 classifier: OwlClassifier | None = None, sliced: bool | None = None,
                 upload_root: str | os.PathLike | None = None):
        self.cfg = cfg
        self.upload_root = Path(os.path.realpath(upload_root)) if upload_root is not None else None
        self.queue = queue
        self.upload_refs: Callable[[str], int] | None = None
        self.recent_s = 15.0
        self.clf = classifier or load_classifier(cfg.model, device=cfg.device, backend=cfg.backend)
        self.sliced = cfg.zero_gpu if sliced is None else sliced
        self._key = uuid.uuid4().hex
        gpu.register_classifier(self._key, self.clf)
        self._queue_lock = threading.Lock()
        self.scratch = Path(cfg.tmp_dir)
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.sweep()

    # ---------------------------------------------------------------------------------- settings

    @property
    def batch_size(self) -> int:
        if self.cfg.batch_size:
            return self.cfg.batch_size
        return 128 if self.clf.device.type == "cuda" else 32

    def params(self, threshold: float | None = None) -> DetectionParams:
        """Scan parameters for a run; ``None`` uses the model's calibrated threshold."""
        if threshold is not None:
            threshold = float(threshold)
            if not 0.0 <= threshold <= 1.0 or threshold != threshold:
                raise ServiceError(f"threshold {threshold} is outside 0–1")
        return DetectionParams(threshold=threshold, hop_s=self.cfg.hop_s, batch_size=self.batch_size,
                               max_duration_s=self.cfg.max_duration_s)

    def model_info(self) -> dict:
        """What the API's ``/model_info`` returns: the model and the scan settings."""
        c, scan = self.clf, self.params()
        return {"model": c.name, "model_fingerprint": c.fingerprint, "positive_label": c.positive_label,
                "threshold": round(c.threshold, 6), "sampling_rate": c.sampling_rate, "window_s": c.window_s,
                "hop_s": self.cfg.hop_s, "device": str(c.device), "batch_size": self.batch_size,
                "zero_gpu_slices": self.sliced, "max_hours": self.cfg.max_hours,
                "max_upload_bytes": self.cfg.max_upload_bytes, "formats": list(DOWNLOAD_FORMATS),
                "second_look_logit": scan.second_look_logit,
                "description_check_logit": scan.description_check_logit,
                "site_thresholds": {k: round(float(v["threshold"]), 6) for k, v in c.site_thresholds.items()}}

    # ------------------------------------------------------------------------------------ files

    def sweep(self, max_age_s: float | None = None) -> int:
        """Remove scratch folders left by a process that is gone (a crash or a restart), and any untouched
        for ``max_age_s`` (default: twice the session TTL)."""
        limit = time.time() - (max_age_s if max_age_s is not None else 2 * self.cfg.session_ttl_s)
        removed = 0
        for d in (self.scratch / "recent").glob("*"):
            try:
                if d.stat().st_mtime < time.time() - 2 * self.recent_s:  # left by a stopped process
                    shutil.rmtree(d, ignore_errors=True)
            except OSError:
                continue
        for d in self.scratch.glob("run-*"):
            try:
                if _orphaned(d.name) or d.stat().st_mtime < limit:
                    shutil.rmtree(d, ignore_errors=True)
                    removed += 1
            except OSError:
                continue
        return removed

    def owns(self, src: str | os.PathLike) -> bool:
        """Whether ``src`` lies in the upload folder (always true without an ``upload_root``)."""
        return self.upload_root is None or self.upload_root in Path(os.path.realpath(src)).parents

    def _new_dir(self) -> Path:
        d = self.scratch / f"run-{os.getpid()}-{_PROCESS_TOKEN}-{uuid.uuid4().hex}"
        d.mkdir(parents=True)
        return d

    def _recent(self, src: Path) -> Path | None:
        """Where a taken upload stays findable for ``recent_s`` (``<scratch>/recent/<sha>/<name>``)."""
        if self.upload_root is None or Path(os.path.realpath(src)).parent.parent != self.upload_root:
            return None
        return self.scratch / "recent" / src.parent.name / src.name

    def _remember(self, src: Path, taken: tuple[int, int] | None) -> None:
        """Hard-link a taken upload under :meth:`_recent` for ``recent_s`` seconds (no copy: same inode)."""
        rec = self._recent(src)
        if rec is None or taken is None or self.recent_s <= 0:
            return
        try:
            rec.parent.mkdir(parents=True, exist_ok=True)
            tmp = rec.parent / f".{uuid.uuid4().hex}"
            os.link(src, tmp)
            os.replace(tmp, rec)
        except OSError:  # another file system, or gone already: no second chance for this one
            return
        timer = threading.Timer(self.recent_s, self._forget, args=(rec, _file_id(rec)))
        timer.daemon = True
        timer.start()

    @staticmethod
    def _forget(rec: Path, ident: tuple[int, int] | None) -> None:
        if ident is not None and _file_id(rec) == ident:
            rec.unlink(missing_ok=True)
            try:
                rec.parent.rmdir()
            except OSError:
                pass

    def release_upload(self, src: str | os.PathLike, taken: tuple[int, int] | None) -> bool:
        """Remove an original upload this request has taken: only while ``src`` is still the file ``taken``
        (``(device, inode)``; an identical upload may have replaced it since) and no request waiting in the
        queue names it (that one removes it when it is done). Returns whether it was removed."""
        if taken is None or _file_id(src) != taken or not self.owns(src):
            return False
        try:
            waiting = self.upload_refs(str(src)) if self.upload_refs is not None else 0
        except Exception:  # the queue could not be read: keep the file (gradio's cache expiry removes it)
            log.debug("upload_refs failed", exc_info=True)
            return False
        if waiting > 0:
            return False
        Path(src).unlink(missing_ok=True)
        return True

    def open_upload(self, src: str | os.PathLike, display_name: str | None = None) -> Upload:
        """Take ownership of an uploaded file: move it under a server-chosen name and probe it.

        Args:
            src: where the upload lies (gradio's cache); it is removed once linked or copied.
            display_name: the uploaded file's original name (default: ``src``'s name).

        Raises:
            ServiceError: missing, unreadable, not audio or too long; the message names the upload.
        """
        src = Path(src)
        name = _display_name(display_name, src.name)
        if not self.owns(src):
            raise ServiceError(f"{name}: not an uploaded file; send the recording itself (handle_file)")
        origin = src
        if not src.is_file():
            # An identical upload (same bytes, same name: same path) that another request took a moment ago.
            origin = self._recent(src) or src
            if not origin.is_file():
                raise ServiceError(f"{name}: the upload is gone (was it removed?); please upload it again")
        size = origin.stat().st_size
        if size > self.cfg.max_upload_bytes:
            if origin is src:
                self.release_upload(src, _file_id(src))
            raise ServiceError(f"{name}: the file is {_fmt_bytes(size)}; the upload limit is "
                               f"{self.cfg.max_upload_text}")
        suffix = src.suffix.lower() if src.suffix.lower() in audio.AUDIO_SUFFIXES else ""
        d = self._new_dir()
        dst = d / f"recording{suffix}"
        try:
            try:
                os.link(origin, dst)
            except OSError as err:
                if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                shutil.copyfile(origin, dst)
                taken = _file_id(origin)
            else:
                taken = _file_id(dst)
            if origin is src:
                self._remember(src, taken)
                self.release_upload(src, taken)
            info = audio.probe(dst)
            if info.duration_s > self.cfg.max_duration_s:
                raise ServiceError(f"{name}: recording is {info.duration_s / 3600:.1f} h long; "
                                   f"the limit is {self.cfg.max_hours:g} h")
        except AudioError as err:
            shutil.rmtree(d, ignore_errors=True)
            raise ServiceError(f"{name}: {_scrub(err.reason, dst, name)}") from None
        except OSError as err:
            shutil.rmtree(d, ignore_errors=True)
            raise ServiceError(f"{name}: could not be stored ({err.strerror or type(err).__name__})") from None
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        recorded = parse_recording_start(name)
        return Upload(path=dst, display_name=name, info=info,
                      recorded_at=recorded.isoformat() if recorded else None, source=str(src), dir=d,
                      taken=taken)

    # ------------------------------------------------------------------------------------- scans

    def _as_shown(self, det: Detection, upload: Upload) -> Detection:
        """The engine's result named after the upload (never the server path), wall-clock from its name."""
        det = replace(det, file=upload.display_name)
        if det.recorded_at != upload.recorded_at:
            det = replace(det, recorded_at=upload.recorded_at).rethreshold(det.threshold)
        return det

    def scan(self, upload: Upload, threshold: float | None = None, progress: Progress | None = None,
             every_s: float = 0.0) -> Iterator[Detection]:
        """Scan a recording, yielding growing partial :class:`Detection` results, then the complete one.

        Args:
            upload: the recording.
            threshold: decision threshold (``None``: the model's calibrated one).
            progress: called as ``progress(fraction, description)``.
            every_s: least time between two partial results (``0``: one per batch; ``math.inf``: none);
                partial results that are not due are never built, so long files stay cheap.

        Raises:
            ServiceError: the recording fails to decode part-way, the model fails, or the scan runs past
                ``cfg.max_request_s``.
        """
        params = self.params(threshold)
        if threshold is None:  # the recording's site may have its own threshold (A2O names name the site)
            thr, upload.threshold_note = self.clf.threshold_for(upload.display_name)
            params = replace(params, threshold=thr)
        else:
            upload.threshold_note = "set by hand"
        total = upload.info.duration_s
        last = -math.inf
        limit = self.cfg.max_request_s
        deadline = time.monotonic() + limit if limit and limit > 0 else math.inf

        def report(done_s: float, total_s: float) -> None:
            if progress is not None:
                frac = min(1.0, done_s / total_s) if total_s else 1.0
                progress(frac, f"Scanned {plots.fmt_hms(done_s)} of {plots.fmt_hms(total_s)}")

        def due() -> bool:
            nonlocal last
            now = time.monotonic()
            if math.isinf(every_s) or now - last < every_s:
                return False
            last = now
            return True

        def in_time(done_s: float) -> None:
            """Called between batches: stop a scan that has run past the time limit."""
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"{upload.display_name}: detection took longer than {limit:g} s (the limit per request; "
                    f"{plots.fmt_hms(done_s)} of {plots.fmt_hms(total)} scanned), so it was stopped; try a "
                    "shorter recording")

        def timed(results: Iterator[Detection]) -> Iterator[Detection]:
            try:
                for det in results:
                    if det.status != "complete":
                        in_time(float(det.ends_s[-1]) if len(det.ends_s) else 0.0)
                    yield det
            finally:
                close = getattr(results, "close", None)
                if close is not None:
                    close()  # stops the engine's decoding thread at once

        try:
            if self.sliced:
                source = self._scan_sliced(upload, params, report, due, in_time)
            else:
                source = (det for det in timed(iter_detect(upload.path, self.clf, params, progress=report,
                                                           info=upload.info))
                          if det.status != "running" or due())
            for det in source:
                yield self._as_shown(det, upload)
        except AudioError as err:
            raise ServiceError(f"{upload.display_name}: {_scrub(err.reason, upload.path, upload.display_name)}"
                               ) from None
        except ModelError as err:
            raise ServiceError(f"{upload.display_name}: {_scrub(str(err), upload.path, upload.display_name)}"
                               ) from None
        report(total, total)

    def _scan_sliced(self, upload: Upload, params: DetectionParams, report: Callable[[float, float], None],
                     due: Callable[[], bool], in_time: Callable[[float], None] = lambda done_s: None
                     ) -> Iterator[Detection]:
        """The engine's scan as a series of GPU calls over slices of the window grid."""
        clf, info = self.clf, upload.info
        sr = clf.sampling_rate
        slice_s = gpu.slice_seconds(self.cfg.gpu_rtf, max_s=self.cfg.gpu_max_s, cap_s=self.cfg.gpu_slice_s)
        plan = gpu.plan_slices(info.duration_s, slice_s, params.hop_s, clf.window_s)
        built = DetectionBuilder(str(upload.path), clf, params, info, recorded_at=None)
        t0 = time.perf_counter()

        def result(status: str) -> Detection:
            return built.result(status, timings={"total": time.perf_counter() - t0, "slices": float(len(plan))})

        for k0, k1 in plan:
            audio_s = ((k1 if k1 is not None else info.duration_s / params.hop_s) - k0) * params.hop_s
            for st, sc, reached in gpu.scan_slice(self._key, str(upload.path), params, k0, k1, audio_s, info,
                                                  self.cfg.gpu_rtf, self.cfg.gpu_max_s):
                built.add(st, sc, reached)
                report(min(reached / sr, info.duration_s), info.duration_s)
                in_time(min(reached / sr, info.duration_s))
                if due():
                    yield result("running")

        def rescan(prm: DetectionParams, ranges: list[tuple[int, int]]):
            """The second look's ranges in GPU calls of at most a slice's audio each."""
            per = max(1, int((slice_s - clf.window_s) // prm.hop_s) + 1)  # windows in a slice's audio
            pieces = [(j, min(k1, j + per)) for k0, k1 in ranges for j in range(k0, k1, per)]
            group: list[tuple[int, int]] = []
            audio_s = 0.0
            for k0, k1 in pieces:
                group.append((k0, k1))
                audio_s += (k1 - k0 - 1) * prm.hop_s + clf.window_s
                if audio_s >= slice_s:
                    yield from gpu.scan_ranges(self._key, str(upload.path), prm, group, audio_s, info,
                                               self.cfg.gpu_rtf, self.cfg.gpu_max_s)
                    group, audio_s = [], 0.0
            if group:
                yield from gpu.scan_ranges(self._key, str(upload.path), prm, group, audio_s, info,
                                           self.cfg.gpu_rtf, self.cfg.gpu_max_s)

        second_look(str(upload.path), clf, params, built, info=info, scan=rescan)
        yield check_description(str(upload.path), clf, params, result("complete"), info=info)

    # --------------------------------------------------------------------------------------- UI

    def view(self, det: Detection | None, upload: Upload | None, *, done: bool, session: Session | None = None
             ) -> View:
        """The tab's picture of a (partial) detection."""
        if det is None or upload is None:
            return View(plots.timeline_figure(None), [], "", None, done, plots.event_columns(None))
        sel = session.selected if session is not None else None
        return View(
            figure=plots.timeline_figure(det, selected=sel),
            rows=plots.event_rows(det),
            summary=summary_markdown(det, upload.display_name, done=done,
                                     queued=session.queued if session else None,
                                     queue_note=session.queue_note if session else "",
                                     threshold_note=upload.threshold_note),
            downloads=(session.downloads or None) if (done and session is not None) else None,
            done=done,
            columns=plots.event_columns(det),
        )

    def run(self, session: Session | None, src: str | os.PathLike | None, threshold: float | None = None,
            progress: Progress | None = None, display_name: str | None = None) -> Iterator[tuple[Session, View]]:
        """The Detect tab's run: take the upload, scan it with a growing timeline, then export and queue.

        Yields ``(session, view)`` at most every ``cfg.update_every_s`` while scanning, once when the scan is
        complete (with downloads) and once more after the run's clips were added to the labelling queue.
        The session passed in is closed (its recording deleted) unless the same upload is scanned again.

        Raises:
            ServiceError: no file, or a file that cannot be read; the previous session stays closed.
        """
        if not src:
            raise ServiceError("Choose a recording first (WAV, FLAC, MP3, OGG or M4A).")
        reuse = (session is not None and session.upload is not None and session.upload.path.exists()
                 and session.upload.source == str(src) and not Path(src).exists())
        if reuse:
            upload = session.upload
            session.upload = None
        if session is not None:
            session.close()
        if not reuse:
            upload = self.open_upload(src, display_name)
        if threshold is not None and abs(float(threshold) - round(self.clf.threshold, 3)) < 5e-4:
            threshold = None  # the slider at the model's value: let the recording's site choose
        session = Session(upload=upload)
        det = None
        try:
            for det in self.scan(upload, threshold, progress, every_s=self.cfg.update_every_s):
                if det.status == "running":
                    yield session, self.view(det, upload, done=False, session=session)
            assert det is not None
            session.detection = det
            session.downloads = self._export(session)
        except BaseException:  # a failed or abandoned run keeps no files (the page never gets this session)
            session.close()
            raise
        yield session, self.view(det, upload, done=True, session=session)
        session.queued, session.queue_note = self._add_to_queue(det, upload)
        if session.queued is not None or session.queue_note:
            yield session, self.view(det, upload, done=True, session=session)

    def rethreshold(self, session: Session | None, threshold: float) -> tuple[Session | None, View]:
        """New events and downloads for another threshold from the saved window scores (no model call)."""
        if session is None or session.detection is None or session.upload is None:
            return session, self.view(None, None, done=True)
        threshold = self.params(threshold).threshold
        if threshold is None or abs(threshold - session.detection.threshold) < 1e-9:
            return session, self.view(session.detection, session.upload, done=True, session=session)
        session.detection = session.detection.rethreshold(threshold)
        session.upload.threshold_note = "set by hand"
        session.selected = None
        session.downloads = self._export(session)
        return session, self.view(session.detection, session.upload, done=True, session=session)

    def _export(self, session: Session) -> list[str]:
        assert session.detection is not None and session.upload is not None
        session._n_exports += 1
        stem = session.upload.dir / f"results-{session._n_exports}" / safe_stem(session.upload.display_name)
        write_detection(session.detection, stem, DOWNLOAD_FORMATS)
        return [f"{stem}{SUFFIXES[name]}" for name in DOWNLOAD_FORMATS]

    def _add_to_queue(self, det: Detection, upload: Upload) -> tuple[int | None, str]:
        if self.queue is None:
            return None, ""
        try:
            with self._queue_lock:
                n = self.queue.add_detection(det, str(upload.path), n_uncertain=self.cfg.n_uncertain,
                                             display_name=upload.display_name)
            return int(n), ""
        except Exception as err:  # the labelling queue must never spoil a detection
            log.exception("adding %s to the labelling queue failed", upload.display_name)
            return None, f"(Could not add clips to the labelling queue: {scrub_paths(str(err))[:200]})"

    def event(self, session: Session | None, number: int | None) -> EventView:
        """Cut event ``number`` (1-based) with ``cfg.context_s`` of context each side: a WAV and a spectrogram.

        Raises:
            ServiceError: no results yet, an unknown event, or the recording is no longer kept.
        """
        if session is None or session.detection is None or session.upload is None:
            raise ServiceError("Run a detection first, then pick an event.")
        det, up = session.detection, session.upload
        try:
            number = int(number)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ServiceError(f"no event {number!r}") from None
        if not 1 <= number <= len(det.events):
            raise ServiceError(f"there is no event {number} (events 1–{len(det.events)})")
        if not up.path.exists():
            raise ServiceError(f"{up.display_name}: the recording is no longer kept; run it again")
        ev = det.events[number - 1]
        ctx = self.cfg.context_s
        start = max(0.0, ev.start_s - ctx)
        end = min(up.info.duration_s, min(ev.end_s, ev.start_s + self.cfg.max_clip_s) + ctx)
        sr = min(up.info.sample_rate, CLIP_MAX_SR)
        try:
            y = audio.load(up.path, sr, start_s=start, end_s=end, info=up.info, max_duration_s=None)
        except AudioError as err:
            raise ServiceError(f"{up.display_name}: {_scrub(err.reason, up.path, up.display_name)}") from None
        peak = float(np.max(np.abs(y))) if len(y) else 0.0
        gain = min(0.9 / peak, 10 ** (20 / 20)) if peak > 0 else 1.0  # quiet calls get up to +20 dB
        out = up.dir / f"event-{uuid.uuid4().hex[:8]}"
        out.mkdir()
        wav = out / f"event_{number:03d}.wav"
        sf.write(wav, (y * gain).astype(np.float32), sr, subtype="PCM_16")
        title = (f"Event {number}: {plots.fmt_hms(ev.start_s, 1)}–{plots.fmt_hms(ev.end_s, 1)}, "
                 f"score {plots.fmt_score(ev.score)}")
        png = plots.spectrogram_png(y, sr, out / f"event_{number:03d}.png", offset_s=start,
                                    event=(ev.start_s, min(ev.end_s, end)), title=title,
                                    recorded_at=det.recorded_at)
        session.selected = number
        wc = plots.wall_clock(det.recorded_at, ev.start_s, with_date=True)
        caption = (f"**Event {number}** · {plots.fmt_hms(ev.start_s, 1)} – {plots.fmt_hms(ev.end_s, 1)} "
                   f"({ev.end_s - ev.start_s:.1f} s) · score {plots.fmt_score(ev.score)}" + (f" · {wc}" if wc else "")
                   + f"  \nPlaying {plots.fmt_hms(start, 1)} – {plots.fmt_hms(end, 1)} "
                     f"({ctx:g} s of context each side{', louder' if gain > 1.05 else ''}).")
        return EventView(number, str(wav), str(png), caption, plots.timeline_figure(det, selected=number))

    # -------------------------------------------------------------------------------------- API

    def detect_json(self, src: str | os.PathLike, display_name: str | None = None,
                    threshold: float | None = None, progress: Progress | None = None) -> dict:
        """The ``/detect`` API: scan one upload and return the engine's JSON document.

        The upload and every file made for it are removed before this returns. Each run also feeds the
        labelling queue, as UI runs do.

        Raises:
            ServiceError: a bad file or threshold; the message names the file and the problem.
        """
        upload = None
        arrived = _file_id(src) if self.owns(src) else None
        try:
            self.params(threshold)  # check the threshold before touching the file
            upload = self.open_upload(src, display_name)
            det = None
            for det in self.scan(upload, threshold, progress, every_s=math.inf):
                pass
            assert det is not None
            self._add_to_queue(det, upload)
            return {**det.to_dict(), "threshold_note": upload.threshold_note}
        finally:
            if upload is not None:
                upload.close()
            self.release_upload(src, upload.taken if upload is not None else arrived)
