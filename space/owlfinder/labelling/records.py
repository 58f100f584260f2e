"""The labelling queue's records: its SQLite schema, the clip and acknowledgement types, its errors and the
small helpers its transactions share (labeller names, listening gain, verdict ordering, writer identity).

Used by :mod:`owlfinder.labelling.queue`; every name here is also importable from there.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

import numpy as np

from owlfinder.errors import OwlFinderError

__all__ = [
    "LEASE_S",
    "ORDERS",
    "UNDONE",
    "Ack",
    "AlreadyLabelled",
    "Clip",
    "ClipTaken",
    "NothingToUndo",
    "Order",
    "QueueError",
    "UnknownClip",
    "boost",
    "clean_labeller",
]

#: ``reason`` of the tombstone row that withdraws a verdict (undo).
UNDONE = "undone"
#: Default lease: how long a clip handed to one labeller is kept from everyone else.
LEASE_S = 600.0
Order = Literal["uncertainty", "score", "added"]
ORDERS: tuple[str, ...] = ("uncertainty", "score", "added")
_DEFAULT_THRESHOLD = 0.5
_UNLEASE = "UPDATE clips SET lease_owner=NULL, lease_until=NULL"
_INDEXED = ("clip_id", "labelled_at", "reason")
_NAME_RE = re.compile(r"[^\w .@:#+-]")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clips (
    clip_id      TEXT PRIMARY KEY,
    seq          INTEGER NOT NULL,
    source       TEXT NOT NULL,
    start_s      REAL NOT NULL,
    end_s        REAL NOT NULL,
    score        REAL,
    threshold    REAL,
    model        TEXT,
    kind         TEXT,
    flag_start_s REAL,
    flag_end_s   REAL,
    wall_clock   TEXT,
    filename     TEXT,
    grp          TEXT,
    audio        TEXT NOT NULL,
    added_at     TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending',   -- pending | writing | labelled
    lease_owner  TEXT,
    lease_until  REAL
);
CREATE INDEX IF NOT EXISTS clips_status ON clips(status);
CREATE TABLE IF NOT EXISTS ops (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    clip_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,                      -- label | undo
    labeller    TEXT NOT NULL,
    verdict     TEXT NOT NULL,
    reason      TEXT,
    labelled_at TEXT NOT NULL,
    state       TEXT NOT NULL,                      -- writing | stored
    shard       TEXT,
    reverts     INTEGER,                            -- undo: the label op it withdraws
    undone_by   INTEGER,                            -- label: the undo op that withdrew it
    owner       TEXT,                               -- '<pid>:<process token>' of the writer
    UNIQUE (clip_id, labelled_at)
);
CREATE INDEX IF NOT EXISTS ops_labeller ON ops(labeller, kind, state);
CREATE TABLE IF NOT EXISTS skips (
    clip_id  TEXT NOT NULL,
    labeller TEXT NOT NULL,
    at       REAL NOT NULL,
    PRIMARY KEY (clip_id, labeller)
);
CREATE TABLE IF NOT EXISTS store_rows (          -- an index of the store's shards (immutable, so cacheable)
    shard       TEXT NOT NULL,
    clip_id     TEXT NOT NULL,
    labelled_at TEXT,
    reason      TEXT
);
CREATE INDEX IF NOT EXISTS store_rows_clip ON store_rows(clip_id, labelled_at);
CREATE TABLE IF NOT EXISTS shards_seen (shard TEXT PRIMARY KEY);
"""


class QueueError(OwlFinderError):
    """A queue operation refused; ``str(err)`` is one line meant for the person labelling."""


class UnknownClip(QueueError):
    """No clip with that id is in the queue."""


class ClipTaken(QueueError):
    """The clip is leased to (or being saved by) another labeller."""


class AlreadyLabelled(QueueError):
    """The clip already has a verdict."""


class NothingToUndo(QueueError):
    """The labeller has no verdict left to undo."""


@dataclass(frozen=True)
class Clip:
    """A clip in the queue.

    Attributes:
        clip_id: :func:`owlfinder.data.schema.clip_id` of the clip's audio and span (or, for clips queued
            before content ids, the legacy name-based id).
        source: the recording's display name (an upload's file name, or a path relative to a data root).
        start_s, end_s: the clip's place in the recording (seconds).
        score: the model's score for the clip (``None`` for plain chunks).
        threshold: the detection threshold it was flagged against.
        model: the model that scored it.
        kind: ``event``, ``uncertain`` or ``chunk``.
        flag_start_s, flag_end_s: the flagged span (event or window), in recording seconds, when known.
        wall_clock: ISO wall-clock time of the clip's start, when the recording's start is known.
        filename: the clip's file name in the dataset.
        group: the ``group`` column (the recording).
        audio_path: the raw 16 kHz clip on disk.
        status: ``pending``, ``writing`` or ``labelled``.
        lease_owner, lease_until: who holds it, until when (epoch seconds).
    """

    clip_id: str
    source: str
    start_s: float
    end_s: float
    score: float | None
    threshold: float | None
    model: str | None
    kind: str | None
    flag_start_s: float | None
    flag_end_s: float | None
    wall_clock: str | None
    filename: str | None
    group: str | None
    audio_path: Path
    status: str = "pending"
    lease_owner: str | None = None
    lease_until: float | None = None

    @property
    def uncertainty(self) -> float | None:
        """``|score - threshold|``: smaller means the model was less sure."""
        if self.score is None:
            return None
        return abs(self.score - (self.threshold if self.threshold is not None else _DEFAULT_THRESHOLD))

    def summary(self) -> dict:
        """What the ``queue`` API lists: ``{clip_id, source, start_s, end_s, score}``."""
        return {"clip_id": self.clip_id, "source": self.source, "start_s": self.start_s, "end_s": self.end_s,
                "score": self.score}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["audio_path"] = str(self.audio_path)
        return d


@dataclass(frozen=True)
class Ack:
    """The acknowledgement of a verdict: returned only once the row is durably in the store."""

    clip_id: str
    stored: bool
    shard: str
    verdict: str
    reason: str | None
    labeller: str
    labelled_at: str

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------------------------- helpers


def clean_labeller(name: str | None) -> str:
    """A labeller name as stored: trimmed, one line, at most 64 characters; ``anonymous`` when empty."""
    name = " ".join(_NAME_RE.sub("", str(name or "")).split())[:64]
    return name or "anonymous"


def boost(y: np.ndarray, peak: float = 0.9, max_gain_db: float = 30.0) -> np.ndarray:
    """Normalise a clip for listening: DC removed, scaled so its peak is ``peak``, gain capped at
    ``max_gain_db`` (so near-silence is not blown up into hiss). Faint hoots become audible; the raw clip is
    what the dataset keeps."""
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    if len(y) == 0:
        return y
    y = y - float(np.mean(y))
    top = float(np.max(np.abs(y)))
    if top <= 0:
        return y
    gain = min(peak / top, 10 ** (max_gain_db / 20))
    return np.clip(y * gain, -1.0, 1.0).astype(np.float32)


def _after(ts: str, floor: str | None) -> str:
    """``ts``, or one microsecond after ``floor`` when the clock has not moved past it (so a later verdict,
    or an undo, always sorts after the one before)."""
    if floor is None or ts > floor:
        return ts
    t = datetime.strptime(floor, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return (t + timedelta(microseconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _clip_filename(source: str, start_s: float, cid: str) -> str:
    # The id's first digits keep clips of two same-named recordings apart in exports that key on filename.
    stem = Path(source).stem or "clip"
    return f"{stem}_{round(start_s * 1000):09d}_{cid[:8]}.flac"


#: Identifies this process incarnation (PIDs repeat across container restarts; a fork gets a new token).
_PROCESS_TOKEN = uuid.uuid4().hex


def _new_process_token() -> None:
    global _PROCESS_TOKEN
    _PROCESS_TOKEN = uuid.uuid4().hex


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_process_token)


def _owner() -> str:
    return f"{os.getpid()}:{_PROCESS_TOKEN}"


def _in_flight(owner: str | None) -> bool:
    """Whether the process that logged a ``writing`` op may still be writing it."""
    pid_s, _, token = (owner or "").partition(":")
    if token == _PROCESS_TOKEN:
        return True  # this process: another thread is in the middle of it
    try:
        pid = int(pid_s)
    except ValueError:
        return False
    if pid == os.getpid():
        return False  # an earlier process that had our PID
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
