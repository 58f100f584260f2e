"""The dataset schema: one row per labelled clip, a superset of the seed's ``sgoedecke/powerful_owl_5s_16k``.

The seed dataset has three columns (``audio``, ``label`` ClassLabel ``[owl, not_owl]``, ``filename``); every
dataset this project writes keeps those three with the same types, so code written for the seed reads ours,
and adds provenance columns for leakage-free splits, label history and active learning.

Unsure verdicts: the labelling tab records "unsure" as well as owl/not_owl. Such a row keeps the ClassLabel
column with ``label = -1`` (``datasets``' convention for "no label", as in GLUE's test splits) and
``verdict = "unsure"``. Training must drop them (``label >= 0``, or :func:`is_trainable`, or
``DatasetStore.load(..., include_unsure=False)``); a later owl/not_owl verdict for the same ``clip_id``
supersedes the unsure one, because the store keeps the latest ``labelled_at`` per clip.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone

from datasets import Audio, ClassLabel, Features, Value

__all__ = [
    "CLIP_S",
    "FEATURES",
    "LABELS",
    "NO_LABEL",
    "REASONS",
    "SAMPLE_RATE",
    "UNSURE",
    "VERDICTS",
    "clip_id",
    "is_trainable",
    "label_of_verdict",
    "normalize_utc",
    "utc_now",
]

#: ClassLabel names, in the seed dataset's order (owl = 0, not_owl = 1).
LABELS: list[str] = ["owl", "not_owl"]
#: Why a clip is not an owl (optional, for not_owl verdicts).
REASONS: list[str] = ["boobook", "other owl", "koala", "frog/insect", "wind/rain", "vehicle/human", "noise", "other"]
#: The verdict that carries no label.
UNSURE = "unsure"
#: Everything the labelling tab can record.
VERDICTS: list[str] = [*LABELS, UNSURE]
#: Clips are 16 kHz mono, 5 s (80 000 samples), like the seed.
SAMPLE_RATE = 16000
CLIP_S = 5.0
#: ``label`` value of rows whose verdict is unsure (``datasets``' "no label").
NO_LABEL = -1

FEATURES = Features(
    {
        # The seed's three columns first, same types.
        "audio": Audio(sampling_rate=SAMPLE_RATE),
        "label": ClassLabel(names=LABELS),
        "filename": Value("string"),
        # Provenance.
        "clip_id": Value("string"),
        "source": Value("string"),
        "start_s": Value("float64"),
        "end_s": Value("float64"),
        "group": Value("string"),
        # Who said so, when, and with what help.
        "labeller": Value("string"),
        "labelled_at": Value("string"),
        "model": Value("string"),
        "score": Value("float64"),
        "reason": Value("string"),
        "verdict": Value("string"),
    }
)


def clip_id(source: str, start_s: float, end_s: float) -> str:
    """A stable 16-hex-digit id for the clip ``[start_s, end_s)`` of ``source``.

    Offsets are rounded to the millisecond first, so float noise (``4.999999`` vs ``5.0``) cannot split one
    clip into two ids. ``source`` should be machine-independent (a path relative to a data root, see
    ``owlfinder.data.clips.source_name``), so the same clip gets the same id everywhere.
    """
    key = f"{source}\x00{round(float(start_s), 3):.3f}\x00{round(float(end_s), 3):.3f}"
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


def utc_now() -> str:
    """The current UTC time as the store writes it: ``2025-01-31T21:04:05.123456Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def normalize_utc(value: str | datetime | None) -> str | None:
    """Render a timestamp in the store's one UTC format, so that string order is time order.

    Naive datetimes and strings without an offset are taken as UTC. ``None`` stays ``None``.

    Raises:
        ValueError: not an ISO 8601 timestamp.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if _ISO_Z.match(value):
            return value
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def label_of_verdict(verdict: str) -> int:
    """The ``label`` value for a verdict: the ClassLabel index, or ``-1`` for unsure.

    Raises:
        ValueError: not one of :data:`VERDICTS`.
    """
    if verdict == UNSURE:
        return NO_LABEL
    if verdict not in LABELS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    return LABELS.index(verdict)


def is_trainable(row: dict) -> bool:
    """True when a row carries an owl/not_owl label (not an unsure verdict)."""
    label = row.get("label")
    return label is not None and label != NO_LABEL and row.get("verdict") != UNSURE
