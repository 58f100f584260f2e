"""A gated labelling call from gradio_client really authenticates: the credential reaches the gate.

``python space/app.py`` on loopback with ``OWL_LABELLERS=ann`` and ``OWL_LABEL_TOKEN``, and ``HF_ENDPOINT``
pointing at a fake Hub on loopback whose ``/api/whoami-v2`` vouches for one token only. Each way in is
checked both ways: the right Hugging Face token (``Client(..., oauth_token=...)``) or key
(``Client(..., headers={"X-Owl-Label-Token": ...})``) labels, under the verified name, and the fake Hub saw
exactly that token; a wrong one is refused. The example in ``docs/integrity.md`` is run as written.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from gradio_client.exceptions import AppError
from servers import SpaceProcess
from test_labelling import SOURCE, make_detection

from owlfinder.labelling.queue import LabelQueue

from conftest import REPO_ROOT, write_tone_file

pytestmark = pytest.mark.slow

ANN = "hf_ann" + uuid.uuid4().hex[:24]  # on the labeller list
ZED = "hf_zed" + uuid.uuid4().hex[:24]  # a real Hugging Face user, but not on the list
KEY = "key-" + uuid.uuid4().hex[:12]
USERS = {ANN: "ann", ZED: "zed"}


class WhoamiHub(BaseHTTPRequestHandler):
    """``/api/whoami-v2`` answers for the tokens in USERS and 401s everything else; records what it got."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        token = self.headers.get("authorization", "").removeprefix("Bearer ").strip()
        WhoamiHub.seen.append(token)
        name = USERS.get(token) if self.path.startswith("/api/whoami-v2") else None
        body = json.dumps({"name": name, "type": "user", "orgs": []} if name else
                          {"error": "Invalid credentials in Authorization header"}).encode()
        self.send_response(200 if name else 401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def space(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("gate")
    rec = write_tone_file(tmp / "20240101_200000.wav", 60.0)
    q = LabelQueue(tmp / "data")
    assert q.add_detection(make_detection(rec), rec, n_uncertain=4, display_name=SOURCE) == 5
    q.close()
    WhoamiHub.seen = []
    hub = ThreadingHTTPServer(("127.0.0.1", 0), WhoamiHub)
    threading.Thread(target=hub.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    # HF_HUB_OFFLINE=0 explicitly: conftest sets TRANSFORMERS_OFFLINE, which huggingface_hub also obeys.
    app = SpaceProcess(tmp, tiny_model_dir, strip_env=True, offline=False, HF_HUB_OFFLINE="0",
                       HF_ENDPOINT=f"http://127.0.0.1:{hub.server_address[1]}", OWL_LABELLERS="ann",
                       OWL_LABEL_TOKEN=KEY)
    try:
        yield app
    finally:
        app.stop()
        hub.shutdown()
        hub.server_close()


def test_an_hf_token_from_gradio_client_reaches_the_gate(space):
    WhoamiHub.seen.clear()
    ann = space.client(oauth_token=ANN)
    clip = ann.predict("mallory", api_name="/next")["clip"]
    ack = ann.predict(clip["clip_id"], "owl", "", "mallory", api_name="/label")
    assert ack["stored"] and ack["labeller"] == "ann"  # the name the Hub vouched for, not the typed one
    assert set(WhoamiHub.seen) == {ANN}  # the gate asked the Hub about exactly this token
    with pytest.raises(AppError, match="could not be verified"):
        space.client(oauth_token="hf_" + "x" * 30).predict("mallory", api_name="/next")
    with pytest.raises(AppError, match="zed is not on this Space's labeller list"):
        space.client(oauth_token=ZED).predict("zed", api_name="/next")
    with pytest.raises(AppError, match="labelling needs"):
        space.client().predict("mallory", api_name="/next")  # nothing sent: refused


def test_the_key_header_from_gradio_client_reaches_the_gate(space):
    keyed = space.client(headers={"X-Owl-Label-Token": KEY})
    clip = keyed.predict("bob", api_name="/next")["clip"]
    assert keyed.predict(clip["clip_id"], "not_owl", "koala", "bob", api_name="/label")["labeller"] == "bob"
    for wrong in (KEY + "x", KEY[:-1], ""):
        with pytest.raises(AppError, match="labelling needs"):
            space.client(headers={"X-Owl-Label-Token": wrong}).predict("bob", api_name="/next")


def test_the_docs_example_runs_as_written(space):
    text = (REPO_ROOT / "docs" / "integrity.md").read_text(encoding="utf-8")
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    code = re.sub(r'^SPACE = .*$', f'SPACE = "{space.url}"', code, count=1, flags=re.M)
    code = re.sub(r'^HF_TOKEN = .*$', f'HF_TOKEN = "{ANN}"', code, count=1, flags=re.M)
    scope: dict = {}
    exec(compile(code, "docs/integrity.md", "exec"), scope)  # noqa: S102 - our own docs
    assert scope["ack"]["stored"] and scope["ack"]["labeller"] == "ann"
