"""Result files in the formats ecologists already use: JSON, CSV, Raven Pro selection tables, Audacity labels.

The Raven and Audacity formats themselves are :mod:`owlfinder.data.annotations` (``read_raven`` and
``read_audacity`` are importable from here too).

Every writer is atomic (temp file + rename), so an interrupted run never leaves a half-written result that
a later run would mistake for a finished one.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from owlfinder.data import annotations
from owlfinder.data.annotations import read_audacity, read_raven
from owlfinder.detect.detection import Detection
from owlfinder.durable import atomic_write_text

__all__ = [
    "FORMATS",
    "RAVEN_BAND_HZ",
    "SUFFIXES",
    "atomic_write_text",
    "audacity_text",
    "csv_text",
    "json_text",
    "raven_text",
    "read_audacity",
    "read_csv",
    "read_raven",
    "write_detection",
]

#: Frequency band drawn around each event in Raven, in Hz (the owl's fundamental and first harmonic).
RAVEN_BAND_HZ = (250.0, 700.0)
EVENT_FIELDS = ["start_s", "end_s", "score", "mean_score", "n_windows", "start_time"]
RAVEN_FIELDS = ["Selection", "View", "Channel", "Begin File", "Begin Time (s)", "End Time (s)",
                "Low Freq (Hz)", "High Freq (Hz)", "Score"]


def json_text(det: Detection) -> str:
    return json.dumps(det.to_dict(), indent=1)


def csv_text(det: Detection) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["file", *EVENT_FIELDS])
    for ev in det.events:
        w.writerow([det.file, f"{ev.start_s:.3f}", f"{ev.end_s:.3f}", f"{ev.score:.4f}", f"{ev.mean_score:.4f}",
                    ev.n_windows, ev.start_time or ""])
    return buf.getvalue()


def raven_text(det: Detection) -> str:
    lo, hi = RAVEN_BAND_HZ
    return annotations.raven_text(RAVEN_FIELDS, (
        [i, annotations.RAVEN_VIEW, 1, Path(det.file).name, f"{ev.start_s:.3f}", f"{ev.end_s:.3f}", f"{lo:.1f}",
         f"{hi:.1f}", f"{ev.score:.4f}"] for i, ev in enumerate(det.events, 1)))


def audacity_text(det: Detection) -> str:
    return annotations.audacity_text((ev.start_s, ev.end_s, f"owl {ev.score:.2f}") for ev in det.events)


#: Output format name -> (file suffix, renderer).
_RENDERERS: dict[str, tuple[str, Callable[[Detection], str]]] = {
    "json": (".json", json_text),
    "csv": (".csv", csv_text),
    "raven": (".raven.txt", raven_text),
    "audacity": (".audacity.txt", audacity_text),
}
FORMATS = tuple(_RENDERERS)
SUFFIXES = {name: suffix for name, (suffix, _) in _RENDERERS.items()}


def write_detection(det: Detection, stem: str | os.PathLike, formats: Iterable[str] = FORMATS) -> list[Path]:
    """Write ``det`` as ``<stem>.json``, ``<stem>.csv``, ``<stem>.raven.txt``, ``<stem>.audacity.txt``.

    The JSON, which marks a file as done for resumed runs, is written last.
    """
    formats = list(formats)
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown format(s) {sorted(unknown)}; choose from {list(FORMATS)}")
    written = []
    for name in sorted(formats, key=lambda n: n == "json"):
        suffix, render = _RENDERERS[name]
        path = Path(f"{stem}{suffix}")
        atomic_write_text(path, render(det))
        written.append(path)
    return written


def read_csv(path: str | os.PathLike) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


