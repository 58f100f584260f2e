"""The labelling API end to end: ``python space/app.py`` on loopback with a tiny model, via gradio_client.

Detect (threshold 0, so the whole tone file is one event), list the queue, label, SIGKILL the server, restart
it with the gate configured: every acknowledged label is in the store once and not offered again, the gate
refuses unauthenticated calls, and two concurrent labellers never receive the same clip.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from owlfinder.labelling.queue import LabelQueue

from conftest import REPO_ROOT, write_tone_file

pytestmark = pytest.mark.slow

SECRET = "test-label-key-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SpaceProcess:
    """``python space/app.py`` in a subprocess, on a loopback port."""

    def __init__(self, tmp: Path, model: Path, **extra_env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {k: v for k, v in os.environ.items()
               if k not in ("HF_TOKEN", "OWL_DATASET", "OWL_LABELLERS", "OWL_LABEL_TOKEN", "SPACE_ID")}
        env.update(GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(self.port),
                   GRADIO_ANALYTICS_ENABLED="False", OWL_MODEL=str(model), OWL_DATA_DIR=str(tmp / "data"),
                   OWL_TMP_DIR=str(tmp / "scratch"),
                   HF_HUB_OFFLINE="1", OWL_DEVICE="cpu", **extra_env)
        self.log = open(tmp / f"app-{self.port}.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "space/app.py"], cwd=REPO_ROOT, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                tail = Path(self.log.name).read_text()[-3000:]
                raise RuntimeError(f"the app exited ({self.proc.returncode}): {tail}")
            try:
                with urllib.request.urlopen(self.url + "gradio_api/info", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError("the app did not start in 120 s")

    def client(self, **kw):
        from gradio_client import Client

        return Client(self.url, verbose=False, download_files=False, **kw)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def store_rows(data_dir: Path) -> list[dict]:
    q = LabelQueue(data_dir)
    try:
        return list(q.store.load(resolve=False).remove_columns("audio"))
    finally:
        q.close()


def test_label_api_survives_sigkill_gates_and_leases(tmp_path, tiny_model_dir):
    from gradio_client.exceptions import AppError

    rec = write_tone_file(tmp_path / "20240102_210000.wav", 30.0)
    app = SpaceProcess(tmp_path, tiny_model_dir)
    try:
        c = app.client()
        doc = c.predict(handle_file(rec), 0.0, api_name="/detect")
        assert doc["events"] and doc["threshold"] == 0.0
        waiting = c.predict(api_name="/queue")["clips"]
        assert len(waiting) == 6  # the 30 s event as six 5 s clips
        assert set(waiting[0]) == {"clip_id", "source", "start_s", "end_s", "score"}
        assert waiting[0]["source"] == "20240102_210000.wav"

        with pytest.raises(AppError, match="unknown clip_id"):
            c.predict("0123456789abcdef", "owl", api_name="/label")
        with pytest.raises(AppError, match="label must be one of"):
            c.predict(waiting[0]["clip_id"], "maybe", api_name="/label")

        acked = []
        for verdict, reason in [("owl", ""), ("not_owl", "koala"), ("unsure", "")]:
            clip = c.predict("ann", api_name="/next")["clip"]
            ack = c.predict(clip["clip_id"], verdict, reason, "ann", api_name="/label")
            assert ack["stored"] is True and ack["clip_id"] == clip["clip_id"] and ack["verdict"] == verdict
            assert (tmp_path / "data" / "dataset" / ack["shard"]).is_file()  # durable before the reply
            acked.append(ack["clip_id"])
    finally:
        app.kill()  # SIGKILL right after the last acknowledgement

    rows = store_rows(tmp_path / "data")
    assert sorted(r["clip_id"] for r in rows) == sorted(acked)

    # Restart with the gate on: an allowlist (for Hub logins) and the shared key.
    app = SpaceProcess(tmp_path, tiny_model_dir, OWL_LABELLERS="ann,org:owl-lab", OWL_LABEL_TOKEN=SECRET)
    try:
        anon = app.client()
        with pytest.raises(AppError, match="labelling needs"):
            anon.predict(waiting[3]["clip_id"], "owl", "", "mallory", api_name="/label")
        with pytest.raises(AppError, match="labelling needs"):
            anon.predict(api_name="/queue")
        with pytest.raises(AppError, match="labelling needs"):
            app.client(headers={"X-Owl-Label-Token": "wrong"}).predict("mallory", api_name="/next")

        keyed = app.client(headers={"X-Owl-Label-Token": SECRET})
        left = keyed.predict(api_name="/queue")["clips"]
        assert len(left) == 3 and not {x["clip_id"] for x in left} & set(acked)  # not offered again

        got: dict[str, list[str]] = {"bob": [], "cy": []}
        errors: list[BaseException] = []
        start = threading.Barrier(2)

        def labeller(name: str) -> None:
            try:
                client = app.client(headers={"X-Owl-Label-Token": SECRET})
                start.wait()
                while (clip := client.predict(name, api_name="/next")["clip"]) is not None:
                    got[name].append(clip["clip_id"])
                    ack = client.predict(clip["clip_id"], "not_owl", "wind/rain", name, api_name="/label")
                    assert ack["stored"] and ack["labeller"] == name
            except BaseException as err:  # surfaced below
                errors.append(err)

        threads = [threading.Thread(target=labeller, args=(n,)) for n in got]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        assert not set(got["bob"]) & set(got["cy"])  # never the same clip
        assert sorted(got["bob"] + got["cy"]) == sorted(x["clip_id"] for x in left)
        assert keyed.predict(api_name="/queue") == {"clips": [], "labelled": 6, "remaining": 0}
    finally:
        app.kill()

    rows = store_rows(tmp_path / "data")
    ids = [r["clip_id"] for r in rows]
    assert len(ids) == len(set(ids)) == 6  # every verdict once
    by_id = {r["clip_id"]: r for r in rows}
    assert [by_id[i]["labeller"] for i in acked] == ["ann"] * 3
    assert by_id[acked[1]]["reason"] == "koala" and by_id[acked[2]]["label"] == -1
    assert {r["labeller"] for r in rows} - {"ann"} <= {"bob", "cy"}
    assert all(r["model"] == str(tiny_model_dir) and r["labelled_at"].endswith("Z") for r in rows)


def handle_file(path: Path):
    from gradio_client import handle_file as hf

    return hf(str(path))
