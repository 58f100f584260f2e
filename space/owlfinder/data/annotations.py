"""Annotation files ecologists already use: Raven Pro selection tables and Audacity label tracks.

The one place these formats are written and read: detection exports (:mod:`owlfinder.detect.exports`), the
ground truth of synthetic nights (:mod:`owlfinder.synth.nights`) and the truth read by the evaluation
(:mod:`owlfinder.evaluation.report`) all go through here.

- Raven selection table: tab-separated text with a header row; Raven's own columns are ``Selection``,
  ``View``, ``Channel``, ``Begin Time (s)``, ``End Time (s)``, ``Low Freq (Hz)``, ``High Freq (Hz)``, and any
  others follow. Raven lists a selection once per view, so rows of a ``Waveform`` view are skipped on reading.
- Audacity labels: ``start<TAB>end<TAB>label`` per line, times in seconds; lines starting with ``\\`` (a
  label's frequency range) are skipped on reading.

Writers are atomic (:func:`owlfinder.durable.atomic_write_text`).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from owlfinder.durable import atomic_write_text

__all__ = ["RAVEN_VIEW", "audacity_text", "raven_text", "read_audacity", "read_raven", "write_raven"]

#: The ``View`` written for each selection.
RAVEN_VIEW = "Spectrogram 1"


def raven_text(columns: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A Raven selection table: the header ``columns``, then one tab-separated line per row (values as
    ``str``; format numbers before passing them)."""
    lines = ["\t".join(columns)]
    lines += ["\t".join(str(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


def write_raven(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[Sequence]) -> Path:
    """Write :func:`raven_text` to ``path`` atomically; returns the path."""
    path = Path(path)
    atomic_write_text(path, raven_text(columns, rows))
    return path


def read_raven(path: str | os.PathLike, *, all_views: bool = False) -> list[dict]:
    """The rows of a Raven selection table as dicts keyed by its header (a UTF-8 byte-order mark is ignored).

    Args:
        path: the ``.txt`` table.
        all_views: keep the rows of every view; by default ``Waveform`` rows (duplicates of the
            spectrogram's selections) are dropped.

    Raises:
        OSError, UnicodeDecodeError, csv.Error: the file cannot be read as text.
    """
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if all_views:
        return rows
    return [r for r in rows if not (r.get("View") or "").startswith("Waveform")]


def audacity_text(labels: Iterable[tuple[float, float, str]]) -> str:
    """An Audacity label track: ``start<TAB>end<TAB>label`` per label, times in seconds to the millisecond."""
    return "".join(f"{start:.3f}\t{end:.3f}\t{label}\n" for start, end, label in labels)


def read_audacity(path: str | os.PathLike) -> list[tuple[float, float, str]]:
    """``(start_s, end_s, label)`` of each label in an Audacity label track."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("\\"):
            start, end, label = line.split("\t", 2)
            rows.append((float(start), float(end), label))
    return rows
