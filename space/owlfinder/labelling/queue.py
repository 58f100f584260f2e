"""The labelling queue: flagged clips waiting for a person's verdict, and the verdicts, stored durably.

Layout under the data folder (``$OWL_DATA_DIR``)::

    queue/queue.sqlite3        clips, leases, verdict log (SQLite in WAL mode, synchronous=FULL)
    queue/clips/<clip_id>.flac the raw 16 kHz mono clip, cut when the clip was queued
    dataset/                   the local :class:`~owlfinder.data.store.DatasetStore` every verdict is appended to

Clips come from detection runs in the Space (:meth:`LabelQueue.add_detection`: every event, plus the windows
scored nearest the threshold) and from ``scripts/chunk.py`` manifests (:meth:`LabelQueue.add_manifest`).
Their audio is copied into the queue at once, so a deleted upload does not matter.

Clip ids come from the clip's audio and span (:func:`owlfinder.data.schema.clip_id`), never from the
recording's name, so two recorders' ``20240101_203000.WAV`` both reach the queue in full. Queues and stores
written before that hold 16-hex-digit name-based ids; those stay valid (their clips are labelled under them),
and a new clip whose name-based id matches one is taken for that clip only when its audio is the same.

Durability and exactly-once, in the order a verdict is written:

1. one SQLite transaction logs the verdict as ``writing`` (with its ``labelled_at``, unique per clip) and
   marks the clip busy, so no one else can label or lease it;
2. :meth:`DatasetStore.append` writes the row (audio embedded) as a new fsynced shard;
3. a second transaction marks the verdict ``stored`` and the clip ``labelled``; only then is it acknowledged.

A crash between 1 and 2 leaves a ``writing`` entry whose row is not in the store: reopening drops it and the
clip is offered again (it was never acknowledged). A crash between 2 and 3 leaves a row that *is* in the
store: reopening finds it by ``(clip_id, labelled_at)`` and completes step 3, so the clip is neither offered
again nor written twice. Reopening also indexes every shard of the store, so a clip labelled elsewhere (or
before the queue was lost) is never offered.

Undo appends a tombstone row for the clip (``verdict="unsure"``, ``label=-1``, ``reason="undone"``) with a
later ``labelled_at``: the store resolves a clip to its latest row, so the withdrawn verdict no longer counts,
and the history stays. The clip goes back to the labeller who undid it.

Leases: :meth:`LabelQueue.next` hands a clip to one labeller for ``lease_s`` seconds; nobody else is offered
it (or may label it) until it is labelled, skipped or the lease runs out. All state changes are SQLite
transactions (``BEGIN IMMEDIATE``), so threads and processes sharing a data folder are safe.

The schema, the :class:`Clip`/:class:`Ack` types, the errors and shared helpers are in
:mod:`owlfinder.labelling.records`, the Hub push in :mod:`owlfinder.labelling.hub` and the command line in
:mod:`owlfinder.labelling.cli`; their public names are importable from here too. This module is one class,
:class:`LabelQueue` (about 560 lines), kept whole because its transactions share one schema and one set of
invariants (the three-step write above, leases, reconciliation), which read best side by side.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.parquet as pq
import soundfile as sf

from owlfinder import audio as _audio
from owlfinder.data.clips import encode_flac, fit_to_length, source_name, spans_from_detection
from owlfinder.data.schema import (
    CLIP_S,
    REASONS,
    SAMPLE_RATE,
    UNSURE,
    VERDICTS,
    audio_fingerprint,
    clip_id,
    is_legacy_clip_id,
    legacy_clip_id,
    normalize_utc,
    utc_now,
)
from owlfinder.data.store import DatasetStore
from owlfinder.durable import atomic_write
from owlfinder.timestamps import offset_time, parse_recording_start, recording_start

if TYPE_CHECKING:
    from owlfinder.data.hubsync import HubSync
    from owlfinder.detect.detection import Detection

__all__ = [
    "LEASE_S",
    "UNDONE",
    "Ack",
    "AlreadyLabelled",
    "Clip",
    "ClipTaken",
    "LabelQueue",
    "NothingToUndo",
    "QueueError",
    "UnknownClip",
    "boost",
    "clean_labeller",
    "hub_sync_from_env",
    "start_hub_sync",
]

logger = logging.getLogger(__name__)

from owlfinder.labelling.hub import hub_sync_from_env, start_hub_sync  # noqa: E402,F401  (re-exported)
from owlfinder.labelling.records import (  # noqa: E402,F401  (re-exported: the queue's public names)
    _DEFAULT_THRESHOLD,
    _INDEXED,
    _SCHEMA,
    _UNLEASE,
    LEASE_S,
    ORDERS,
    UNDONE,
    Ack,
    AlreadyLabelled,
    Clip,
    ClipTaken,
    NothingToUndo,
    Order,
    QueueError,
    UnknownClip,
    _after,
    _clip_filename,
    _in_flight,
    _owner,
    boost,
    clean_labeller,
)

# ----------------------------------------------------------------------------------------------- queue


class LabelQueue:
    """Flagged clips waiting for a verdict, leased one labeller at a time; verdicts go to a dataset store.

    Args:
        data_dir: the data folder (``$OWL_DATA_DIR``); the queue lives in ``data_dir/queue``.
        store: where verdicts go; default the local store ``data_dir/dataset``.
        order: ``uncertainty`` (|score - threshold| smallest first, the default), ``score`` (highest first)
            or ``added`` (first in, first out). Clips without a score come after scored ones.
        lease_s: seconds a clip handed out by :meth:`next` stays reserved for its labeller.
        split: the dataset split verdicts are appended to.

    Opening reconciles the queue with the store (see the module docstring). Thread- and process-safe.
    """

    def __init__(self, data_dir: str | os.PathLike, *, store: DatasetStore | None = None,
                 order: Order = "uncertainty", lease_s: float = LEASE_S, split: str = "train"):
        if order not in ORDERS:
            raise ValueError(f"order must be one of {list(ORDERS)}, got {order!r}")
        self.data_dir = Path(data_dir).expanduser()
        self.dir = self.data_dir / "queue"
        self.clips_dir = self.dir / "clips"
        self.clips_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.dir / "queue.sqlite3"
        self.store = store if store is not None else DatasetStore.open(self.data_dir / "dataset")
        self.order: Order = order
        self.lease_s = float(lease_s)
        self.split = split
        self._local = threading.local()
        #: The background Hub pusher, when one was started for this queue (see :func:`hub_sync_from_env`).
        self.hub_sync: HubSync | None = None
        #: Fingerprints of the store's rows with legacy (name-based) ids, read on first need. A row added
        #: later under a legacy id is a verdict on a clip in this queue's own table, which is checked first.
        self._legacy_fps: dict[str, set[str]] | None = None
        self._db().executescript(_SCHEMA)  # idempotent; executescript runs in its own transaction
        self.reconcile()

    def __repr__(self) -> str:
        return f"LabelQueue({str(self.data_dir)!r}, order={self.order!r})"

    # ------------------------------------------------------------------------------------ sqlite

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.db_path, timeout=60.0, isolation_level=None, check_same_thread=True)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=60000")
            self._local.db = db
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: writers queue up instead of deadlocking)."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        """Close this thread's database connection (others close when their threads end)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def _clip(self, row: sqlite3.Row) -> Clip:
        return Clip(clip_id=row["clip_id"], source=row["source"], start_s=row["start_s"], end_s=row["end_s"],
                    score=row["score"], threshold=row["threshold"], model=row["model"], kind=row["kind"],
                    flag_start_s=row["flag_start_s"], flag_end_s=row["flag_end_s"],
                    wall_clock=row["wall_clock"], filename=row["filename"], group=row["grp"],
                    audio_path=self.dir / row["audio"], status=row["status"], lease_owner=row["lease_owner"],
                    lease_until=row["lease_until"])

    def _order_sql(self) -> str:
        if self.order == "uncertainty":
            return (f"score IS NULL, abs(score - coalesce(threshold, {_DEFAULT_THRESHOLD})), seq")
        if self.order == "score":
            return "score IS NULL, score DESC, seq"
        return "seq"

    # ------------------------------------------------------------------------------------ ingest

    def _known(self, db: sqlite3.Connection, cid: str) -> bool:
        """True when ``cid`` is queued already or labelled in the store."""
        return db.execute("SELECT 1 FROM clips WHERE clip_id=?", (cid,)).fetchone() is not None or \
            self._store_done(db, cid)

    def _next_at(self, db: sqlite3.Connection, cid: str) -> str:
        """A ``labelled_at`` for a new row of ``cid``: now, and later than any row it already has."""
        last = db.execute("SELECT max(labelled_at) FROM ops WHERE clip_id=?", (cid,)).fetchone()[0]
        stored = db.execute("SELECT max(labelled_at) FROM store_rows WHERE clip_id=?", (cid,)).fetchone()[0]
        return _after(_after(utc_now(), last), stored)

    def _known_legacy(self, db: sqlite3.Connection, old: str, fingerprint: str) -> bool:
        """True when the legacy id ``old`` (queued or labelled before content ids) names this very audio;
        the same name with other audio is another recording and does not count."""
        row = db.execute("SELECT audio FROM clips WHERE clip_id=?", (old,)).fetchone()
        if row is not None:
            try:
                prev = sf.read(self.dir / row["audio"], dtype="int16", always_2d=False)[0]
            except Exception:  # its audio is unreadable: keep the new clip rather than lose it
                return False
            return audio_fingerprint(prev) == fingerprint
        if not self._store_done(db, old):
            return False
        if self._legacy_fps is None:  # one pass over the store's legacy rows, then a lookup per clip
            ids = [r[0] for r in db.execute("SELECT DISTINCT clip_id FROM store_rows")]
            self._legacy_fps = self.store.fingerprints(i for i in ids if is_legacy_clip_id(i))
        return fingerprint in self._legacy_fps.get(old, set())

    def _store_done(self, db: sqlite3.Connection, cid: str) -> bool:
        """True when the store's latest row for ``cid`` is a verdict (not an undo tombstone)."""
        row = db.execute("SELECT reason FROM store_rows WHERE clip_id=? ORDER BY labelled_at DESC LIMIT 1",
                         (cid,)).fetchone()
        return row is not None and row["reason"] != UNDONE

    def add_clip(self, y: np.ndarray, *, source: str, start_s: float, end_s: float, sr: int = SAMPLE_RATE,
                 score: float | None = None, threshold: float | None = None, model: str | None = None,
                 kind: str = "chunk", flag: tuple[float, float] | None = None, wall_clock: str | None = None,
                 filename: str | None = None, group: str | None = None) -> bool:
        """Queue one clip (its audio is saved as 16 kHz FLAC first). Returns ``False`` when the clip is
        already queued or already labelled in the store (under its content id, or under the legacy id of
        ``(source, start_s, end_s)`` with the same audio)."""
        start_s, end_s = round(float(start_s), 3), round(float(end_s), 3)
        y = _audio.resample(_audio.to_mono(np.asarray(y, dtype=np.float32)), int(sr), SAMPLE_RATE)
        if len(y) == 0:
            raise ValueError(f"{source} {start_s:.1f}-{end_s:.1f} s: empty audio")
        fp = audio_fingerprint(y)
        cid = clip_id(fp, start_s, end_s)
        db = self._db()
        if self._known(db, cid) or self._known_legacy(db, legacy_clip_id(source, start_s, end_s), fp):
            return False
        rel = f"clips/{cid}.flac"
        data = encode_flac(y, SAMPLE_RATE)
        atomic_write(self.dir / rel, lambda f: f.write(data))  # audio first: a row never points at nothing
        with self._tx() as db:
            if db.execute("SELECT 1 FROM clips WHERE clip_id=?", (cid,)).fetchone() is not None:
                return False
            seq = db.execute("SELECT coalesce(max(seq), 0) + 1 FROM clips").fetchone()[0]
            db.execute(
                "INSERT INTO clips (clip_id, seq, source, start_s, end_s, score, threshold, model, kind, "
                "flag_start_s, flag_end_s, wall_clock, filename, grp, audio, added_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (cid, seq, source, start_s, end_s, None if score is None else float(score),
                 None if threshold is None else float(threshold), model, kind,
                 None if flag is None else round(float(flag[0]), 3),
                 None if flag is None else round(float(flag[1]), 3), wall_clock,
                 filename or _clip_filename(source, start_s, cid), group or source, rel, utc_now()))
        return True

    def add_detection(self, det: Detection, source_path: str | os.PathLike, *, n_uncertain: int = 10,
                      display_name: str | None = None) -> int:
        """Queue the clips worth labelling from one detection run, cutting their audio now.

        Every event becomes one 5 s clip centred on it (consecutive clips for long events), with the event's
        span marked; then the ``n_uncertain`` windows scored nearest the threshold become clips too (see
        :func:`owlfinder.data.clips.spans_from_detection`). The audio is read from ``source_path`` right away, so
        the recording may be deleted once this returns.

        Args:
            det: the detection result (complete or partial).
            source_path: the recording that was scanned.
            n_uncertain: how many near-threshold windows to add besides the events.
            display_name: the recording's name for ``source`` (e.g. the uploaded file's original name);
                default: its parent folder and file name. Only shown: clip ids come from the audio, so
                recordings with the same name do not collide.

        Returns:
            How many clips were newly queued (already queued or labelled clips are not counted).

        Raises:
            owlfinder.audio.AudioError: the recording cannot be read.
        """
        doc = det.to_dict()
        source = display_name or source_name(source_path)
        spans = spans_from_detection(doc, CLIP_S, 0.0, max(0, int(n_uncertain)))
        if not spans:
            return 0
        info = _audio.probe(source_path)
        n = int(round(CLIP_S * SAMPLE_RATE))
        added = 0
        for sp in spans:
            if sp.kind == "event":
                hits = [ev for ev in det.events if ev.start_s < sp.end_s and ev.end_s > sp.start_s]
                flag = (max(sp.start_s, min(ev.start_s for ev in hits)),
                        min(sp.end_s, max(ev.end_s for ev in hits))) if hits else None
            else:
                mid = (sp.start_s + sp.end_s) / 2
                flag = (max(sp.start_s, mid - det.window_s / 2), min(sp.end_s, mid + det.window_s / 2))
            y = _audio.load(source_path, SAMPLE_RATE, start_s=sp.start_s, end_s=sp.end_s, info=info)
            if len(y) == 0:
                logger.warning("%s: no audio at %.1f-%.1f s, not queued", source, sp.start_s, sp.end_s)
                continue
            added += self.add_clip(fit_to_length(y, n), source=source, start_s=sp.start_s, end_s=sp.end_s,
                                   score=sp.score, threshold=det.threshold, model=det.model, kind=sp.kind,
                                   flag=flag, wall_clock=offset_time(recording_start(det.recorded_at), sp.start_s))
        logger.info("queued %d clip(s) from %s", added, source)
        return added

    def add_manifest(self, path: str | os.PathLike) -> int:
        """Queue the clips of a ``scripts/chunk.py`` manifest (``manifest.jsonl``; audio paths are relative
        to its folder). Malformed lines and missing clips are logged and skipped.

        Returns:
            How many clips were newly queued.
        """
        path = Path(path)
        if path.is_dir():
            path = path / "manifest.jsonl"
        root = path.parent
        added = 0
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                source, start, end = str(rec["source"]), float(rec["start_s"]), float(rec["end_s"])
                wav = root / rec["audio"]
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                logger.warning("%s line %d: not a manifest record, skipped", path.name, n)
                continue
            try:
                y, sr = sf.read(wav, dtype="float32", always_2d=False)
            except Exception as err:  # missing or unreadable clip
                logger.warning("%s line %d: %s unreadable (%s), skipped", path.name, n, wav.name,
                               " ".join(str(err).split()))
                continue
            given = rec.get("clip_id")
            if given and not is_legacy_clip_id(given) and int(sr) == SAMPLE_RATE \
                    and given != clip_id(_audio.to_mono(y), start, end):
                logger.warning("%s line %d: clip_id %s does not match its audio and span; the audio's id "
                               "is used", path.name, n, given)
            start_dt = parse_recording_start(Path(source).name)
            added += self.add_clip(
                y, sr=int(sr), source=source, start_s=start, end_s=end, score=rec.get("score"),
                threshold=rec.get("threshold"), model=rec.get("model"), kind=rec.get("kind") or "chunk",
                wall_clock=offset_time(start_dt, start),
                filename=Path(str(rec["audio"])).with_suffix(".flac").name)
        logger.info("queued %d clip(s) from %s", added, path)
        return added

    # ------------------------------------------------------------------------------------ reading

    def clip(self, clip_id: str) -> Clip:
        """The queued clip ``clip_id``. Raises :class:`UnknownClip`."""
        row = self._db().execute("SELECT * FROM clips WHERE clip_id=?", (str(clip_id),)).fetchone()
        if row is None:
            raise UnknownClip(f"unknown clip_id {clip_id!r}")
        return self._clip(row)

    def pending(self, labeller: str | None = None, limit: int | None = None) -> list[Clip]:
        """Clips waiting for a verdict, in queue order; with ``labeller``, those they may take (not leased
        to someone else). Without, all unlabelled clips, leased or not."""
        sql = "SELECT * FROM clips WHERE status='pending'"
        args: list[Any] = []
        if labeller is not None:
            sql += " AND (lease_owner IS NULL OR lease_owner=? OR lease_until < ?)"
            args += [clean_labeller(labeller), time.time()]
        sql += f" ORDER BY {self._order_sql()}"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [self._clip(r) for r in self._db().execute(sql, args)]

    def counts(self, labeller: str | None = None) -> dict[str, int]:
        """``{"labelled", "remaining", "mine"}``: clips with a verdict, clips waiting (leased included) and,
        with ``labeller``, that labeller's standing verdicts."""
        db = self._db()
        rows = dict(db.execute("SELECT status, count(*) FROM clips GROUP BY status").fetchall())
        mine = 0
        if labeller is not None:
            mine = db.execute("SELECT count(*) FROM ops WHERE labeller=? AND kind='label' AND state='stored' "
                              "AND undone_by IS NULL", (clean_labeller(labeller),)).fetchone()[0]
        remaining = rows.get("pending", 0) + rows.get("writing", 0)
        return {"labelled": rows.get("labelled", 0), "remaining": remaining, "mine": mine}

    def raw_audio(self, clip_id: str) -> tuple[int, np.ndarray]:
        """``(sample_rate, samples)`` of the clip as stored in the dataset."""
        y, sr = sf.read(self.clip(clip_id).audio_path, dtype="float32", always_2d=False)
        return int(sr), y

    def served_audio(self, clip_id: str, peak: float = 0.9,
                     max_gain_db: float = 30.0) -> tuple[int, np.ndarray]:
        """``(sample_rate, samples)`` boosted for listening (see :func:`boost`)."""
        sr, y = self.raw_audio(clip_id)
        return sr, boost(y, peak, max_gain_db)

    # ------------------------------------------------------------------------------------ leases

    def next(self, labeller: str) -> Clip | None:
        """Lease the next clip to ``labeller`` and return it (``None`` when nothing is left for them).

        A labeller who already holds a live lease gets that clip again (a page reload does not lose it).
        Clips they skipped come last, oldest skip first.
        """
        who = clean_labeller(labeller)
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT * FROM clips WHERE status='pending' AND lease_owner=? AND "
                             f"lease_until >= ? ORDER BY {self._order_sql()} LIMIT 1", (who, now)).fetchone()
            if row is None:
                row = db.execute(
                    "SELECT c.* FROM clips c LEFT JOIN skips s ON s.clip_id=c.clip_id AND s.labeller=? "
                    "WHERE c.status='pending' "
                    "AND (c.lease_owner IS NULL OR c.lease_owner=? OR c.lease_until < ?) "
                    f"ORDER BY s.at IS NOT NULL, s.at, {self._order_sql()} LIMIT 1",
                    (who, who, now)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE clips SET lease_owner=?, lease_until=? WHERE clip_id=?",
                       (who, now + self.lease_s, row["clip_id"]))
        return self.clip(row["clip_id"])

    def lease(self, clip_id: str, labeller: str) -> Clip:
        """Lease a given clip to ``labeller``. Raises :class:`UnknownClip`, :class:`AlreadyLabelled` or
        :class:`ClipTaken`."""
        who = clean_labeller(labeller)
        now = time.time()
        with self._tx() as db:
            self._check_free(db, clip_id, who, now)
            db.execute("UPDATE clips SET lease_owner=?, lease_until=? WHERE clip_id=?",
                       (who, now + self.lease_s, clip_id))
        return self.clip(clip_id)

    def skip(self, clip_id: str, labeller: str) -> None:
        """Give the clip back without a verdict; it comes to this labeller again only after the others."""
        who = clean_labeller(labeller)
        with self._tx() as db:
            db.execute(f"{_UNLEASE} WHERE clip_id=? AND lease_owner=?", (clip_id, who))
            db.execute("INSERT OR REPLACE INTO skips (clip_id, labeller, at) VALUES (?, ?, ?)",
                       (clip_id, who, time.time()))

    def release_clip(self, clip_id: str, labeller: str) -> None:
        """Drop ``labeller``'s lease on one clip without counting it as skipped."""
        with self._tx() as db:
            db.execute(f"{_UNLEASE} WHERE clip_id=? AND lease_owner=? AND status='pending'",
                       (clip_id, clean_labeller(labeller)))

    def release_suffix(self, suffix: str) -> int:
        """Drop every lease whose holder ends with ``suffix`` (the page's ``#<session>``, when a tab
        closes)."""
        if not suffix:
            return 0
        pattern = suffix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._tx() as db:
            return db.execute(f"{_UNLEASE} WHERE status='pending' AND lease_owner LIKE ? ESCAPE '\\'",
                              ("%" + pattern,)).rowcount

    def release(self, labeller: str) -> int:
        """Drop every lease ``labeller`` holds (e.g. they left). Returns how many."""
        with self._tx() as db:
            return db.execute(f"{_UNLEASE} WHERE lease_owner=? AND status='pending'",
                              (clean_labeller(labeller),)).rowcount

    def _check_free(self, db: sqlite3.Connection, cid: str, who: str, now: float) -> sqlite3.Row:
        row = db.execute("SELECT * FROM clips WHERE clip_id=?", (cid,)).fetchone()
        if row is None:
            raise UnknownClip(f"unknown clip_id {cid!r}")
        if row["status"] == "labelled":
            raise AlreadyLabelled(f"clip {cid} is already labelled")
        if row["status"] == "writing":
            raise ClipTaken(f"clip {cid} is being saved by {row['lease_owner']}")
        if row["lease_owner"] not in (None, who) and (row["lease_until"] or 0) >= now:
            raise ClipTaken(f"clip {cid} is being labelled by someone else")
        return row

    # ------------------------------------------------------------------------------------ verdicts

    def _row(self, clip: Clip, verdict: str, reason: str | None, labeller: str, labelled_at: str) -> dict:
        return {"clip_id": clip.clip_id, "audio": clip.audio_path.read_bytes(), "verdict": verdict,
                "reason": reason, "labeller": labeller, "labelled_at": labelled_at, "model": clip.model,
                "score": clip.score, "source": clip.source, "start_s": clip.start_s, "end_s": clip.end_s,
                "group": clip.group or clip.source, "filename": clip.filename}

    def _write(self, clip: Clip, op_id: int, row: dict) -> str:
        """Append ``row`` to the store; on failure un-log the op so the clip can be labelled again."""
        try:
            return self.store.append([row], split=self.split)
        except BaseException:
            with self._tx() as db:
                db.execute("DELETE FROM ops WHERE id=? AND state='writing'", (op_id,))
                db.execute("UPDATE clips SET status='pending' WHERE clip_id=? AND status='writing'",
                           (clip.clip_id,))
            raise

    def label(self, clip_id: str, verdict: str, labeller: str, reason: str | None = None, *,
              lessee: str | None = None) -> Ack:
        """Record a verdict and return its acknowledgement once the row is durably in the store.

        Args:
            clip_id: a queued clip.
            verdict: ``owl``, ``not_owl`` or ``unsure``.
            labeller: who says so.
            reason: optional, one of :data:`owlfinder.data.schema.REASONS` (why it is not an owl).
            lessee: who holds the lease, when not the labeller's name (the page leases per browser session).

        Repeating the same verdict for a clip this labeller already labelled returns the first
        acknowledgement (a retried request writes nothing twice).

        Raises:
            ValueError: a bad verdict or reason.
            UnknownClip, AlreadyLabelled, ClipTaken: see their docs.
            owlfinder.data.store.StoreError, OSError: the store could not be written (nothing was recorded).
        """
        verdict = str(verdict or "").strip().lower().replace("-", "_").replace(" ", "_")
        if verdict not in VERDICTS:
            raise ValueError(f"label must be one of {VERDICTS}, got {verdict!r}")
        reason = (reason or "").strip() or None
        if reason is not None and reason not in REASONS:
            raise ValueError(f"reason must be one of {REASONS} or empty, got {reason!r}")
        who = clean_labeller(labeller)
        holder = clean_labeller(lessee) if lessee else who
        cid = str(clip_id or "").strip()
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT * FROM clips WHERE clip_id=?", (cid,)).fetchone()
            if row is not None and row["status"] == "labelled":
                prev = db.execute("SELECT * FROM ops WHERE clip_id=? AND kind='label' AND state='stored' AND "
                                  "undone_by IS NULL ORDER BY labelled_at DESC LIMIT 1", (cid,)).fetchone()
                if prev is not None and tuple(prev[k] for k in ("labeller", "verdict", "reason")) == (
                        who, verdict, reason):
                    return Ack(cid, True, prev["shard"], verdict, reason, who, prev["labelled_at"])
            self._check_free(db, cid, holder, now)
            at = self._next_at(db, cid)
            op_id = db.execute(
                "INSERT INTO ops (clip_id, kind, labeller, verdict, reason, labelled_at, state, owner) "
                "VALUES (?, 'label', ?, ?, ?, ?, 'writing', ?)", (cid, who, verdict, reason, at, _owner())
            ).lastrowid
            db.execute("UPDATE clips SET status='writing', lease_owner=?, lease_until=? WHERE clip_id=?",
                       (holder, now + self.lease_s, cid))
        clip = self.clip(cid)
        shard = self._write(clip, op_id, self._row(clip, verdict, reason, who, at))
        with self._tx() as db:
            done = db.execute("UPDATE ops SET state='stored', shard=? WHERE id=?", (shard, op_id)).rowcount
            if not done:  # reconciled away by another process meanwhile; the row is in the store
                db.execute("INSERT OR IGNORE INTO ops (clip_id, kind, labeller, verdict, reason, "
                           "labelled_at, state, shard, owner) "
                           "VALUES (?, 'label', ?, ?, ?, ?, 'stored', ?, ?)",
                           (cid, who, verdict, reason, at, shard, _owner()))
            db.execute(f"{_UNLEASE}, status='labelled' WHERE clip_id=?", (cid,))
            db.execute("INSERT INTO store_rows (shard, clip_id, labelled_at, reason) VALUES (?, ?, ?, ?)",
                       (shard, cid, at, reason))
            db.execute("INSERT OR IGNORE INTO shards_seen (shard) VALUES (?)", (shard,))
            db.execute("DELETE FROM skips WHERE clip_id=?", (cid,))
        logger.info("%s labelled %s as %s", who, cid, verdict)
        return Ack(cid, True, shard, verdict, reason, who, at)

    def undo(self, labeller: str, *, lessee: str | None = None) -> Clip:
        """Withdraw ``labeller``'s latest standing verdict and lease its clip back to them.

        A tombstone row (``verdict="unsure"``, ``reason="undone"``, later ``labelled_at``) is appended to the
        store, so the store's latest row for the clip no longer carries the withdrawn verdict; history stays.

        Args:
            labeller: whose latest verdict to withdraw.
            lessee: who gets the clip's lease back (default: the labeller).

        Raises:
            NothingToUndo: the labeller has no standing verdict in this queue.
        """
        who = clean_labeller(labeller)
        holder = clean_labeller(lessee) if lessee else who
        with self._tx() as db:
            op = db.execute("SELECT * FROM ops WHERE labeller=? AND kind='label' AND state='stored' AND "
                            "undone_by IS NULL ORDER BY id DESC LIMIT 1", (who,)).fetchone()
            if op is None:
                raise NothingToUndo(f"{who} has nothing to undo")
            cid = op["clip_id"]
            status = db.execute("SELECT status FROM clips WHERE clip_id=?", (cid,)).fetchone()
            if status is None or status["status"] != "labelled":
                raise NothingToUndo(f"clip {cid} is not labelled any more")
            at = self._next_at(db, cid)
            undo_id = db.execute(
                "INSERT INTO ops (clip_id, kind, labeller, verdict, reason, labelled_at, state, reverts, "
                "owner) VALUES (?, 'undo', ?, ?, ?, ?, 'writing', ?, ?)",
                (cid, who, UNSURE, UNDONE, at, op["id"], _owner())).lastrowid
            db.execute("UPDATE clips SET status='writing', lease_owner=? WHERE clip_id=?", (holder, cid))
        clip = self.clip(cid)
        try:
            shard = self.store.append([self._row(clip, UNSURE, UNDONE, who, at)], split=self.split)
        except BaseException:
            with self._tx() as db:
                db.execute("DELETE FROM ops WHERE id=? AND state='writing'", (undo_id,))
                db.execute("UPDATE clips SET status='labelled' WHERE clip_id=? AND status='writing'", (cid,))
            raise
        with self._tx() as db:
            db.execute("UPDATE ops SET state='stored', shard=? WHERE id=?", (shard, undo_id))
            db.execute("UPDATE ops SET undone_by=? WHERE id=?", (undo_id, op["id"]))
            db.execute("UPDATE clips SET status='pending', lease_owner=?, lease_until=? WHERE clip_id=?",
                       (holder, time.time() + self.lease_s, cid))
            db.execute("INSERT INTO store_rows (shard, clip_id, labelled_at, reason) VALUES (?, ?, ?, ?)",
                       (shard, cid, at, UNDONE))
            db.execute("INSERT OR IGNORE INTO shards_seen (shard) VALUES (?)", (shard,))
        logger.info("%s undid their verdict on %s", who, cid)
        return self.clip(cid)

    def history(self, labeller: str | None = None) -> list[dict]:
        """The verdict log (label and undo entries), oldest first."""
        sql, args = "SELECT * FROM ops", []
        if labeller is not None:
            sql, args = sql + " WHERE labeller=?", [clean_labeller(labeller)]
        return [dict(r) for r in self._db().execute(sql + " ORDER BY id", args)]

    # ------------------------------------------------------------------------------------ recovery

    def _index_store(self) -> int:
        """Index the store's shards not indexed yet (clip_id, labelled_at, reason). Returns rows added."""
        if not self.store.is_local:
            return 0
        db = self._db()
        seen = {r[0] for r in db.execute("SELECT shard FROM shards_seen")}
        new = [s for s in self.store.shards() if s not in seen]
        added = 0
        for shard, path in zip(new, self.store.local_paths(new), strict=True):
            try:
                names = pq.read_schema(path).names
                table = pq.read_table(path, columns=[c for c in _INDEXED if c in names])
            except Exception as err:  # unreadable shard: leave it for the store to report
                logger.warning("cannot index %s: %s", shard, " ".join(str(err).split())[:200])
                continue
            cols = table.to_pydict()
            n = table.num_rows
            rows = [(shard, c, normalize_utc(a) if a else None, r) for c, a, r in zip(
                cols.get("clip_id", [None] * n), cols.get("labelled_at", [None] * n),
                cols.get("reason", [None] * n), strict=True) if c is not None]
            with self._tx() as tx:
                if tx.execute("INSERT OR IGNORE INTO shards_seen (shard) VALUES (?)", (shard,)).rowcount:
                    tx.executemany("INSERT INTO store_rows (shard, clip_id, labelled_at, reason) "
                                   "VALUES (?, ?, ?, ?)", rows)
                    added += len(rows)
        return added

    def reconcile(self) -> dict[str, int]:
        """Bring the queue in line with the store after a crash or restart (run by the constructor).

        - verdicts logged as ``writing`` by a process that is gone: completed when their row is in the
          store, dropped (the clip is offered again) when it is not;
        - every clip whose latest store row is a verdict is marked labelled, and one whose latest row is an
          undo tombstone (or that has none) is pending again.

        Returns:
            Counts: ``indexed`` store rows, ``completed`` and ``dropped`` writes, ``labelled`` and
            ``reopened`` clips.
        """
        stats = {"indexed": self._index_store(), "completed": 0, "dropped": 0, "labelled": 0, "reopened": 0}
        with self._tx() as db:
            for op in db.execute("SELECT * FROM ops WHERE state='writing'").fetchall():
                if _in_flight(op["owner"]):
                    continue  # a live process (maybe this one) is writing it right now
                hit = db.execute("SELECT shard FROM store_rows WHERE clip_id=? AND labelled_at=?",
                                 (op["clip_id"], op["labelled_at"])).fetchone()
                if hit is None:
                    db.execute("DELETE FROM ops WHERE id=?", (op["id"],))
                    stats["dropped"] += 1
                    continue
                db.execute("UPDATE ops SET state='stored', shard=? WHERE id=?", (hit["shard"], op["id"]))
                if op["kind"] == "undo" and op["reverts"] is not None:
                    db.execute("UPDATE ops SET undone_by=? WHERE id=?", (op["id"], op["reverts"]))
                stats["completed"] += 1
            busy = {r[0] for r in db.execute("SELECT clip_id FROM ops WHERE state='writing'")}
            latest = {r["clip_id"]: r["reason"] for r in db.execute(
                "SELECT s.clip_id, s.reason FROM store_rows s JOIN clips c ON c.clip_id=s.clip_id "
                "WHERE s.labelled_at=(SELECT max(labelled_at) FROM store_rows t WHERE t.clip_id=s.clip_id)")}
            for row in db.execute("SELECT clip_id, status FROM clips").fetchall():
                cid = row["clip_id"]
                if cid in busy:
                    continue
                want = "labelled" if cid in latest and latest[cid] != UNDONE else "pending"
                if row["status"] != want:
                    db.execute(f"{_UNLEASE}, status=? WHERE clip_id=?", (want, cid))
                    stats["labelled" if want == "labelled" else "reopened"] += 1
        if any(stats[k] for k in ("completed", "dropped", "labelled", "reopened")):
            logger.info("queue reconciled with the store: %s", stats)
        return stats
