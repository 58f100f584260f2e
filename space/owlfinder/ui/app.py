"""The Space: :func:`build_app` composes the Detect tab, the Label tab (when a labelling queue is given) and
the API; :func:`main` reads the environment and launches it (``python space/app.py``).

API (``gradio_client``; see ``docs/space.md``):

- ``/detect (audio: file, threshold: float | None = None) -> dict``: the engine's detection JSON
  (``file, duration_s, threshold, windows[], events[]`` and the scan settings);
- ``/model_info () -> dict``: the model, its calibrated threshold and the scan settings.

The Detect tab's own events (``detect_ui``, ``rethreshold``, ``play_event``) and the Label tab's endpoints
are named too.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from owlfinder.ui.callbacks import gr_error
from owlfinder.ui.config import AppConfig, ConfigError
from owlfinder.ui.detect_service import DetectService, ServiceError
from owlfinder.ui.detect_tab import build_detect_tab

__all__ = ["CSS", "build_app", "launch_kwargs", "main", "open_label_queue"]

log = logging.getLogger(__name__)

CSS = """
.gradio-container { max-width: 1500px !important; }
#owl-title h1 { margin-bottom: 0.1em; }
#owl-title p { margin-top: 0; color: var(--body-text-color-subdued); }
#owl-summary { min-height: 3em; }
#owl-model { color: var(--body-text-color-subdued); }
"""

_HEADER = """# Powerful Owl Finder
Find Powerful Owl (*Ninox strenua*) calls in long field recordings: whole nights from the Australian Acoustic
Observatory, AudioMoths or phones, scanned by an audio classifier into a short list of events worth a listen."""

_API_HELP = """```python
from gradio_client import Client, handle_file

client = Client("{where}")
result = client.predict(handle_file("night.flac"), api_name="/detect")  # optional: threshold=0.6
for ev in result["events"]:
    print(ev["start_s"], ev["end_s"], ev["score"], ev["start_time"])
```
`result` is the same JSON document as the command line's `.json` output: `file`, `duration_s`, `threshold`,
`windows` (`start_s`, `end_s`, `score`) and `events` (`start_s`, `end_s`, `score`, `mean_score`, `n_windows`,
`start_time`). A file that cannot be read raises an error naming the problem."""


def open_label_queue(cfg: AppConfig) -> Any | None:
    """The labelling queue in ``cfg.data_dir``, or ``None`` when disabled or its module is not installed."""
    if not cfg.label_queue:
        return None
    try:
        from owlfinder.labelling.queue import LabelQueue
    except ImportError as err:
        log.warning("labelling queue unavailable (%s); runs are not queued for labelling", err)
        return None
    return LabelQueue(cfg.data_dir)


def _file_arg(audio: Any) -> tuple[str, str | None]:
    """``(server path, original name)`` of an uploaded-file argument; refuses anything but a file upload."""
    if isinstance(audio, FileData):
        return audio.path, audio.orig_name
    if isinstance(audio, dict) and isinstance(audio.get("path"), str):
        return audio["path"], audio.get("orig_name")
    raise ServiceError("audio: send a file (gradio_client.handle_file(path)), not a string or a number")


def _add_api(service: DetectService) -> None:
    """The documented API endpoints (``gr.api``: one JSON value each)."""

    def detect(audio: FileData, threshold: float | None = None) -> dict:
        """Find Powerful Owl calls in one recording.

        Args:
            audio: the recording (WAV, FLAC, MP3, OGG, M4A): `handle_file("night.flac")`.
            threshold: decision threshold in [0, 1]; leave out for the model's calibrated threshold.

        Returns:
            The detection document: file, duration_s, threshold, windows[] and events[].
        """
        try:
            path, name = _file_arg(audio)
            return service.detect_json(path, name, threshold)
        except Exception as err:
            raise gr_error(err, "/detect") from None

    def model_info() -> dict:
        """The model, its calibrated threshold and the scan settings."""
        return service.model_info()

    gr.api(detect, api_name="detect", concurrency_id="scan", concurrency_limit=service.cfg.concurrency)
    gr.api(model_info, api_name="model_info", concurrency_limit=8)


def _file_paths(value: Any, out: set[str], depth: int = 0) -> None:
    """The ``path`` of every file object in a request's data (dicts and :class:`FileData`, nested)."""
    if depth > 6:
        return
    if isinstance(value, FileData):
        out.add(os.path.realpath(value.path))
    elif isinstance(value, dict):
        if isinstance(value.get("path"), str):
            out.add(os.path.realpath(value["path"]))
        for v in value.values():
            if isinstance(v, (dict, list, tuple)):
                _file_paths(v, out, depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _file_paths(v, out, depth + 1)


def upload_refs(demo: gr.Blocks) -> Any:
    """``path -> n``: how many requests waiting in ``demo``'s queue name an uploaded file.

    Gradio stores uploads by content, so identical uploads share one path; the service removes an original
    upload only when no waiting request still needs it. Reads gradio's queue; when that fails (a gradio
    version with other internals) the service keeps the file and gradio's cache expiry removes it.
    """

    def refs(path: str) -> int:
        q = demo._queue
        events = [e for eq in list(q.event_queue_per_concurrency_id.values()) for e in list(eq.queue)]
        target = os.path.realpath(path)
        n = 0
        for e in events:
            paths: set[str] = set()
            _file_paths(getattr(getattr(e, "data", None), "data", None), paths)
            n += target in paths
        return n

    return refs


def build_app(cfg: AppConfig | None = None, queue: Any | None = None, *,
              service: DetectService | None = None, label_tab: bool | None = None) -> gr.Blocks:
    """Build the Space.

    Args:
        cfg: settings (default :meth:`AppConfig.from_env`).
        queue: the labelling queue (:class:`owlfinder.labelling.queue.LabelQueue`): each run adds its events and
            most uncertain windows to it, and the Label tab is shown. ``None``: neither.
        service: a ready :class:`DetectService` (default: one for ``cfg`` and ``queue``, loading the model).
        label_tab: show the Label tab (default: when there is a queue).

    Returns:
        The :class:`gradio.Blocks`, queued (bounded concurrency and queue size), not launched; launch it
        with ``demo.launch(**launch_kwargs(cfg))``.
    """
    cfg = cfg or AppConfig.from_env()
    if service is None:
        from gradio.utils import get_upload_folder

        service = DetectService(cfg, queue, upload_root=get_upload_folder())
    ttl = int(max(3600, cfg.session_ttl_s))
    with gr.Blocks(title="Powerful Owl Finder", delete_cache=(1800, ttl)) as demo:
        gr.Markdown(_HEADER, elem_id="owl-title")
        with gr.Tabs():
            with gr.Tab("Detect", id="detect"):
                build_detect_tab(service)
            if service.queue is not None and label_tab is not False:
                try:
                    from owlfinder.ui.label_tab import build_label_tab
                except ImportError as err:
                    log.warning("Label tab unavailable: %s", err)
                else:
                    with gr.Tab("Label", id="label"):
                        build_label_tab(cfg, service.queue)
            with gr.Tab("Use from Python", id="api"):
                where = cfg.space_id or f"http://127.0.0.1:{cfg.server_port}/"
                gr.Markdown(_API_HELP.format(where=where))
        _add_api(service)
    demo.queue(default_concurrency_limit=cfg.concurrency, max_size=cfg.queue_size)
    service.upload_refs = upload_refs(demo)
    demo.owl_service = service  # type: ignore[attr-defined]  # for tests and scripts
    return demo


def launch_kwargs(cfg: AppConfig, **overrides) -> dict:
    """Keyword arguments for ``demo.launch``: address, upload limit, theme, no SSR or run history."""
    kwargs: dict[str, Any] = dict(
        server_name=cfg.server_name, server_port=cfg.server_port, max_file_size=cfg.max_upload_bytes,
        ssr_mode=False, run_history=False, footer_links=["api", "gradio"], css=CSS,
        theme=gr.themes.Soft(primary_hue="orange", secondary_hue="blue", neutral_hue="slate"),
    )
    tmp = Path(cfg.tmp_dir).resolve()
    if not any(base in (tmp, *tmp.parents) for base in (Path(tempfile.gettempdir()).resolve(), Path.cwd())):
        kwargs["allowed_paths"] = [str(tmp)]  # clips and downloads are served from the scratch folder
    kwargs.update(overrides)
    return kwargs


def main() -> None:
    """Read the environment, build the Space and serve it (blocking)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = AppConfig.from_env()
    except ConfigError as err:  # a bad or unsafe setting: one line naming it, no traceback, no server
        print(f"error: {err.public_message}", file=sys.stderr)
        raise SystemExit(2) from None
    demo = build_app(cfg, open_label_queue(cfg))
    demo.launch(**launch_kwargs(cfg))
