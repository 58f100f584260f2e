"""Pushing the labelling queue's local dataset store to a Hugging Face Hub dataset in the background.

:func:`start_hub_sync` starts a :class:`~owlfinder.data.hubsync.HubSync` for a queue; the Space calls it with
the settings of its :class:`~owlfinder.ui.config.AppConfig`, scripts and tests with
:func:`hub_sync_from_env`. The token is handed to huggingface_hub only; it is never logged or shown.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from owlfinder.data.store import is_hub_id

if TYPE_CHECKING:
    from owlfinder.data.hubsync import HubSync
    from owlfinder.labelling.queue import LabelQueue

__all__ = ["hub_sync_from_env", "start_hub_sync"]

logger = logging.getLogger("owlfinder.labelling.queue")  # the name these messages always had


def hub_sync_from_env(queue: LabelQueue, env: Mapping[str, str] | None = None, api: Any = None,
                      start: bool = True) -> HubSync | None:
    """:func:`start_hub_sync` with ``$OWL_DATASET``, ``$HF_TOKEN`` and ``$OWL_SYNC_EVERY_S`` (default 300)."""
    env = os.environ if env is None else env
    return start_hub_sync(queue, env.get("OWL_DATASET"), env.get("HF_TOKEN"),
                          float(env.get("OWL_SYNC_EVERY_S") or 300), api=api, start=start)


def start_hub_sync(queue: LabelQueue, repo: str | None, token: str | None, every_s: float = 300.0,
                   api: Any = None, start: bool = True) -> HubSync | None:
    """Start pushing the queue's local store to the Hub when ``repo`` names a Hub dataset and ``token`` is
    set (every ``every_s`` seconds). Returns the :class:`~owlfinder.data.hubsync.HubSync` (also kept as
    ``queue.hub_sync``) or ``None``.

    The token is handed to huggingface_hub only; it is never logged or shown.
    """
    repo = (repo or "").strip()
    token = (token or "").strip()
    if queue.hub_sync is not None:
        return queue.hub_sync
    if not repo or not token:
        return None
    if not is_hub_id(repo):
        logger.warning("OWL_DATASET=%s is not a Hub dataset id (owner/name); labels stay in %s", repo,
                       queue.store.location)
        return None
    if not queue.store.is_local:
        return None
    from owlfinder.data.hubsync import HubSync

    sync = HubSync(queue.store.local_dir, repo, api=api, token=token, every_s=every_s)  # type: ignore[arg-type]
    if start:
        sync.start()
        import atexit

        atexit.register(sync.stop)
    queue.hub_sync = sync
    logger.info("labels are pushed to the Hub dataset %s every %.0f s", repo, every_s)
    return sync
