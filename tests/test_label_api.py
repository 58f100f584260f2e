"""The labelling API end to end: ``python space/app.py`` on loopback with a tiny model, via gradio_client.

Detect (threshold 0, so the whole tone file is one event), list the queue, label, SIGKILL the server, restart
it with the gate configured: every acknowledged label is in the store once and not offered again, the gate
refuses unauthenticated calls, and two concurrent labellers never receive the same clip.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from servers import SpaceProcess

from owlfinder.labelling.queue import LabelQueue

from conftest import write_tone_file

pytestmark = pytest.mark.slow

SECRET = "test-label-key-123"


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
