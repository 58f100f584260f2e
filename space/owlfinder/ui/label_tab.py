"""The Label tab: review flagged clips in the browser, one keystroke per verdict, and the labelling API.

:func:`build_label_tab` is called by :func:`owlfinder.ui.app.build_app` inside ``with gr.Tab("Label")``. It
only lays out and wires: every callback turns the gradio request into a
:class:`~owlfinder.ui.label_service.Caller` and calls :class:`~owlfinder.ui.label_service.LabelService`,
which checks the labelling gate on the server, for the page and the API alike.

Named API endpoints (``gradio_client``): ``queue``, ``next``, ``label``, ``skip``, ``undo``; see
``docs/labelling.md``.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.context import Context

from owlfinder.data.schema import REASONS
from owlfinder.labelling.access import LabelGate
from owlfinder.labelling.queue import LabelQueue
from owlfinder.ui.callbacks import gr_error, user_errors
from owlfinder.ui.config import ENV_VARS as CONFIG_VARS
from owlfinder.ui.label_service import PROMPT, Caller, LabelService, clip_markdown, spectrogram_image

__all__ = ["ENV_VARS", "KEYS", "build_label_tab", "clip_markdown", "spectrogram_image"]

#: Environment variables for the Label tab (read by :meth:`owlfinder.ui.config.AppConfig.from_env`).
ENV_VARS: dict[str, str] = {k: CONFIG_VARS[k] for k in ("OWL_DATASET", "HF_TOKEN", "OWL_SYNC_EVERY_S",
                                                        "OWL_LABELLERS", "OWL_LABEL_TOKEN")}

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


# ---------------------------------------------------------------------------------------------- the tab


def _caller(request: gr.Request | None, profile: Any = None, token: Any = None, *, page: bool = True) -> Caller:
    """The request as plain values for the service (the session id only for page calls)."""
    headers = dict(request.headers) if request is not None and getattr(request, "headers", None) else {}
    session = getattr(request, "session_hash", None) if (page and request is not None) else None
    return Caller(headers=headers, session=session, profile=profile, oauth_token=getattr(token, "token", None))


def build_label_tab(cfg: Any, queue: LabelQueue | None = None, *,
                    gate: LabelGate | None = None) -> LabelQueue:
    """Build the Label tab's components and events inside the current ``gr.Tab``, plus the API endpoints.

    Args:
        cfg: the app's :class:`~owlfinder.ui.config.AppConfig` (``data_dir`` is used when ``queue`` is None).
        queue: the labelling queue the Detect tab feeds; default ``LabelQueue(cfg.data_dir)``.
        gate: the access rules; default from ``cfg.labellers`` and ``cfg.label_token``.

    Starts the Hub push thread when ``cfg.dataset`` and ``cfg.hf_token`` are set. Returns the queue.
    """
    svc = LabelService.from_config(cfg, queue, gate=gate)
    gate = svc.gate
    tab = Context.block  # the gr.Tab this is built in (None or another block when used elsewhere)

    def closed(request: gr.Request):
        svc.closed(_caller(request))

    # ------------------------------------------------------------------------------ layout

    with gr.Row(equal_height=True):
        if gate.wants_login and bool(cfg.space_id):
            gr.LoginButton(size="sm", scale=0, min_width=200)
        name = gr.Textbox(label="Your name", placeholder="who is labelling (saved in this browser)",
                          elem_id="owl-labeller", scale=2, max_lines=1)
        key = gr.Textbox(label="Labelling key", type="password", elem_id="owl-label-key", scale=1,
                         max_lines=1, visible=bool(gate.secret))
        counter = gr.Markdown(svc.counter(), elem_id="owl-label-counter")
    if gate.wants_login:
        who = ", ".join(sorted(gate.users) + [f"members of {o}" for o in sorted(gate.orgs)])
        how = " (sign in with Hugging Face)" if bool(cfg.space_id) else " (Hugging Face sign-in works on Spaces)"
        if gate.secret:
            how += ", or anyone with the labelling key"
        gr.Markdown(f"Labelling is limited to {who}{how}.")
    current = gr.State("")
    info = gr.Markdown(PROMPT, elem_id="owl-label-info")
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
    status = gr.Markdown(svc.status(), elem_id="owl-label-status")
    gr.HTML("<small>Keys: <b>o</b> owl · <b>n</b> not owl · <b>1–8</b> not owl with that reason · "
            "<b>u</b> unsure · <b>s</b> skip · <b>r</b> replay · <b>z</b> undo last</small>",
            js_on_load=_SHORTCUT_JS % dict(KEYS).__repr__().replace("'", '"'))

    # ------------------------------------------------------------------------------ callbacks

    outputs = [current, player, spec, info, counter, status]

    @user_errors
    def start(labeller: str, key_text: str, request: gr.Request, profile: gr.OAuthProfile | None,
              token: gr.OAuthToken | None):
        view = svc.start(labeller, key_text, _caller(request, profile, token))
        if view is None:  # no name yet: leave the clip area alone
            return gr.update(), gr.update(), gr.update(), gr.update(), svc.counter(), gr.update()
        return view.as_tuple()

    def verdict_fn(verdict: str, reason: str | None):
        @user_errors
        def fn(clip_id: str, labeller: str, key_text: str, request: gr.Request,
               profile: gr.OAuthProfile | None, token: gr.OAuthToken | None):
            return svc.verdict(clip_id, verdict, reason, labeller, key_text,
                               _caller(request, profile, token)).as_tuple()
        return fn

    @user_errors
    def skip_fn(clip_id: str, labeller: str, key_text: str, request: gr.Request,
                profile: gr.OAuthProfile | None, token: gr.OAuthToken | None):
        return svc.skip(clip_id, labeller, key_text, _caller(request, profile, token)).as_tuple()

    @user_errors
    def undo_fn(clip_id: str, labeller: str, key_text: str, request: gr.Request,
                profile: gr.OAuthProfile | None, token: gr.OAuthToken | None):
        return svc.undo(clip_id, labeller, key_text, _caller(request, profile, token)).as_tuple()

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

    def api_caller(request: gr.Request | None, token: Any) -> Caller:
        return _caller(request, None, token, page=False)

    def queue_api(limit: int = 100, request: gr.Request = None,
                  oauth_token: gr.OAuthToken | None = None) -> dict:
        """The clips waiting for a verdict, in the order they are offered: {"clips": [{clip_id, source,
        start_s, end_s, score}, ...], "labelled": n, "remaining": n}."""
        try:
            return svc.api_queue(limit, api_caller(request, oauth_token))
        except Exception as err:
            raise gr_error(err, "/queue") from None

    def next_api(labeller: str = "", request: gr.Request = None,
                 oauth_token: gr.OAuthToken | None = None) -> dict:
        """Lease the next clip to `labeller` (nobody else is offered it for 10 minutes): {"clip": {...} or
        null}."""
        try:
            return svc.api_next(labeller, api_caller(request, oauth_token))
        except Exception as err:
            raise gr_error(err, "/next") from None

    def label_api(clip_id: str, label: str, reason: str = "", labeller: str = "", request: gr.Request = None,
                  oauth_token: gr.OAuthToken | None = None) -> dict:
        """Store a verdict (label: owl, not_owl or unsure; reason: optional, one of the not-owl reasons) and
        return {"clip_id", "stored": true, "shard", ...} once it is durably saved."""
        try:
            return svc.api_label(clip_id, label, reason, labeller, api_caller(request, oauth_token))
        except Exception as err:
            raise gr_error(err, "/label") from None

    def skip_api(clip_id: str, labeller: str = "", request: gr.Request = None,
                 oauth_token: gr.OAuthToken | None = None) -> dict:
        """Give a leased clip back without a verdict: {"clip_id", "skipped": true}."""
        try:
            return svc.api_skip(clip_id, labeller, api_caller(request, oauth_token))
        except Exception as err:
            raise gr_error(err, "/skip") from None

    def undo_api(labeller: str = "", request: gr.Request = None,
                 oauth_token: gr.OAuthToken | None = None) -> dict:
        """Withdraw `labeller`'s latest verdict (a tombstone row is appended) and lease the clip back to them:
        {"clip_id", "undone": true}."""
        try:
            return svc.api_undo(labeller, api_caller(request, oauth_token))
        except Exception as err:
            raise gr_error(err, "/undo") from None

    gr.api(queue_api, api_name="queue", concurrency_limit=8, concurrency_id="label")
    gr.api(next_api, api_name="next", concurrency_limit=8, concurrency_id="label")
    gr.api(label_api, api_name="label", concurrency_limit=8, concurrency_id="label")
    gr.api(skip_api, api_name="skip", concurrency_limit=8, concurrency_id="label")
    gr.api(undo_api, api_name="undo", concurrency_limit=8, concurrency_id="label")
    return svc.queue
