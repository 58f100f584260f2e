"""Access and secrets: the labelling gate on the server, upload names never used as paths, no file served from
outside the app's own folders, and the Hub token never in a log, a file or a response.

One ``python space/app.py`` on loopback with the gate on (``OWL_LABELLERS`` and ``OWL_LABEL_TOKEN``), and
``HF_TOKEN`` + ``OWL_DATASET`` pointing at a fake Hub on loopback (``HF_ENDPOINT``) that fails every call with a
500 whose body repeats the Authorization header it got: the pushes fail, are retried and logged, which is what
exercises the redaction. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from gradio_client.exceptions import AppError
from servers import SpaceProcess

from conftest import REPO_ROOT, write_tone_file

pytestmark = pytest.mark.slow

HF_TOKEN = "hf_TESTSECRETq7Zk2mVx9Lw4Rt8Yp3Nc6Bd1"
KEY = "label-key-" + uuid.uuid4().hex[:8]
GATED = ("/queue", "/next", "/label", "/skip", "/undo")


class FakeHub(BaseHTTPRequestHandler):
    """Every request fails with a 500 echoing the credentials it was sent (as careless servers do)."""

    seen: list[tuple[str, str, str]] = []

    def _fail(self) -> None:
        auth = self.headers.get("authorization", "")
        FakeHub.seen.append((self.command, self.path, auth))
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(min(length, 10_000_000))
        body = json.dumps({"error": f"internal error for {auth} on {self.path}"}).encode()
        self.send_response(500)
        self.send_header("content-type", "application/json")
        self.send_header("x-error-message", f"rejected {auth}")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _fail  # noqa: N815

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture(scope="module")
def fake_hub():
    FakeHub.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_model_dir, fake_hub):
    tmp = tmp_path_factory.mktemp("access")
    # The Hub "online" (HF_ENDPOINT is the fake Hub on loopback), nothing inherited from the shell's HF_/OWL_.
    proc = SpaceProcess(tmp, tiny_model_dir, strip_env=True, offline=False, GRADIO_TEMP_DIR=str(tmp / "gradio"), HF_HOME=str(tmp / "hf-home"),
                       HF_TOKEN=HF_TOKEN, OWL_DATASET="someone/ds", OWL_SYNC_EVERY_S="1", HF_HUB_OFFLINE="0",
                       HF_ENDPOINT=fake_hub, OWL_LABELLERS="ann,org:owl-lab", OWL_LABEL_TOKEN=KEY)
    responses: list[str] = []  # every response body the tests saw, searched for the token at the end
    try:
        yield dict(proc=proc, tmp=tmp, url=proc.url, responses=responses)
    finally:
        proc.stop()


def keyed(app):
    return app["proc"].client(headers={"X-Owl-Label-Token": KEY})


def raw_call(app, endpoint: str, data: list, headers: dict | None = None) -> tuple[bool, object]:
    """Call a named endpoint over plain HTTP: ``(ok, output or error message)``."""
    base = f"{app['url']}gradio_api/call/{endpoint}"
    r = httpx.post(base, json={"data": data}, headers=headers or {}, timeout=30)
    app["responses"].append(r.text)
    event = r.json()["event_id"]
    text = httpx.get(f"{base}/{event}", headers=headers or {}, timeout=60).text
    app["responses"].append(text)
    payload = text.rsplit("data:", 1)[-1].strip()
    if "event: error" in text:
        return False, payload
    out = json.loads(payload)
    return True, out[0] if isinstance(out, list) and len(out) == 1 else out


def upload(app, name: str, data: bytes) -> str:
    r = httpx.post(app["url"] + "gradio_api/upload", files={"files": (name, data)}, timeout=30)
    app["responses"].append(r.text)
    assert r.status_code == 200, r.text
    (path,) = r.json()
    return path


@pytest.fixture(scope="module")
def clips(app, tmp_path_factory):
    """A detection at threshold 0 fills the labelling queue; returns its clip ids."""
    rec = write_tone_file(tmp_path_factory.mktemp("rec") / "20240107_210000.wav", 20.0)
    ok, doc = raw_call(app, "detect", [{"path": upload(app, rec.name, rec.read_bytes()),
                                         "orig_name": rec.name, "meta": {"_type": "gradio.FileData"}}, 0.0])
    assert ok and doc["events"], doc
    ok, out = raw_call(app, "queue", [100], headers={"X-Owl-Label-Token": KEY})
    assert ok, out
    return [c["clip_id"] for c in out["clips"]]


# ------------------------------------------------------------------------------------------------ the gate


def test_labelling_endpoints_refuse_unauthenticated_calls(app, clips):
    from owlfinder.data.store import DatasetStore

    anon = app["proc"].client()
    wrong = app["proc"].client(headers={"X-Owl-Label-Token": "not-the-key"})
    calls = {"/queue": (), "/next": ("mallory",), "/label": (clips[0], "owl", "", "mallory"),
             "/skip": (clips[0], "mallory"), "/undo": ("mallory",)}
    assert set(calls) == set(GATED)
    for client in (anon, wrong):
        for endpoint, args in calls.items():
            with pytest.raises(AppError, match="labelling needs") as err:
                client.predict(*args, api_name=endpoint)
            app["responses"].append(str(err.value))
    # An API client claiming a Hugging Face identity (gradio_client's oauth_token=, which reaches the gate)
    # needs a token the Hub vouches for: this fake Hub fails every call, so it is refused too. A bare
    # Authorization header is not a credential the gate reads at all.
    with pytest.raises(AppError, match="could not be verified"):
        app["proc"].client(oauth_token="hf_someoneelse1234567890").predict("mallory", api_name="/next")
    with pytest.raises(AppError, match="labelling needs"):
        app["proc"].client(headers={"Authorization": "Bearer hf_someoneelse1234567890"}).predict(
            "mallory", api_name="/next")
    assert not (app["tmp"] / "data" / "dataset" / "data").exists() or not DatasetStore.open(
        app["tmp"] / "data" / "dataset").shards()  # nothing was written
    # With the key, the same calls work.
    ok = keyed(app)
    clip = ok.predict("ann", api_name="/next")["clip"]
    ack = ok.predict(clip["clip_id"], "not_owl", "wind/rain", "ann", api_name="/label")
    assert ack["stored"] and ack["labeller"] == "ann"
    app["responses"].append(json.dumps(ack))


def _config(app) -> dict:
    r = httpx.get(app["url"] + "config", timeout=30)
    app["responses"].append(r.text)
    return r.json()


def test_the_pages_own_label_events_are_gated_on_the_server(app, clips):
    """The page's buttons are private events (not in the API), but anyone can post them by fn_index, as the
    browser does: the gate is checked inside them too."""
    cfg = _config(app)
    ids = {c.get("props", {}).get("elem_id"): c["id"] for c in cfg["components"]}
    targets = {ids[e] for e in ("owl-btn-owl", "owl-btn-not", "owl-btn-skip", "owl-btn-undo") if e in ids}
    deps = [d for d in cfg["dependencies"] if d.get("backend_fn") and {t[0] for t in d["targets"]} & targets]
    assert len(deps) == 4, deps
    for dep in deps:
        session = uuid.uuid4().hex
        body = {"data": [None, "mallory", "not-the-key"], "fn_index": dep["id"], "session_hash": session,
                "event_data": None, "trigger_id": dep["targets"][0][0]}
        r = httpx.post(app["url"] + "gradio_api/queue/join", json=body, timeout=30)
        assert r.status_code == 200, r.text
        messages = []
        with httpx.stream("GET", app["url"] + "gradio_api/queue/data", params={"session_hash": session},
                          timeout=60) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    msg = json.loads(line[5:])
                    messages.append(msg)
                    if msg.get("msg") in ("process_completed", "close_stream"):
                        break
        app["responses"].append(json.dumps(messages))
        done = [m for m in messages if m.get("msg") == "process_completed"]
        assert done and done[0]["success"] is False, messages
        assert "labelling needs" in json.dumps(done[0]["output"]), done[0]
    queue = keyed(app).predict(api_name="/queue")
    assert queue["labelled"] == 1  # only the keyed verdict of the test before


# ------------------------------------------------------------------------------------------- upload names


def test_uploaded_names_are_never_used_as_paths(app, tmp_path):
    tone = write_tone_file(tmp_path / "tone.wav", 6.0).read_bytes()
    tag = uuid.uuid4().hex[:8]
    hostile_names = [f"../../../escape-{tag}.wav", f"..\\..\\escape2-{tag}.wav", f"/etc/passwd-{tag}.wav",
                     f"a/b/../../../../tmp/escape3-{tag}.wav"]
    for name in hostile_names:
        server_path = upload(app, name, tone)
        gradio_dir = (app["tmp"] / "gradio").resolve()
        assert gradio_dir in Path(server_path).resolve().parents  # gradio kept it inside its cache
        ok, doc = raw_call(app, "detect", [{"path": server_path, "orig_name": name,
                                             "meta": {"_type": "gradio.FileData"}}, None])
        assert ok, doc
        shown = name.replace("\\", "/").rsplit("/", 1)[-1]
        assert doc["file"] == shown  # the name is shown, bare
    # A file object naming an orig_name with separators and a path outside the upload folder is refused.
    ok, err = raw_call(app, "detect", [{"path": str(REPO_ROOT / "space" / "app.py"), "orig_name": "x.wav",
                                         "meta": {"_type": "gradio.FileData"}}, None])
    assert not ok
    # Nothing named like the uploads was written anywhere but inside the app's own folders: not in any
    # folder above them (where "../" would lead), not in the repository, /tmp or /etc.
    app_dirs = [(app["tmp"] / d).resolve() for d in ("gradio", "scratch", "data")]
    found = list(app["tmp"].parent.rglob(f"*{tag}*"))
    for folder in [*app["tmp"].resolve().parents, REPO_ROOT, REPO_ROOT / "space", Path("/etc"), Path("/tmp")]:
        found += folder.glob(f"*{tag}*")
    for p in found:
        assert any(d in p.resolve().parents for d in app_dirs), p
    sources = {c["source"] for c in keyed(app).predict(api_name="/queue")["clips"]}
    assert all("/" not in s and "\\" not in s for s in sources), sources


# -------------------------------------------------------------------------------------------- file routes


def test_no_route_serves_files_outside_the_apps_own(app, tiny_model_dir):
    data = app["tmp"] / "data"
    sentinel_scratch = app["tmp"] / "scratch" / "sentinel.txt"
    sentinel_scratch.write_text("scratch")
    targets = [Path("/etc/passwd"), REPO_ROOT / "space" / "app.py", REPO_ROOT / "pyproject.toml",
               tiny_model_dir / "config.json", data / "queue" / "queue.sqlite3", sentinel_scratch,
               app["tmp"] / f"app-{app['proc'].port}.log"]
    targets += sorted((data / "dataset" / "data").glob("*.parquet"))[:1]
    targets += sorted((data / "queue" / "clips").glob("*.flac"))[:1]
    gradio_dir = (app["tmp"] / "gradio").resolve()  # the folder gradio does serve (uploads, outputs)
    up = "%2e%2e/" * len(gradio_dir.parts)
    for target in targets:
        assert target.exists(), target
        urls = [f"gradio_api/file={target}", f"file={target}", f"gradio_api/file={gradio_dir}/{up}{str(target)[1:]}",
                f"gradio_api/file={str(target).replace('/', '%2F')}", f"gradio_api/file=..{target}"]
        for url in urls:
            r = httpx.get(app["url"] + url, timeout=30)
            app["responses"].append(r.text[:2000])
            assert r.status_code in (400, 403, 404), (url, r.status_code)


# ------------------------------------------------------------------------------------------------ token


def test_the_hub_token_never_appears_anywhere(app, clips, fake_hub):
    # The app talks to the (fake) Hub with the token, and its pushes fail and are retried and logged.
    deadline = time.monotonic() + 60
    log = Path(app["proc"].log.name)
    while time.monotonic() < deadline:
        if len(FakeHub.seen) >= 3 and "Hub sync failed" in log.read_text(errors="replace"):
            break
        time.sleep(0.5)
    # Every call but the gate's whoami (about the API caller's own token) carries the Space's token.
    pushes = [(m, p, auth) for m, p, auth in FakeHub.seen if not p.startswith("/api/whoami")]
    assert pushes and all(auth == f"Bearer {HF_TOKEN}" for _, _, auth in pushes), pushes[:3]
    text = log.read_text(errors="replace")
    assert "Hub sync failed" in text and "retry" in text  # the failures were logged...
    assert "***" in text  # ...with the echoed credentials masked
    # The page's status line reports the failure, token-free (the Label tab's markdown in the config).
    pages = [httpx.get(app["url"], timeout=30).text, json.dumps(_config(app)),
             httpx.get(app["url"] + "gradio_api/info", timeout=30).text]
    app["responses"].extend(pages)
    app["proc"].stop()  # flushes the log; the search below covers everything it wrote
    text = log.read_text(errors="replace")
    secret_parts = (HF_TOKEN, HF_TOKEN[3:], HF_TOKEN[-12:])
    for part in secret_parts:
        assert part not in text, f"token in the app's log: {text[text.find(part) - 200:text.find(part) + 50]}"
        for body in app["responses"]:
            assert part not in body, body[:500]
    searched = 0
    for root in (app["tmp"] / "data", app["tmp"] / "scratch", app["tmp"] / "gradio", app["tmp"] / "hf-home"):
        for p in (root.rglob("*") if root.exists() else []):
            if p.is_file():
                searched += 1
                blob = p.read_bytes()
                assert not any(part.encode() in blob for part in secret_parts), p
    assert searched > 5


def test_the_label_tabs_status_line_shows_no_path_and_no_token(tmp_path, monkeypatch):
    """The status line under the Label tab (shown to every visitor): where verdicts go, and why a push
    failed, without the server's folders or the token."""
    from owlfinder.data.hubsync import HubSyncError
    from owlfinder.labelling.queue import LabelQueue, hub_sync_from_env
    from owlfinder.ui.label_service import sync_markdown as _sync_markdown

    class LeakyApi:
        def __getattr__(self, name):
            def fail(*args, **kwargs):
                raise OSError(f"{name} refused Bearer {HF_TOKEN} while reading {tmp_path}/data/dataset/x.parquet")
            return fail

    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
    queue = LabelQueue(tmp_path / "data")
    local = _sync_markdown(queue)
    assert str(tmp_path) not in local and "/" not in local.replace("`dataset`", "")
    sync = hub_sync_from_env(queue, {"OWL_DATASET": "someone/ds", "HF_TOKEN": HF_TOKEN}, api=LeakyApi(),
                             start=False)
    sync.hub.retries = 1
    with pytest.raises(HubSyncError):
        sync.sync_once()
    shown = _sync_markdown(queue)
    assert "will retry" in shown and "someone/ds" in shown
    assert HF_TOKEN not in shown and HF_TOKEN[3:] not in shown and str(tmp_path) not in shown, shown
