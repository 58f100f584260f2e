"""The Label tab: review flagged clips in the browser, one keystroke per verdict, and the labelling API.

:func:`build_label_tab` is called by :func:`owlfinder.ui.app.build_app` inside ``with gr.Tab("Label")``. The
callbacks only call :class:`owlfinder.labelling.queue.LabelQueue` and :class:`owlfinder.labelling.access.LabelGate`; every
one of them checks the gate on the server, for the page and the API alike.

Named API endpoints (``gradio_client``): ``queue``, ``next``, ``label``, ``skip``, ``undo``; see
``docs/readme/labelling.md``.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from gradio.context import Context

from owlfinder.data.schema import REASONS
from owlfinder.data.store import redact
from owlfinder.labelling.access import AccessDenied, Identity, LabelGate
from owlfinder.labelling.queue import (
    AlreadyLabelled,
    Clip,
    LabelQueue,
    NothingToUndo,
    QueueError,
    clean_labeller,
    hub_sync_from_env,
)
from owlfinder.ui.detect_service import public_error, scrub_paths

__all__ = ["ENV_VARS", "KEYS", "build_label_tab", "clip_markdown", "spectrogram_image"]

logger = logging.getLogger(__name__)

#: Environment variables read by the Label tab (for the app's settings table).
ENV_VARS: dict[str, str] = {
    "OWL_DATASET": "Hub dataset owner/name the labels are pushed to (needs HF_TOKEN)",
    "HF_TOKEN": "Hub token for OWL_DATASET; never logged or shown",
    "OWL_SYNC_EVERY_S": "seconds between pushes of new labels to OWL_DATASET (default 300)",
    "OWL_LABELLERS": "who may label: HF usernames and org:NAME entries, comma-separated (unset: anyone)",
    "OWL_LABEL_TOKEN": "shared labelling key (X-Owl-Label-Token header or the key box); gates labelling",
}

#: Keyboard shortcuts: key -> button elem_id (digits 1-8 are "not owl" with that reason).
KEYS: dict[str, str] = {"o": "owl-btn-owl", "n": "owl-btn-not", "u": "owl-btn-unsure", "s": "owl-btn-skip",
                        "r": "owl-btn-replay", "z": "owl-btn-undo",
                        **{str(i + 1): f"owl-btn-r{i + 1}" for i in range(len(REASONS))}}

_SHORTCUT_JS = """
(() => {
  if (window.__owlLabelKeys) return;
  window.__owlLabelKeys = true;
  const keys = %s;
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    const t = e.target;
    const tag = ((t && t.tagName) || '').toLowerCase();
    if (tag === 'input' || tag === 'textarea' || tag === 'select' || (t && t.isContentEditable)) return;
    const id = keys[(e.key || '').toLowerCase()];
    if (!id) return;
    const el = document.getElementById(id);
    const btn = el && (el.tagName === 'BUTTON' ? el : el.querySelector('button')) || el;
    if (!btn || btn.offsetParent === null || btn.disabled) return;  // the Label tab is not showing
    e.preventDefault();
    btn.click();
  });
})();
"""

_REPLAY_JS = """
() => {
  // Gradio's player is a wavesurfer waveform: a click at its left edge seeks to 0, then play if paused.
  const root = document.getElementById('owl-label-audio');
  if (!root) return;
  const host = root.querySelector('#waveform > div');
  const shadow = host && host.shadowRoot;
  if (shadow) {
    const r = host.getBoundingClientRect();
    const x = r.left + 1, y = r.top + r.height / 2;
    const el = shadow.elementFromPoint(x, y) || shadow.firstElementChild;
    if (el) {
      for (const type of ['pointerdown', 'pointerup', 'click']) {
        el.dispatchEvent(new MouseEvent(type, {bubbles: true, composed: true, clientX: x, clientY: y}));
      }
    }
  } else {
    const media = root.querySelector('audio');
    if (media && media.src) { media.currentTime = 0; media.play(); return; }
  }
  const btn = root.querySelector('button.play-pause-button');
  if (btn && (btn.getAttribute('aria-label') || '').toLowerCase().startsWith('play')) btn.click();
}
"""

#: The labeller's name is kept in the browser's localStorage under "owlfinder-labeller".
_SAVE_NAME_JS = ("(name) => { try { localStorage.setItem('owlfinder-labeller', (name || '').trim()); } "
                 "catch (e) {} }")
_LOAD_NAME_JS = ("(typed) => { if (typed) return typed; "
                 "try { return localStorage.getItem('owlfinder-labeller') || ''; } "
                 "catch (e) { return ''; } }")
_PROMPT = "**Type your name above to start labelling** (or sign in, where the Space asks for it)."
_EMPTY = ("**Nothing to label right now.** Run a detection on the Detect tab (its events and near-threshold "
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
    from owlfinder.ui.plots import fmt_hms

    parts = [f"**{clip.source}**", f"{fmt_hms(clip.start_s, 1)}–{fmt_hms(clip.end_s, 1)} in file"]
    if clip.wall_clock:
        parts.append(f"recorded {clip.wall_clock.replace('T', ' ')[:19]}")
    if clip.score is not None:
        thr = f" (threshold {clip.threshold:.2f})" if clip.threshold is not None else ""
        parts.append(f"score **{clip.score:.3f}**{thr}")
    if clip.kind:
        parts.append(clip.kind)
    if clip.flag_start_s is not None:
        parts.append(f"flagged {fmt_hms(clip.flag_start_s, 1)}–{fmt_hms(clip.flag_end_s, 1)} (dashed)")
    model = Path(clip.model).name if clip.model and clip.model.startswith(("/", "~", ".")) else clip.model
    return " · ".join(parts) + f"  \n<small>clip `{clip.clip_id}` · {model or 'no model'}</small>"


def counter_markdown(counts: dict[str, int]) -> str:
    return (f"**{counts['labelled']}** labelled · **{counts['remaining']}** remaining"
            f" · you: **{counts['mine']}**")


def _sync_markdown(queue: LabelQueue) -> str:
    """Where verdicts go, for the page: never a server path, never a token (errors are redacted and their
    paths cut to file names)."""
    sync = queue.hub_sync
    if sync is None:
        return "Verdicts are saved in this Space's local dataset (the `dataset` folder of its data folder)."
    if sync.last_error:
        reason = scrub_paths(redact(sync.last_error))[:200]
        return f"Saved locally; Hub push to `{sync.repo_id}` will retry ({reason})."
    when = (datetime.fromtimestamp(sync.last_sync_at, timezone.utc).strftime("%H:%M UTC")
            if sync.last_sync_at else "not yet")
    return f"Saved locally and pushed to `{sync.repo_id}` every {sync.every_s:.0f} s (last push: {when})."


def _int16(y: np.ndarray) -> np.ndarray:
    return (np.clip(y, -1.0, 1.0) * 32767).astype(np.int16)


# ---------------------------------------------------------------------------------------------- the tab


def _on_spaces() -> bool:
    return bool(os.environ.get("SPACE_ID"))


def build_label_tab(cfg: Any, queue: LabelQueue | None = None, *,
                    gate: LabelGate | None = None) -> LabelQueue:
    """Build the Label tab's components and events inside the current ``gr.Tab``, plus the API endpoints.

    Args:
        cfg: the app's :class:`~owlfinder.ui.config.AppConfig` (``data_dir`` is used when ``queue`` is None).
        queue: the labelling queue the Detect tab feeds; default ``LabelQueue(cfg.data_dir)``.
        gate: the access rules; default :meth:`LabelGate.from_env`.

    Starts the Hub push thread when ``$OWL_DATASET`` and ``$HF_TOKEN`` are set. Returns the queue.
    """
    queue = queue if queue is not None else LabelQueue(cfg.data_dir)
    gate = gate if gate is not None else LabelGate.from_env()
    hub_sync_from_env(queue)
    pngs = _PngCache()
    tab = Context.block  # the gr.Tab this is built in (None or another block when used elsewhere)

    def identify(labeller: str | None, key: str | None, request: gr.Request | None,
                 profile: dict | None, token: Any) -> Identity:
        headers = dict(request.headers) if request is not None and getattr(request, "headers", None) else {}
        try:
            return gate.check(labeller=labeller, headers=headers, profile=profile,
                              oauth_token=getattr(token, "token", None), key=key)
        except AccessDenied as err:
            raise gr.Error(str(err), print_exception=False) from None

    def session_tag(request: gr.Request | None) -> str:
        session = getattr(request, "session_hash", None) if request is not None else None
        return f"#{clean_labeller(session)[:12]}" if session else ""

    def lessee(ident: Identity, request: gr.Request | None) -> str:
        # A lease belongs to one browser session, so two people typing the same name never share a clip.
        return ident.name[:48] + session_tag(request)

    def closed(request: gr.Request):
        """The browser tab went away: its clip is free for others at once (not after the lease runs out)."""
        tag = session_tag(request)
        if tag:
            queue.release_suffix(tag)

    # ------------------------------------------------------------------------------ layout

    with gr.Row(equal_height=True):
        if gate.wants_login and _on_spaces():
            gr.LoginButton(size="sm", scale=0, min_width=200)
        name = gr.Textbox(label="Your name", placeholder="who is labelling (saved in this browser)",
                          elem_id="owl-labeller", scale=2, max_lines=1)
        key = gr.Textbox(label="Labelling key", type="password", elem_id="owl-label-key", scale=1,
                         max_lines=1, visible=bool(gate.secret))
        counter = gr.Markdown(counter_markdown(queue.counts()), elem_id="owl-label-counter")
    if gate.wants_login:
        who = ", ".join(sorted(gate.users) + [f"members of {o}" for o in sorted(gate.orgs)])
        how = " (sign in with Hugging Face)" if _on_spaces() else " (Hugging Face sign-in works on Spaces)"
        if gate.secret:
            how += ", or anyone with the labelling key"
        gr.Markdown(f"Labelling is limited to {who}{how}.")
    current = gr.State("")
    info = gr.Markdown(_PROMPT, elem_id="owl-label-info")
    player = gr.Audio(label="Clip (gain boosted for listening)", type="numpy", autoplay=True,
                      interactive=False, elem_id="owl-label-audio", format="wav", buttons=[])
    spec = gr.Image(label="Spectrogram 0–2 kHz", type="numpy", interactive=False, elem_id="owl-label-spec",
                    show_label=True, height=260, buttons=[])
    with gr.Row():
        owl = gr.Button("Owl  [o]", variant="primary", elem_id=KEYS["o"])
        not_owl = gr.Button("Not owl  [n]", variant="stop", elem_id=KEYS["n"])
        unsure = gr.Button("Unsure  [u]", elem_id=KEYS["u"])
        skip = gr.Button("Skip  [s]", elem_id=KEYS["s"])
        replay = gr.Button("Replay  [r]", elem_id=KEYS["r"])
        undo = gr.Button("Undo last  [z]", elem_id=KEYS["z"])
    with gr.Row():
        reason_buttons = [gr.Button(f"{i + 1} {r}", size="sm", elem_id=KEYS[str(i + 1)], min_width=60)
                          for i, r in enumerate(REASONS)]
    status = gr.Markdown(_sync_markdown(queue), elem_id="owl-label-status")
    gr.HTML("<small>Keys: <b>o</b> owl · <b>n</b> not owl · <b>1–8</b> not owl with that reason · "
            "<b>u</b> unsure · <b>s</b> skip · <b>r</b> replay · <b>z</b> undo last</small>",
            js_on_load=_SHORTCUT_JS % dict(KEYS).__repr__().replace("'", '"'))

    # ------------------------------------------------------------------------------ callbacks

    outputs = [current, player, spec, info, counter, status]

    def present(clip: Clip | None, ident: Identity, note: str = "") -> tuple:
        counts = queue.counts(ident.name)
        foot = " ".join(x for x in (note, _sync_markdown(queue)) if x)
        if clip is None:
            return "", None, None, _EMPTY, counter_markdown(counts), foot
        sr, y = queue.served_audio(clip.clip_id)
        return (clip.clip_id, (sr, _int16(y)), pngs.get(queue, clip), clip_markdown(clip),
                counter_markdown(counts), foot)

    def start(labeller: str, key_text: str, request: gr.Request, profile: gr.OAuthProfile | None,
              token: gr.OAuthToken | None):
        if not (labeller or "").strip() and profile is None:
            # No name yet: leave the clip area alone (the prompt is its initial text), so a late reply to
            # opening the tab can never wipe a clip that a name typed meanwhile has brought up.
            return (gr.update(), gr.update(), gr.update(), gr.update(), counter_markdown(queue.counts()),
                    gr.update())
        ident = identify(labeller, key_text, request, profile, token)
        return present(queue.next(lessee(ident, request)), ident)

    def verdict_fn(verdict: str, reason: str | None):
        def fn(clip_id: str, labeller: str, key_text: str, request: gr.Request,
               profile: gr.OAuthProfile | None, token: gr.OAuthToken | None):
            if not (labeller or "").strip() and profile is None:
                raise gr.Error("Type your name first.", print_exception=False)
            ident = identify(labeller, key_text, request, profile, token)
            note = ""
            if clip_id:
                try:
                    ack = queue.label(clip_id, verdict, ident.name, reason=reason,
                                      lessee=lessee(ident, request))
                    note = f"Saved {ack.verdict}{' (' + reason + ')' if reason else ''} for `{clip_id}`."
                except AlreadyLabelled:
                    note = f"`{clip_id}` was already labelled."
                except QueueError as err:
                    note = str(err) + "."
                except Exception as err:  # the store could not be written: nothing was recorded, say so
                    logger.exception("saving a verdict failed")
                    raise gr.Error(f"Not saved: {public_error(err)}",
                                   print_exception=False) from None
            return present(queue.next(lessee(ident, request)), ident, note)
        return fn

    def skip_fn(clip_id: str, labeller: str, key_text: str, request: gr.Request,
                profile: gr.OAuthProfile | None, token: gr.OAuthToken | None):
        ident = identify(labeller, key_text, request, profile, token)
        if clip_id:
            queue.skip(clip_id, lessee(ident, request))
        return present(queue.next(lessee(ident, request)), ident, f"Skipped `{clip_id}`." if clip_id else "")

    def undo_fn(clip_id: str, labeller: str, key_text: str, request: gr.Request,
                profile: gr.OAuthProfile | None, token: gr.OAuthToken | None):
        ident = identify(labeller, key_text, request, profile, token)
        try:
            clip = queue.undo(ident.name, lessee=lessee(ident, request))
        except NothingToUndo as err:
            raise gr.Error(str(err), print_exception=False) from None
        if clip_id and clip_id != clip.clip_id:  # hand back the clip they were looking at
            queue.release_clip(clip_id, lessee(ident, request))
        return present(clip, ident, f"Undid your verdict on `{clip.clip_id}`; label it again.")

    private = dict(api_visibility="private", concurrency_limit=8, concurrency_id="label")
    common = dict(inputs=[current, name, key], outputs=outputs, **private)
    for btn, verdict, reason in [(owl, "owl", None), (not_owl, "not_owl", None), (unsure, "unsure", None)] + [
            (b, "not_owl", r) for b, r in zip(reason_buttons, REASONS, strict=True)]:
        btn.click(verdict_fn(verdict, reason), **common)
    skip.click(skip_fn, **common)
    undo.click(undo_fn, **common)
    replay.click(None, js=_REPLAY_JS, api_visibility="private")
    begin = dict(fn=start, inputs=[name, key], outputs=outputs, **private)
    # The name is remembered in the browser's localStorage, client-side only: restoring it on load needs no
    # server round trip, so it can never overwrite a name typed while the page was loading.
    name.blur(None, inputs=[name], js=_SAVE_NAME_JS, api_visibility="private").then(**begin)
    name.submit(None, inputs=[name], js=_SAVE_NAME_JS, api_visibility="private").then(**begin)
    key.submit(**begin)
    loaded = gr.on(triggers=None, fn=None, inputs=[name], outputs=[name], js=_LOAD_NAME_JS,
                   api_visibility="private")
    if isinstance(tab, gr.Tab):
        tab.select(**begin)  # lease a clip only when someone opens the tab, not on every page view
    else:
        loaded.then(**begin)
    if Context.root_block is not None:
        Context.root_block.unload(closed)

    # ------------------------------------------------------------------------------ API

    def api_identity(labeller: str, request: gr.Request | None, token: Any) -> Identity:
        return identify(labeller, None, request, None, token)

    def queue_api(limit: int = 100, request: gr.Request = None,
                  oauth_token: gr.OAuthToken | None = None) -> dict:
        """The clips waiting for a verdict, in the order they are offered: {"clips": [{clip_id, source,
        start_s, end_s, score}, ...], "labelled": n, "remaining": n}."""
        api_identity("", request, oauth_token)
        clips = [c.summary() for c in queue.pending(limit=max(0, int(limit or 0)) or None)]
        counts = queue.counts()
        return {"clips": clips, "labelled": counts["labelled"], "remaining": counts["remaining"]}

    def next_api(labeller: str = "", request: gr.Request = None,
                 oauth_token: gr.OAuthToken | None = None) -> dict:
        """Lease the next clip to `labeller` (nobody else is offered it for 10 minutes): {"clip": {...} or
        null}."""
        ident = api_identity(labeller, request, oauth_token)
        clip = queue.next(ident.name)
        return {"clip": None if clip is None else {**clip.summary(), "wall_clock": clip.wall_clock,
                                                   "kind": clip.kind, "threshold": clip.threshold},
                "labeller": ident.name}

    def label_api(clip_id: str, label: str, reason: str = "", labeller: str = "", request: gr.Request = None,
                  oauth_token: gr.OAuthToken | None = None) -> dict:
        """Store a verdict (label: owl, not_owl or unsure; reason: optional, one of the not-owl reasons) and
        return {"clip_id", "stored": true, "shard", ...} once it is durably saved."""
        ident = api_identity(labeller, request, oauth_token)
        try:
            return queue.label(clip_id, label, ident.name, reason=reason or None).to_dict()
        except (QueueError, ValueError) as err:
            raise gr.Error(str(err), print_exception=False) from None
        except Exception as err:  # the store could not be written: nothing was recorded
            logger.exception("/label failed")
            raise gr.Error(f"not saved: {public_error(err)}",
                           print_exception=False) from None

    def skip_api(clip_id: str, labeller: str = "", request: gr.Request = None,
                 oauth_token: gr.OAuthToken | None = None) -> dict:
        """Give a leased clip back without a verdict: {"clip_id", "skipped": true}."""
        ident = api_identity(labeller, request, oauth_token)
        try:
            queue.clip(clip_id)
        except QueueError as err:
            raise gr.Error(str(err), print_exception=False) from None
        queue.skip(clip_id, ident.name)
        return {"clip_id": clip_id, "skipped": True}

    def undo_api(labeller: str = "", request: gr.Request = None,
                 oauth_token: gr.OAuthToken | None = None) -> dict:
        """Withdraw `labeller`'s latest verdict (a tombstone row is appended) and lease the clip back to them:
        {"clip_id", "undone": true}."""
        ident = api_identity(labeller, request, oauth_token)
        try:
            clip = queue.undo(ident.name)
        except QueueError as err:
            raise gr.Error(str(err), print_exception=False) from None
        return {"clip_id": clip.clip_id, "undone": True}

    gr.api(queue_api, api_name="queue", concurrency_limit=8, concurrency_id="label")
    gr.api(next_api, api_name="next", concurrency_limit=8, concurrency_id="label")
    gr.api(label_api, api_name="label", concurrency_limit=8, concurrency_id="label")
    gr.api(skip_api, api_name="skip", concurrency_limit=8, concurrency_id="label")
    gr.api(undo_api, api_name="undo", concurrency_limit=8, concurrency_id="label")
    return queue
