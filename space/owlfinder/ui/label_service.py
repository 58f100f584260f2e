"""What the Label tab does, without gradio: who is asking, the next clip, verdicts, skips, undo, the API.

:class:`LabelService` is the whole back end of the Label tab and of the labelling API (``queue``, ``next``,
``label``, ``skip``, ``undo``), as :class:`~owlfinder.ui.detect_service.DetectService` is for Detect. Its
methods take plain values (the request as a :class:`Caller`) and return plain data (:class:`ClipView`, JSON
dicts); refusals are :class:`~owlfinder.errors.OwlFinderError` subclasses with a one-line public message
(:class:`~owlfinder.labelling.access.AccessDenied`, :class:`~owlfinder.labelling.queue.QueueError`,
:class:`~owlfinder.ui.detect_service.ServiceError`). Every call checks the labelling gate on the server, for
the page and the API alike.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from owlfinder.data.store import redact
from owlfinder.errors import public_message, scrub_paths
from owlfinder.labelling.access import Identity, LabelGate
from owlfinder.labelling.queue import (
    AlreadyLabelled,
    Clip,
    LabelQueue,
    QueueError,
    clean_labeller,
    start_hub_sync,
)
from owlfinder.ui.detect_service import ServiceError

__all__ = ["PROMPT", "Caller", "ClipView", "LabelService", "clip_markdown", "counter_markdown",
           "spectrogram_image", "sync_markdown"]

logger = logging.getLogger(__name__)

PROMPT = "**Type your name above to start labelling** (or sign in, where the Space asks for it)."
EMPTY = ("**Nothing to label right now.** Run a detection on the Detect tab (its events and near-threshold "
         "windows are queued here), or queue a `scripts/chunk.py` manifest with "
         "`python -m owlfinder.labelling ingest MANIFEST`.")


# ---------------------------------------------------------------------------------------------- pictures


def spectrogram_image(queue: LabelQueue, clip: Clip) -> np.ndarray:
    """The clip's 0–2 kHz spectrogram (the Detect tab's look: recording time axis, wall clock when known, the
    flagged span marked) as an RGB array."""
    from PIL import Image

    from owlfinder.ui.plots import spectrogram_png

    sr, y = queue.raw_audio(clip.clip_id)
    flag = (clip.flag_start_s, clip.flag_end_s) if clip.flag_start_s is not None else None
    recorded_at = None
    if clip.wall_clock:
        try:
            start = datetime.fromisoformat(clip.wall_clock) - timedelta(seconds=clip.start_s)
            recorded_at = start.isoformat(timespec="milliseconds")
        except ValueError:
            pass
    fd, tmp = tempfile.mkstemp(prefix="owl-label-", suffix=".png")
    os.close(fd)
    try:
        spectrogram_png(y, sr, tmp, offset_s=clip.start_s, event=flag, recorded_at=recorded_at)
        with Image.open(tmp) as im:
            return np.asarray(im.convert("RGB"))
    finally:
        Path(tmp).unlink(missing_ok=True)


class _PngCache:
    """A small LRU of rendered spectrograms (clips come back on undo and reload)."""

    def __init__(self, size: int = 64):
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, queue: LabelQueue, clip: Clip) -> np.ndarray:
        with self._lock:
            if clip.clip_id in self._items:
                self._items.move_to_end(clip.clip_id)
                return self._items[clip.clip_id]
        png = spectrogram_image(queue, clip)
        with self._lock:
            self._items[clip.clip_id] = png
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return png


# ---------------------------------------------------------------------------------------------- text


def clip_markdown(clip: Clip) -> str:
    """The facts shown above a clip: source, time in file (and wall clock), model score."""
    from owlfinder.ui.plots import fmt_hms, fmt_score

    parts = [f"**{clip.source}**", f"{fmt_hms(clip.start_s, 1)}–{fmt_hms(clip.end_s, 1)} in file"]
    if clip.wall_clock:
        parts.append(f"recorded {clip.wall_clock.replace('T', ' ')[:19]}")
    if clip.score is not None:
        thr = f" (threshold {fmt_score(clip.threshold)})" if clip.threshold is not None else ""
        parts.append(f"score **{fmt_score(clip.score)}**{thr}")
    if clip.kind:
        parts.append(clip.kind)
    if clip.flag_start_s is not None:
        parts.append(f"flagged {fmt_hms(clip.flag_start_s, 1)}–{fmt_hms(clip.flag_end_s, 1)} (dashed)")
    model = Path(clip.model).name if clip.model and clip.model.startswith(("/", "~", ".")) else clip.model
    return " · ".join(parts) + f"  \n<small>clip `{clip.clip_id}` · {model or 'no model'}</small>"


def counter_markdown(counts: dict[str, int]) -> str:
    """``n labelled · n remaining · you: n``."""
    return (f"**{counts['labelled']}** labelled · **{counts['remaining']}** remaining"
            f" · you: **{counts['mine']}**")


def dataset_path_shown(data_dir: str | os.PathLike) -> str:
    """The local dataset's folder as the page may show it: the data folder as configured when it is relative
    to the Space (``owl_data/dataset/``), else named by its setting (``$OWL_DATA_DIR/dataset/``), so no
    server folder is ever shown."""
    d = Path(data_dir)
    if d.is_absolute() or ".." in d.parts or str(d).startswith("~"):
        return "$OWL_DATA_DIR/dataset/"
    return f"{d.as_posix().rstrip('/')}/dataset/"


def sync_markdown(queue: LabelQueue) -> str:
    """Where verdicts go, for the page: never a server path, never a token (errors are redacted and their
    paths cut to file names)."""
    sync = queue.hub_sync
    where = f"`{dataset_path_shown(queue.data_dir)}`"
    if sync is None:
        return f"Verdicts are saved in this Space's local dataset: {where} (Parquet shards)."
    if sync.last_error:
        reason = scrub_paths(redact(sync.last_error))[:200]
        return f"Saved locally in {where}; Hub push to `{sync.repo_id}` will retry ({reason})."
    when = (datetime.fromtimestamp(sync.last_sync_at, timezone.utc).strftime("%H:%M UTC")
            if sync.last_sync_at else "not yet")
    return (f"Saved locally in {where} and pushed to `{sync.repo_id}` every {sync.every_s:.0f} s "
            f"(last push: {when}).")


def _int16(y: np.ndarray) -> np.ndarray:
    return (np.clip(y, -1.0, 1.0) * 32767).astype(np.int16)


# ---------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Caller:
    """The request, as plain values.

    Attributes:
        headers: its HTTP headers (the shared labelling key travels in ``X-Owl-Label-Token``).
        session: the browser session's id (page calls only): a lease belongs to one browser session.
        profile: the signed-in Hugging Face user's OAuth profile, if any.
        oauth_token: a Hugging Face token from the session or an API client, if any.
    """

    headers: Mapping[str, str] = field(default_factory=dict)
    session: str | None = None
    profile: Mapping[str, Any] | None = None
    oauth_token: str | None = None

    def __repr__(self) -> str:  # headers and the token stay out of logs
        return f"Caller(session={self.session!r}, signed_in={self.profile is not None})"


@dataclass
class ClipView:
    """What the Label tab shows: the leased clip (``clip_id`` empty when there is none), its audio (sample
    rate, int16 samples) and spectrogram (RGB), the facts above it, the counter and the status line."""

    clip_id: str
    audio: tuple[int, np.ndarray] | None
    image: np.ndarray | None
    info: str
    counter: str
    status: str

    def as_tuple(self) -> tuple:
        return self.clip_id, self.audio, self.image, self.info, self.counter, self.status


# ---------------------------------------------------------------------------------------------- service


class LabelService:
    """The Label tab's back end.

    Args:
        queue: the labelling queue (the one the Detect tab feeds).
        gate: who may label.
    """

    def __init__(self, queue: LabelQueue, gate: LabelGate):
        self.queue = queue
        self.gate = gate
        self._pngs = _PngCache()

    @classmethod
    def from_config(cls, cfg: Any, queue: LabelQueue | None = None, *,
                    gate: LabelGate | None = None) -> LabelService:
        """The service for the app's :class:`~owlfinder.ui.config.AppConfig`: ``LabelQueue(cfg.data_dir)``
        unless ``queue`` is given, the gate from ``cfg.labellers`` and ``cfg.label_token``, and the Hub push
        thread started when ``cfg.dataset`` and ``cfg.hf_token`` are set."""
        queue = queue if queue is not None else LabelQueue(cfg.data_dir)
        gate = gate if gate is not None else LabelGate.from_settings(cfg.labellers, cfg.label_token)
        start_hub_sync(queue, cfg.dataset, cfg.hf_token, cfg.sync_every_s)
        return cls(queue, gate)

    # ---------------------------------------------------------------------------------- who

    def identify(self, labeller: str | None, key: str | None, caller: Caller) -> Identity:
        """Who may label under which name (raises :class:`~owlfinder.labelling.access.AccessDenied`)."""
        return self.gate.check(labeller=labeller, headers=caller.headers, profile=caller.profile,
                               oauth_token=caller.oauth_token, key=key)

    @staticmethod
    def session_tag(caller: Caller) -> str:
        """``#<session>``: the suffix that ties a page's leases to its browser session."""
        return f"#{clean_labeller(caller.session)[:12]}" if caller.session else ""

    def lessee(self, ident: Identity, caller: Caller) -> str:
        """The lease holder for a page call: the name plus the browser session, so two people typing the
        same name never share a clip."""
        return ident.name[:48] + self.session_tag(caller)

    def closed(self, caller: Caller) -> None:
        """The browser tab went away: its clip is free for others at once (not after the lease runs out)."""
        tag = self.session_tag(caller)
        if tag:
            self.queue.release_suffix(tag)

    # ---------------------------------------------------------------------------------- page

    def counter(self, labeller: str | None = None) -> str:
        return counter_markdown(self.queue.counts(labeller))

    def status(self) -> str:
        return sync_markdown(self.queue)

    def view(self, clip: Clip | None, ident: Identity, note: str = "") -> ClipView:
        """The page for ``clip`` (``None``: nothing to label), with ``note`` before the status line."""
        counts = self.queue.counts(ident.name)
        foot = " ".join(x for x in (note, self.status()) if x)
        if clip is None:
            return ClipView("", None, None, EMPTY, counter_markdown(counts), foot)
        sr, y = self.queue.served_audio(clip.clip_id)
        return ClipView(clip.clip_id, (sr, _int16(y)), self._pngs.get(self.queue, clip), clip_markdown(clip),
                        counter_markdown(counts), foot)

    @staticmethod
    def has_name(labeller: str | None, caller: Caller) -> bool:
        return bool((labeller or "").strip()) or caller.profile is not None

    def start(self, labeller: str | None, key: str | None, caller: Caller) -> ClipView | None:
        """Lease the next clip to the person on the page; ``None`` when they have not given a name yet (the
        page then stays as it is, so a late reply can never wipe a clip a name typed meanwhile brought up)."""
        if not self.has_name(labeller, caller):
            return None
        ident = self.identify(labeller, key, caller)
        return self.view(self.queue.next(self.lessee(ident, caller)), ident)

    def verdict(self, clip_id: str, verdict: str, reason: str | None, labeller: str | None, key: str | None,
                caller: Caller) -> ClipView:
        """Store the page's verdict on ``clip_id`` (if any) and lease the next clip.

        Raises:
            ServiceError: no name, or the store could not be written (nothing was recorded).
        """
        if not self.has_name(labeller, caller):
            raise ServiceError("Type your name first.")
        ident = self.identify(labeller, key, caller)
        note = ""
        if clip_id:
            try:
                ack = self.queue.label(clip_id, verdict, ident.name, reason=reason,
                                       lessee=self.lessee(ident, caller))
                note = f"Saved {ack.verdict}{' (' + reason + ')' if reason else ''} for `{clip_id}`."
            except AlreadyLabelled:
                note = f"`{clip_id}` was already labelled."
            except QueueError as err:
                note = str(err) + "."
            except Exception as err:  # the store could not be written: nothing was recorded, say so
                logger.exception("saving a verdict failed")
                raise ServiceError(f"Not saved: {public_message(err)}") from None
        return self.view(self.queue.next(self.lessee(ident, caller)), ident, note)

    def skip(self, clip_id: str, labeller: str | None, key: str | None, caller: Caller) -> ClipView:
        """Give ``clip_id`` back without a verdict and lease the next clip."""
        ident = self.identify(labeller, key, caller)
        if clip_id:
            self.queue.skip(clip_id, self.lessee(ident, caller))
        return self.view(self.queue.next(self.lessee(ident, caller)), ident,
                         f"Skipped `{clip_id}`." if clip_id else "")

    def undo(self, clip_id: str, labeller: str | None, key: str | None, caller: Caller) -> ClipView:
        """Withdraw the person's latest verdict and show that clip again (the one on the page is given back).

        Raises:
            owlfinder.labelling.queue.NothingToUndo: no verdict of theirs to undo.
        """
        ident = self.identify(labeller, key, caller)
        lessee = self.lessee(ident, caller)
        clip = self.queue.undo(ident.name, lessee=lessee)
        if clip_id and clip_id != clip.clip_id:  # hand back the clip they were looking at
            self.queue.release_clip(clip_id, lessee)
        return self.view(clip, ident, f"Undid your verdict on `{clip.clip_id}`; label it again.")

    # ---------------------------------------------------------------------------------- API

    def api_queue(self, limit: int | None, caller: Caller) -> dict:
        """``/queue``: the clips waiting for a verdict, in the order they are offered."""
        self.identify("", None, caller)
        clips = [c.summary() for c in self.queue.pending(limit=max(0, int(limit or 0)) or None)]
        counts = self.queue.counts()
        return {"clips": clips, "labelled": counts["labelled"], "remaining": counts["remaining"]}

    def api_next(self, labeller: str | None, caller: Caller) -> dict:
        """``/next``: lease the next clip to ``labeller`` (nobody else is offered it for 10 minutes)."""
        ident = self.identify(labeller, None, caller)
        clip = self.queue.next(ident.name)
        return {"clip": None if clip is None else {**clip.summary(), "wall_clock": clip.wall_clock,
                                                   "kind": clip.kind, "threshold": clip.threshold},
                "labeller": ident.name}

    def api_label(self, clip_id: str, label: str, reason: str | None, labeller: str | None,
                  caller: Caller) -> dict:
        """``/label``: store a verdict; the acknowledgement is returned once it is durably saved.

        Raises:
            QueueError: an unknown or already labelled clip. ServiceError: a bad label or reason, or the
                store could not be written (nothing was recorded).
        """
        ident = self.identify(labeller, None, caller)
        try:
            return self.queue.label(clip_id, label, ident.name, reason=reason or None).to_dict()
        except QueueError:
            raise
        except ValueError as err:
            raise ServiceError(str(err)) from None
        except Exception as err:  # the store could not be written: nothing was recorded
            logger.exception("/label failed")
            raise ServiceError(f"not saved: {public_message(err)}") from None

    def api_skip(self, clip_id: str, labeller: str | None, caller: Caller) -> dict:
        """``/skip``: give a leased clip back without a verdict."""
        ident = self.identify(labeller, None, caller)
        self.queue.clip(clip_id)  # an unknown clip is an error, not a silent no-op
        self.queue.skip(clip_id, ident.name)
        return {"clip_id": clip_id, "skipped": True}

    def api_undo(self, labeller: str | None, caller: Caller) -> dict:
        """``/undo``: withdraw ``labeller``'s latest verdict and lease the clip back to them."""
        ident = self.identify(labeller, None, caller)
        clip = self.queue.undo(ident.name)
        return {"clip_id": clip.clip_id, "undone": True}
