"""Background pushing of a local dataset store to the Hub: the labelling tab's safety net.

Like huggingface_hub's ``CommitScheduler`` (a thread that commits a folder every few minutes), but
exactly-once by construction instead of by bookkeeping: every round lists the files on the Hub and uploads,
in one commit, the local shards whose names are not there. Shards are immutable and uniquely named, so

- a failed round (Hub down, network gone, process killed mid-upload) is simply redone next round;
- a commit that succeeded although its response was lost is seen in the next listing and not re-sent;
- nothing is ever uploaded twice, and nothing written locally is ever lost.

The token comes from the argument or ``$HF_TOKEN`` (huggingface_hub reads it) and never reaches a log
message: everything logged goes through :func:`owlfinder.data.store.redact`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from owlfinder.data.store import DatasetStore, StoreError, push_missing, redact
from owlfinder.errors import OwlFinderError

__all__ = ["HubSync", "HubSyncError"]

logger = logging.getLogger(__name__)


class HubSyncError(OwlFinderError):
    """A sync round that failed; one line, token-free. The next round retries it."""


class HubSync:
    """Push the shards of a local store to a Hub dataset repo now and then, in a daemon thread.

    Args:
        store_dir: the local store folder (the labelling tab appends there).
        repo_id: Hub dataset id ``owner/name``; created (``exist_ok``) on the first round.
        api: an ``HfApi``-like object; default ``HfApi(token=token)``.
        token: Hub token; ``None`` lets huggingface_hub read ``$HF_TOKEN``.
        every_s: seconds between rounds.
        private: visibility if the repo has to be created.
        retries, backoff_s: per-call retries inside one round (a failed round is retried next round anyway).

    Use ``with HubSync(...):`` or :meth:`start` / :meth:`stop`; :meth:`sync_once` runs one round now.
    """

    def __init__(self, store_dir: str | os.PathLike, repo_id: str, api: Any = None, token: str | None = None,
                 every_s: float = 300.0, *, private: bool | None = None, retries: int = 3,
                 backoff_s: float = 2.0):
        self.local = DatasetStore.open(Path(store_dir))  # a Path is always local, even "owner/name"-shaped
        self.hub = DatasetStore.open(repo_id, token=token, api=api, private=private, retries=retries,
                                     backoff_s=backoff_s)
        if self.hub.is_local:
            raise ValueError(f"{repo_id!r} is not a Hub dataset id (owner/name)")
        self.repo_id = repo_id
        self.every_s = float(every_s)
        self._token = token
        self._lock = threading.Lock()  # one round at a time (timer thread vs a manual "push now")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Every shard path this object uploaded, in order.
        self.pushed: list[str] = []
        #: The last round's error message (token-free), or ``None`` after a good round.
        self.last_error: str | None = None
        self.last_sync_at: float | None = None

    def sync_once(self) -> list[str]:
        """Run one round: upload the local shards the Hub lacks (one commit) and return their paths.

        Raises:
            HubSyncError: the round failed (after per-call retries); nothing is marked as done, so the next
                round uploads the same shards.
        """
        with self._lock:
            try:
                pushed = push_missing(self.local, self.hub, one_commit=True)
            except StoreError as err:
                self.last_error = redact(str(err), self._token)
                raise HubSyncError(self.last_error) from None
            except Exception as err:  # a fake or future api raising something unexpected
                self.last_error = redact(f"sync to {self.repo_id} failed: {type(err).__name__}: {err}",
                                         self._token).replace("\n", " ")
                raise HubSyncError(self.last_error) from None
            self.last_error = None
            self.last_sync_at = time.time()
            self.pushed.extend(pushed)
            if pushed:
                logger.info("pushed %d shard(s) to %s", len(pushed), self.repo_id)
            return pushed

    def _round(self) -> None:
        try:
            self.sync_once()
        except HubSyncError as err:
            logger.warning("Hub sync failed, will retry in %.0f s: %s", self.every_s, err)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._round()

    def start(self) -> HubSync:
        """Start the background thread (first round after ``every_s``). Idempotent."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"HubSync({self.repo_id})", daemon=True)
            self._thread.start()
        return self

    def stop(self, final_sync: bool = True) -> None:
        """Stop the thread and, by default, run a last round so nothing labelled stays local only."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if final_sync:
            self._round()

    def __enter__(self) -> HubSync:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
