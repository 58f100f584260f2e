"""The Detect tab: upload, threshold, a live score timeline, the events table, event playback, downloads.

Callbacks only call :class:`~owlfinder.ui.detect_service.DetectService`; :func:`owlfinder.ui.callbacks.user_errors`
turns its errors into a one-line :class:`gradio.Error`.

Event endpoints (undocumented in the API page; the documented API is ``/detect``): ``detect_ui`` (the
streaming run), ``rethreshold`` and ``play_event``.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from owlfinder.ui.callbacks import user_errors
from owlfinder.ui.detect_service import (
    DOWNLOAD_FORMATS,
    UPLOAD_SUFFIXES,
    DetectService,
    Session,
)
from owlfinder.ui.plots import EVENT_COLUMNS, timeline_figure

__all__ = ["build_detect_tab", "user_errors"]

_INTRO = """Upload a recording (WAV, FLAC, MP3, OGG or M4A, up to {hours:g} h and {size}), then press
**Find owls**. The timeline grows while the file is scanned; pick an event in the table to hear it with
{ctx:g} s of context and see its 0–2 kHz spectrogram. Moving the threshold re-derives the events from the
saved scores without scanning again."""

_PICK = "Pick an event in the table to hear it."
#: Download button labels, in the order of DOWNLOAD_FORMATS (json, csv, raven, audacity).
DOWNLOAD_LABELS = ("JSON", "CSV", "Raven", "Audacity")


def _buttons(paths: list[str] | None) -> list:
    """The download buttons' new values: a file each, or empty and disabled while there is none."""
    if not paths:
        return [gr.DownloadButton(value=None, interactive=False) for _ in DOWNLOAD_FORMATS]
    return [gr.DownloadButton(value=p, interactive=True) for p in paths]


def _close_session(session: Session | None) -> None:
    if isinstance(session, Session):
        session.close()


def build_detect_tab(service: DetectService) -> dict[str, gr.components.Component]:
    """Lay out the Detect tab inside the current ``gr.Tab`` and wire its events; returns its components."""
    cfg = service.cfg
    clf = service.clf
    session = gr.State(None, time_to_live=cfg.session_ttl_s, delete_callback=_close_session)
    gr.Markdown(_INTRO.format(hours=cfg.max_hours, size=cfg.max_upload_text, ctx=cfg.context_s),
                elem_id="owl-intro")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            upload = gr.File(label="Recording", file_types=list(UPLOAD_SUFFIXES), type="filepath",
                             elem_id="owl-upload", height=140)
            threshold = gr.Slider(0.0, 1.0, value=round(clf.threshold, 3), step=0.001, label="Threshold",
                                  info=f"This model's calibrated threshold is {clf.threshold:.2f}"
                                       + (f"; at this value, recordings from {len(clf.site_thresholds)} site(s) "
                                          "use their own" if clf.site_thresholds else "") + ".",
                                  elem_id="owl-threshold", buttons=["reset"])
            run = gr.Button("Find owls", variant="primary", elem_id="owl-run")
            progress_box = gr.Markdown("", elem_id="owl-progress", min_height=8)
            summary = gr.Markdown("", elem_id="owl-summary", min_height=60)
            gr.Markdown("<small>Download the results: JSON (all windows), CSV, Raven selection table, Audacity "
                        "labels</small>", elem_id="owl-downloads-label")
            with gr.Row(elem_id="owl-downloads"):
                downloads = [gr.DownloadButton(label, size="sm", interactive=False, elem_id=f"owl-dl-{fmt}",
                                               min_width=60)
                             for fmt, label in zip(DOWNLOAD_FORMATS, DOWNLOAD_LABELS, strict=True)]
            model_name = Path(clf.name).name if Path(clf.name).exists() else clf.name  # no server paths
            gr.Markdown(f"<small>Model: <code>{model_name}</code> · {clf.window_s:g} s windows every "
                        f"{cfg.hop_s:g} s · {clf.device.type.upper()}{' (ZeroGPU slices)' if service.sliced else ''}"
                        "</small>", elem_id="owl-model")
        with gr.Column(scale=3, min_width=500):
            timeline = gr.Plot(value=timeline_figure(None), label="Owl score over the recording",
                               show_label=False, elem_id="owl-timeline")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=420):
            events = gr.Dataframe(headers=EVENT_COLUMNS, value=[],
                                  datatype=["number", "str", "str", "number", "number", "str"],
                                  interactive=False, label="Events (click one to listen)",
                                  elem_id="owl-events", max_height=430, wrap=False)
        with gr.Column(scale=1, min_width=420):
            caption = gr.Markdown(_PICK, elem_id="owl-event-caption")
            player = gr.Audio(type="filepath", label="Event with context", interactive=False,
                              autoplay=True, elem_id="owl-player", buttons=["download"])
            spectro = gr.Image(type="filepath", label="Spectrogram 0–2 kHz", show_label=False, interactive=False,
                               elem_id="owl-spectrogram", buttons=["download", "fullscreen"])

    @user_errors
    def on_run(path: str | None, thr: float, state: Session | None, progress=gr.Progress()):  # noqa: B008
        first = True
        for new_state, view in service.run(state, path, thr,
                                           progress=lambda frac, desc: progress(frac, desc=desc)):
            clear = (None, None, _PICK) if first else (gr.skip(), gr.skip(), gr.skip())
            first = False
            yield (new_state, view.figure, view.rows, view.summary, *_buttons(view.downloads), *clear)

    @user_errors
    def on_threshold(thr: float, state: Session | None):
        new_state, view = service.rethreshold(state, thr)
        if new_state is None or new_state.detection is None:
            return (new_state, *[gr.skip()] * (len(outputs) - 1))
        return new_state, view.figure, view.rows, view.summary, *_buttons(view.downloads), None, None, _PICK

    @user_errors
    def on_select(state: Session | None, evt: gr.SelectData):
        row = evt.row_value or []
        ev = service.event(state, row[0] if row else None)
        return ev.figure, ev.audio_path, ev.image_path, ev.caption

    def busy() -> gr.Button:
        return gr.Button(value="Scanning…", interactive=False)

    def idle() -> gr.Button:
        return gr.Button(value="Find owls", interactive=True)

    outputs = [session, timeline, events, summary, *downloads, player, spectro, caption]
    scan = run.click(busy, None, run, queue=False, api_visibility="private").then(
        on_run, [upload, threshold, session], outputs, api_name="detect_ui", api_visibility="undocumented",
        concurrency_id="scan", concurrency_limit=cfg.concurrency, show_progress="full",
        show_progress_on=[progress_box],
    )
    # The button comes back after a run that failed too (a bad file, the time limit, a full queue): gradio's
    # page starts .then() listeners only when the run succeeded, so .failure() is wired as well.
    scan.then(idle, None, run, queue=False, api_visibility="private")
    scan.failure(idle, None, run, queue=False, api_visibility="private")
    # change (not release): dragging, typing, arrow keys and the reset button all re-derive the events;
    # always_last drops the values a drag passes through while one is being handled.
    threshold.change(on_threshold, [threshold, session], outputs, api_name="rethreshold",
                     api_visibility="undocumented", concurrency_limit=4, show_progress="hidden",
                     trigger_mode="always_last")
    events.select(on_select, [session], [timeline, player, spectro, caption], api_name="play_event",
                  api_visibility="undocumented", concurrency_limit=4, show_progress="minimal")
    return {"session": session, "upload": upload, "threshold": threshold, "run": run, "summary": summary,
            "downloads": downloads, "progress": progress_box, "timeline": timeline, "events": events,
            "player": player, "spectrogram": spectro, "caption": caption}
