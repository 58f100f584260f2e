"""Batch detection over files and folders: resumable, one line per failure, a summary table.

A file that fails is recorded and the run goes on. A file whose complete JSON already exists for the same model
and window grid is skipped (a JSON that cannot be read, or one marked partial, is redone; temp files a killed
run left behind are removed); if only the threshold, gap or minimum duration changed, its events are re-derived
from the saved window scores without running the model again.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from owlfinder import audio
from owlfinder.detect.detection import DEFAULT_PARAMS, Detection, DetectionParams, same_threshold
from owlfinder.detect.engine import iter_detect
from owlfinder.detect.exports import FORMATS, SUFFIXES, atomic_write_text, write_detection
from owlfinder.detect.model import OwlClassifier

__all__ = ["FileResult", "InputFile", "collect_inputs", "detect_files", "output_stem", "write_summary"]

SUMMARY_FIELDS = ["file", "duration_s", "events", "max_score", "status", "error"]


@dataclass(frozen=True)
class InputFile:
    """A recording to scan and the folder it was found under (for mirrored output paths)."""

    path: Path
    root: Path
    #: Output file name without suffix: the file's stem, or its full name when two inputs share a stem.
    out_name: str = ""


@dataclass
class FileResult:
    """One row of ``summary.csv``. ``status``: ok, reused, rethresholded, partial or error."""

    file: str
    duration_s: float | None
    events: int | None
    max_score: float | None
    status: str
    error: str | None = None
    #: The threshold used and why (a per-site threshold, the model's, or given); not in ``summary.csv``.
    threshold: float | None = None
    threshold_note: str = ""

    def row(self) -> list[str]:
        return [self.file, "" if self.duration_s is None else f"{self.duration_s:.3f}",
                "" if self.events is None else str(self.events),
                "" if self.max_score is None else f"{self.max_score:.4f}", self.status, self.error or ""]


def collect_inputs(paths: Sequence[str | os.PathLike]) -> tuple[list[InputFile], list[FileResult]]:
    """Expand files and folders (walked recursively for audio suffixes) into recordings to scan.

    Folders are walked through symbolic links (a mounted survey drive, a linked site folder); a link back to
    a folder already on the walk is skipped, so loops end. A file reached twice is scanned once.

    Returns the recordings and error rows for paths that do not exist or hold no audio. A file named directly
    is taken whatever its suffix, so that a mis-named or broken file gets its own error line.
    """
    found: list[InputFile] = []
    errors: list[FileResult] = []
    seen: set[Path] = set()

    def add(f: Path, root: Path) -> bool:
        real = f.resolve()
        if real in seen:
            return False
        seen.add(real)
        found.append(InputFile(f, root))
        return True

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files = _walk_audio(p)
            if not files:
                errors.append(FileResult(str(p), None, None, None, "error",
                                         "no audio files (.wav, .flac, .mp3, .ogg, …) in this folder or below"))
            for f in files:
                add(f, p)
        elif p.is_file():
            add(p, p.parent)
        else:
            errors.append(FileResult(str(p), None, None, None, "error", "no such file or folder"))
    return _unique_names(found), errors


def _walk_audio(root: Path) -> list[Path]:
    """Audio files under ``root`` (hidden ones left out), sorted, following folder links without looping."""
    out: list[Path] = []
    on_walk: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        try:
            st = os.stat(folder)
        except OSError:
            dirs[:] = []
            continue
        if (st.st_dev, st.st_ino) in on_walk:  # a link back to a folder already walked: a loop or a repeat
            dirs[:] = []
            continue
        on_walk.add((st.st_dev, st.st_ino))
        dirs.sort()
        for name in files:
            f = Path(folder, name)
            if not name.startswith(".") and audio.is_audio_path(name) and f.is_file():
                out.append(f)
    return sorted(out)


def _unique_names(items: list[InputFile]) -> list[InputFile]:
    """Give ``a.wav`` and ``a.flac`` in one folder distinct outputs (``a.wav.json``, ``a.flac.json``)."""
    def key(it: InputFile) -> tuple[Path, str]:
        return _relative_folder(it), it.path.stem.lower()

    counts: dict[tuple[Path, str], int] = {}
    for it in items:
        counts[key(it)] = counts.get(key(it), 0) + 1
    return [InputFile(it.path, it.root, it.path.name if counts[key(it)] > 1 else it.path.stem) for it in items]


def _relative_folder(item: InputFile) -> Path:
    """The file's folder under its input root as walked (a linked sub-folder keeps its name), else ``.``."""
    for path, root in ((item.path, item.root), (item.path.resolve(), item.root.resolve())):
        try:
            rel = Path(os.path.normpath(path)).relative_to(os.path.normpath(root)).parent
        except ValueError:
            continue
        if ".." not in rel.parts:
            return rel
    return Path()


def output_stem(item: InputFile, out_dir: str | os.PathLike) -> Path:
    """``out_dir/<sub-folders under the input root>/<file stem>``; never escapes ``out_dir``."""
    out = Path(out_dir).resolve()
    rel = _relative_folder(item)
    name = item.out_name or item.path.stem
    stem = out / rel / name
    if out not in stem.resolve().parents:
        stem = out / name
    return stem


def _remove_stale_temps(stem: Path) -> int:
    """Remove the temp files a killed run left while writing this recording's results (``.<name>.<rand>.tmp``,
    see :func:`owlfinder.detect.exports.atomic_write_text`); they are never mistaken for results, but they pile up."""
    removed = 0
    if not stem.parent.is_dir():
        return 0
    names = {f"{stem.name}{suffix}" for suffix in SUFFIXES.values()}
    for p in stem.parent.glob(f".{glob.escape(stem.name)}*.tmp"):
        m = re.fullmatch(r"\.(.+)\.[A-Za-z0-9_]{8}\.tmp", p.name)
        if m and m.group(1) in names:
            p.unlink(missing_ok=True)
            removed += 1
    return removed


def _load_previous(stem: Path) -> Detection | None:
    path = Path(f"{stem}{SUFFIXES['json']}")
    if not path.exists():
        return None
    try:
        return Detection.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: redo the file


def detect_files(
    inputs: Iterable[InputFile],
    out_dir: str | os.PathLike,
    clf: OwlClassifier,
    params: DetectionParams = DEFAULT_PARAMS,
    *,
    formats: Sequence[str] = FORMATS,
    force: bool = False,
    on_file_start: Callable[[InputFile, float], None] | None = None,
    progress: Callable[[float, float], None] | None = None,
    on_error: Callable[[str], None] | None = None,
) -> list[FileResult]:
    """Scan recordings one after another, writing results under ``out_dir``.

    Args:
        inputs: recordings (see :func:`collect_inputs`).
        out_dir: output folder.
        clf: a loaded classifier.
        params: scan parameters.
        formats: which of ``json``, ``csv``, ``raven``, ``audacity`` to write (JSON is always written,
            because it is what makes runs resumable).
        force: redo files that already have results.
        on_file_start: called with each input and its duration in seconds before it is scanned.
        progress: called as ``progress(seconds_done, seconds_total)`` within the current file.
        on_error: called with a one-line message for each failed file.
    """
    formats = list(dict.fromkeys(["json", *formats]))
    given = params
    results: list[FileResult] = []
    for item in inputs:
        stem = output_stem(item, out_dir)
        name = str(item.path)
        # The file's site may have its own threshold (owl_site_thresholds in the model's config).
        threshold, note = ((given.threshold, "given") if given.threshold is not None
                           else clf.threshold_for(item.path.name))
        params = replace(given, threshold=threshold)
        _remove_stale_temps(stem)
        try:
            info = audio.probe(item.path)
            if on_file_start is not None:
                on_file_start(item, info.duration_s)
            prev = None if force else _load_previous(stem)
            same_file = prev is not None and Path(prev.file).resolve() == item.path.resolve()
            if same_file and prev.status == "complete" and prev.params_key() == {
                "model": clf.name, "model_fingerprint": clf.fingerprint, "window_s": clf.window_s,
                **params.scan_key(),
            } and not ((params.second_look_logit is not None or params.description_check_logit is not None)
                       and threshold < prev.threshold and not same_threshold(prev.threshold, threshold)):
                # (a lower threshold than the scan's would want a second look, or a description check, at windows
                # it did not look at)
                # The JSON keeps the threshold to THRESHOLD_DIGITS: compare at that precision, or a calibrated
                # threshold (0.8598797) never matches its written self and every re-run rewrites everything.
                same = (same_threshold(prev.threshold, threshold) and prev.gap_s == params.gap_s
                        and prev.min_duration_s == params.min_duration_s)
                det = prev if same else prev.rethreshold(threshold, params.gap_s, params.min_duration_s)
                det.file = name
                if not same:
                    write_detection(det, stem, formats)
                if progress is not None:
                    progress(det.duration_s, det.duration_s)
                results.append(FileResult(name, det.duration_s, len(det.events), det.max_score,
                                          "reused" if same else "rethresholded", None, threshold, note))
                continue
            det = None
            try:
                for det in iter_detect(item.path, clf, params, progress=progress, info=info):
                    pass
            except audio.AudioError as err:
                if det is not None and det.status == "partial" and len(det.scores):
                    write_detection(det, stem, formats)  # keep what was scanned before the failure
                    kept = float(det.ends_s.max())
                    raise audio.AudioError(item.path, f"{err.reason}; results up to {kept:.1f} s kept") from None
                raise
            assert det is not None
            write_detection(det, stem, formats)
            results.append(FileResult(name, det.duration_s, len(det.events), det.max_score, "ok", None,
                                      threshold, note))
        except audio.AudioError as err:
            results.append(_failed(name, err.reason, on_error))
        except (OSError, ValueError, RuntimeError) as err:
            results.append(_failed(name, " ".join(str(err).split()) or type(err).__name__, on_error))
    return results


def _failed(name: str, reason: str, on_error: Callable[[str], None] | None) -> FileResult:
    if on_error is not None:
        on_error(f"{name}: {reason}")
    return FileResult(name, None, None, None, "error", reason)


def summary_text(results: Iterable[FileResult]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(SUMMARY_FIELDS)
    for r in results:
        w.writerow(r.row())
    return buf.getvalue()


def write_summary(results: Iterable[FileResult], path: str | os.PathLike) -> Path:
    """Write ``summary.csv`` (file, duration_s, events, max_score, status, error) atomically."""
    atomic_write_text(path, summary_text(results))
    return Path(path)


def read_summary(path: str | os.PathLike) -> list[FileResult]:
    with open(path, newline="", encoding="utf-8") as f:
        return [FileResult(r["file"], float(r["duration_s"]) if r["duration_s"] else None,
                           int(r["events"]) if r["events"] else None,
                           float(r["max_score"]) if r["max_score"] else None, r["status"], r["error"] or None)
                for r in csv.DictReader(f)]
