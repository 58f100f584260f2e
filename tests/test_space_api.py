"""The Space end to end: launched on loopback with a test model and driven with ``gradio_client``; plus its
back end (:class:`DetectService`) without a server, the entry point ``space/app.py`` and the deploy script.

The detection endpoint runs on a 10-minute synthetic night. With the bundled starter model (when it is
there) the inserted Powerful Owl calls must be found; the tiny random test model can only show that the
windows cover the night.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from servers import free_port

from owlfinder.detect.engine import DetectionParams, detect
from owlfinder.detect.model import BUNDLED_MODEL, load_classifier
from owlfinder.synth.nights import a2o_filename, make_night
from owlfinder.ui.config import AppConfig
from owlfinder.ui.detect_service import DetectService, ServiceError, Session

from conftest import REPO_ROOT, write_tone_file

NIGHT_S = 600.0
STARTER = (BUNDLED_MODEL / "config.json").exists()



class FakeQueue:
    """Records what the Space hands the labelling queue (the contract of LabelQueue.add_detection)."""

    def __init__(self):
        self.calls: list[dict] = []

    def add_detection(self, det, source_path, *, n_uncertain=10, display_name=None) -> int:
        # The recording must still be readable when the queue is called (it cuts clips right away).
        assert Path(source_path).is_file()
        self.calls.append(dict(file=det.file, source=str(source_path), n_uncertain=n_uncertain,
                               display_name=display_name, n_events=len(det.events), status=det.status))
        return len(det.events) + n_uncertain


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> tuple[Path, list[dict]]:
    folder = tmp_path_factory.mktemp("night")
    path = folder / a2o_filename("20210603T200000+1000", "Site-1", 11)
    truth = make_night(path, NIGHT_S, sr=16000, channels=1, backgrounds=None, seed=11, calls_per_hour=30,
                       snr_db_range=(6.0, 15.0))
    return path, truth.events


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir) -> Path:
    return BUNDLED_MODEL if STARTER else tiny_model_dir


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    """The Space on 127.0.0.1 (in-process), with OWL_MODEL set to the test model and a fake label queue."""
    from owlfinder.ui.app import build_app, launch_kwargs

    root = tmp_path_factory.mktemp("space")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OWL_MODEL", str(model_dir))
        mp.setenv("OWL_DATA_DIR", str(root / "data"))
        mp.setenv("OWL_TMP_DIR", str(root / "scratch"))
        mp.setenv("GRADIO_TEMP_DIR", str(root / "gradio"))
        mp.setenv("GRADIO_SERVER_PORT", str(free_port()))
        cfg = AppConfig.from_env()
        queue = FakeQueue()
        demo = build_app(cfg, queue, label_tab=False)
        demo.launch(**launch_kwargs(cfg), prevent_thread_lock=True, quiet=True)
        try:
            client = Client(f"http://127.0.0.1:{cfg.server_port}/", verbose=False)
            yield dict(client=client, demo=demo, cfg=cfg, queue=queue, service=demo.owl_service,
                       uploads=root / "gradio")
        finally:
            demo.close()


def _overlaps(a0, a1, b0, b1) -> bool:
    return a0 < b1 and b0 < a1


# ------------------------------------------------------------------------------------------------ API


def test_detect_on_a_synthetic_night(server, night):
    path, truth = night
    client, queue = server["client"], server["queue"]
    doc = client.predict(handle_file(str(path)), api_name="/detect")
    assert set(doc) >= {"file", "duration_s", "threshold", "windows", "events"}
    assert doc["file"] == path.name  # the upload's name, never a server path
    assert doc["recorded_at"] == "2021-06-03T20:00:00+10:00" and doc["status"] == "complete"
    assert doc["duration_s"] == pytest.approx(NIGHT_S, abs=0.01)
    assert doc["threshold"] == pytest.approx(server["service"].clf.threshold, abs=1e-6)
    wins = doc["windows"]
    assert wins[0]["start_s"] == 0 and wins[-1]["end_s"] == pytest.approx(NIGHT_S, abs=0.01)
    assert all(b["start_s"] <= a["end_s"] for a, b in zip(wins, wins[1:], strict=False))  # no gaps
    assert all(0.0 <= w["score"] <= 1.0 for w in wins)
    assert queue.calls and queue.calls[-1]["display_name"] == path.name
    assert queue.calls[-1]["n_uncertain"] == server["cfg"].n_uncertain
    if STARTER:  # the real model must find the inserted calls
        owls = [e for e in truth if e["kind"] == "owl"]
        found = [e for e in owls if any(_overlaps(e["start_s"], e["end_s"], ev["start_s"], ev["end_s"])
                                        for ev in doc["events"])]
        # Precision first: the threshold is calibrated for <= 0.5 false events per hour of unseen real audio,
        # so quiet calls may be missed, but every event the Space reports must be an owl call.
        assert len(found) >= 0.5 * len(owls), (len(found), len(owls), doc["events"])
        assert all(any(_overlaps(e["start_s"], e["end_s"], ev["start_s"], ev["end_s"]) for e in owls)
                   for ev in doc["events"]), doc["events"]


def test_bad_file_is_a_clear_error_and_the_server_keeps_serving(server, tmp_path):
    client = server["client"]
    bad = tmp_path / "field notes.txt"
    bad.write_text("Powerful Owl heard at 21:05, two hoots.\n" * 20)
    with pytest.raises(AppError) as err:
        client.predict(handle_file(str(bad)), api_name="/detect")
    msg = str(err.value)
    assert "field notes.txt" in msg and "not a recognised audio file" in msg
    assert "Traceback" not in msg and "\n" not in msg.strip() and "recording" not in msg.split(":")[0]
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AppError, match="empty.wav: empty file"):
        client.predict(handle_file(str(empty)), api_name="/detect")
    good = write_tone_file(tmp_path / "tone.flac", 12.0)
    doc = client.predict(handle_file(str(good)), api_name="/detect")
    assert doc["file"] == "tone.flac" and len(doc["windows"]) == 4


def test_threshold_argument(server, tmp_path):
    client = server["client"]
    tone = write_tone_file(tmp_path / "tone.wav", 20.0)
    low = client.predict(handle_file(str(tone)), threshold=0.0, api_name="/detect")
    assert low["threshold"] == 0.0 and len(low["events"]) == 1  # every window is an event, merged
    high = client.predict(handle_file(str(tone)), 1.0, api_name="/detect")
    assert high["threshold"] == 1.0 and high["events"] == []
    with pytest.raises(AppError, match="outside 0–1"):
        client.predict(handle_file(str(tone)), 1.5, api_name="/detect")


def test_request_paths_are_never_used_on_the_server(server, tmp_path):
    client = server["client"]
    precious = write_tone_file(tmp_path / "precious.wav", 6.0)
    with pytest.raises(AppError, match="send a file"):
        client.predict(str(precious), api_name="/detect")
    with pytest.raises(AppError):  # a file object naming a path that was never uploaded: gradio refuses it
        _raw_detect(server, {"path": str(precious), "meta": {"_type": "gradio.FileData"}})
    assert precious.is_file() and precious.stat().st_size > 0


def _raw_detect(server, payload):
    """Call /detect over plain HTTP (the client would upload a local path itself)."""
    import httpx

    base = f"http://127.0.0.1:{server['cfg'].server_port}/gradio_api/call/detect"
    event = httpx.post(base, json={"data": [payload, None]}, timeout=30).json()["event_id"]
    text = httpx.get(f"{base}/{event}", timeout=60).text
    if "event: error" in text:
        raise AppError(text.split("data:", 1)[-1].strip())
    return text


def test_temporary_files_are_removed_after_each_request(server, tmp_path):
    client = server["client"]
    tone = write_tone_file(tmp_path / "unique-name-4711.flac", 8.0)
    client.predict(handle_file(str(tone)), api_name="/detect")
    assert not list(Path(server["cfg"].tmp_dir).glob("run-*"))
    assert not list(server["uploads"].rglob("unique-name-4711*"))


def test_model_info_and_api_docs(server):
    client = server["client"]
    info = client.predict(api_name="/model_info")
    assert info["threshold"] == pytest.approx(server["service"].clf.threshold, abs=1e-6)
    assert info["hop_s"] == 2.5 and info["formats"] == ["json", "csv", "raven", "audacity"]
    assert (info["second_look_logit"], info["description_check_logit"]) == (3.0, 3.0)  # the engine's defaults
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    detect_api = api["/detect"]
    assert [p["parameter_name"] for p in detect_api["parameters"]] == ["audio", "threshold"]
    assert detect_api["parameters"][1]["parameter_has_default"]
    assert len(detect_api["returns"]) == 1
    assert "/model_info" in api and "/detect_ui" not in api  # UI events are not in the documented API


def test_readme_python_example_runs(server, night, capsys):
    """The ``## Use from Python`` example in docs/space.md (its only copy), against the test server."""
    import re

    text = (REPO_ROOT / "docs" / "space.md").read_text(encoding="utf-8")
    section = text.split("## Use from Python", 1)[1]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    assert 'Client("http://127.0.0.1:7860/")' in code and 'api_name="/detect"' in code
    code = code.replace("http://127.0.0.1:7860/", f"http://127.0.0.1:{server['cfg'].server_port}/")
    code = code.replace('"night.flac"', repr(str(night[0])))
    exec(compile(code, "space.md", "exec"), {})
    out = capsys.readouterr().out
    assert night[0].name in out and "'hop_s': 2.5" in out


# --------------------------------------------------------------------------------------------- service


@pytest.fixture(scope="module")
def tiny_clf(tiny_model_dir):
    return load_classifier(tiny_model_dir, device="cpu")


def _service(tmp_path, clf, **kw) -> DetectService:
    cfg = AppConfig(tmp_dir=tmp_path / "scratch", data_dir=tmp_path / "data", update_every_s=0.0)
    return DetectService(cfg, kw.pop("queue", None), classifier=clf, **kw)


def _upload_copy(src: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / src.name
    shutil.copyfile(src, dst)
    return dst


def test_run_streams_a_growing_timeline_then_downloads_and_events(tmp_path, tiny_clf, night):
    path, _ = night
    queue = FakeQueue()
    svc = _service(tmp_path, tiny_clf, queue=queue)
    steps = list(svc.run(None, _upload_copy(path, tmp_path / "up"), threshold=0.5))
    partial = [v for _, v in steps if not v.done]
    final_session, final = steps[-1]
    assert len(partial) >= 2  # the timeline grows while the file is scanned
    lens = [len(v.figure.data[0].y) for v in partial]
    assert lens == sorted(lens) and lens[0] < len(final.figure.data[0].y)
    assert final.done and [Path(p).name for p in final.downloads] == [
        f"{path.stem}.json", f"{path.stem}.csv", f"{path.stem}.raven.txt", f"{path.stem}.audacity.txt"]
    saved = json.loads(Path(final.downloads[0]).read_text())
    assert saved["file"] == path.name and len(saved["windows"]) == len(final_session.detection.scores)
    assert len(queue.calls) == 1 and queue.calls[0]["status"] == "complete"
    assert "queued for labelling" in final.summary


def test_scan_builds_only_the_partial_results_that_are_due(tmp_path, tiny_clf, night):
    svc = _service(tmp_path, tiny_clf)
    up = svc.open_upload(_upload_copy(night[0], tmp_path / "up"))
    assert [d.status for d in svc.scan(up, every_s=math.inf)] == ["complete"]  # the API's way
    every = list(svc.scan(up, every_s=0.0))
    assert len(every) >= 3 and every[-1].status == "complete"
    assert {d.status for d in every[:-1]} == {"running"} and every[0].file == night[0].name
    for sliced in (False, True):
        svc.sliced = sliced
        assert [d.status for d in svc.scan(up, every_s=math.inf)] == ["complete"]


def test_rethreshold_and_event_playback_without_the_model(tmp_path, tiny_clf, night, monkeypatch):
    path, _ = night
    svc = _service(tmp_path, tiny_clf)
    session, view = list(svc.run(None, _upload_copy(path, tmp_path / "up"), threshold=1.0))[-1]
    assert view.rows == []

    def no_model(*a, **k):
        raise AssertionError("the model must not run again")

    monkeypatch.setattr(tiny_clf, "predict", no_model)
    monkeypatch.setattr(tiny_clf, "score", no_model)
    median = float(np.median(session.detection.scores))
    session, view = svc.rethreshold(session, median)
    assert view.rows and session.detection.threshold == pytest.approx(median)
    assert json.loads(Path(view.downloads[0]).read_text())["threshold"] == pytest.approx(median, abs=1e-6)
    ev = svc.event(session, 1)
    first = session.detection.events[0]
    import soundfile as sf

    info = sf.info(ev.audio_path)
    want = min(first.end_s, first.start_s + svc.cfg.max_clip_s) + 3.0 - max(0.0, first.start_s - 3.0)
    assert info.duration == pytest.approx(min(want, NIGHT_S), abs=0.05) and info.samplerate == 16000
    assert Path(ev.image_path).read_bytes()[:4] == b"\x89PNG" and "Event 1" in ev.caption
    assert len(ev.figure.layout.shapes) == 1  # the chosen event is highlighted on the timeline
    with pytest.raises(ServiceError, match="no event 999"):
        svc.event(session, 999)
    folder = session.upload.dir
    session.close()
    assert not folder.exists()
    with pytest.raises(ServiceError, match="Run a detection first"):
        svc.event(Session(), 1)


def test_same_upload_can_be_run_again(tmp_path, tiny_clf):
    svc = _service(tmp_path, tiny_clf)
    (tmp_path / "up").mkdir()
    src = write_tone_file(tmp_path / "up" / "again.wav", 10.0)
    session, _ = list(svc.run(None, src))[-1]
    assert not src.exists()  # the upload was taken over
    session2, view = list(svc.run(session, src, threshold=0.2))[-1]
    assert view.done and session2.detection.threshold == 0.2 and session2.upload.path.exists()
    with pytest.raises(ServiceError, match="Choose a recording"):
        list(svc.run(session2, None))


def test_zero_gpu_slices_give_the_engines_windows(tmp_path, tiny_clf, night, monkeypatch):
    """Scanning in GPU-sized slices (as on ZeroGPU) gives the same windows and scores as one engine pass, the
    second look included, which takes a few GPU calls of at most a slice's audio each, not one per candidate."""
    from owlfinder.ui import zerogpu

    path, _ = night
    svc = _service(tmp_path, tiny_clf, sliced=True)
    object.__setattr__(svc, "cfg", AppConfig(tmp_dir=svc.cfg.tmp_dir, gpu_slice_s=60.0, update_every_s=0.0))
    up = svc.open_upload(_upload_copy(path, tmp_path / "up"))
    calls = []
    real = zerogpu.scan_ranges
    monkeypatch.setattr(zerogpu, "scan_ranges", lambda *a: calls.append((len(a[3]), a[4])) or real(*a))
    sliced = list(svc.scan(up))[-1]
    whole = detect(up.path, tiny_clf, DetectionParams(hop_s=2.5))
    assert sliced.timings_s["slices"] >= 9
    n_extra = len(whole.scores) - len(detect(up.path, tiny_clf, DetectionParams(hop_s=2.5, second_look_logit=None)).scores)
    # every window is a candidate for this random model: about the file's audio again, in slice-sized calls
    assert n_extra > 50 and len(calls) <= sliced.timings_s["slices"] + 2
    assert all(audio_s <= 60.0 + 5.0 for _, audio_s in calls)
    np.testing.assert_array_equal(sliced.starts_s, whole.starts_s)
    np.testing.assert_allclose(sliced.ends_s, whole.ends_s)
    np.testing.assert_allclose(sliced.scores, whole.scores, atol=1e-4)
    assert sliced.duration_s == pytest.approx(whole.duration_s) and sliced.status == "complete"
    # A rate the model does not use: the resampler restarts at every slice, the grid stays the engine's.
    odd = write_tone_file(tmp_path / "up" / "odd.wav", 150.0, sr=22050)
    up2 = svc.open_upload(odd)
    s2 = list(svc.scan(up2))[-1]
    w2 = detect(up2.path, tiny_clf, DetectionParams(hop_s=2.5))
    np.testing.assert_array_equal(s2.starts_s, w2.starts_s)
    np.testing.assert_allclose(s2.scores, w2.scores, atol=0.02)


def test_long_recordings_are_refused(tmp_path, tiny_clf):
    svc = _service(tmp_path, tiny_clf)
    object.__setattr__(svc, "cfg", AppConfig(tmp_dir=svc.cfg.tmp_dir, max_hours=10 / 3600))
    src = write_tone_file(tmp_path / "long.wav", 12.0)
    with pytest.raises(ServiceError, match=r"long.wav: recording is 0.0 h long; the limit is"):
        svc.open_upload(src)
    assert not list(Path(svc.cfg.tmp_dir).glob("run-*/*"))


def test_real_label_queue_gets_each_run(tmp_path, tiny_clf):
    """The contract with owlfinder.labelling.queue: a run's events and uncertain windows are queued at once."""
    from owlfinder.labelling.queue import LabelQueue

    queue = LabelQueue(tmp_path / "data")
    svc = _service(tmp_path, tiny_clf, queue=queue)
    src = write_tone_file(tmp_path / "20240101_203000.wav", 30.0)
    doc = svc.detect_json(src, "20240101_203000.wav", threshold=0.0)
    assert doc["events"] and not src.exists()
    assert sum(queue.counts().values()) >= 1


# ------------------------------------------------------------------------------------- entry, deploy


def test_space_app_py_serves_from_the_space_folder(tiny_model_dir, tmp_path):
    """``python app.py`` in space/ (as on Hugging Face) honours the environment and serves the API."""
    port = free_port()
    env = {**os.environ, "OWL_MODEL": str(tiny_model_dir), "OWL_DATA_DIR": str(tmp_path / "data"),
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "OWL_MAX_HOURS": "2",
           "OWL_LABEL_QUEUE": "0", "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    env.pop("GRADIO_ANALYTICS_ENABLED", None)  # app.py turns it off itself
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO_ROOT / "space", env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        client = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:
                time.sleep(0.5)
        assert client is not None, proc.stdout.read() if proc.poll() is not None else "server did not start"
        info = client.predict(api_name="/model_info")
        assert info["model"] == str(tiny_model_dir) and info["max_hours"] == 2.0
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _deploy_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("deploy_space", REPO_ROOT / "scripts" / "deploy_space.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class FakeHfApi:
    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder", kw["repo_id"], kw))

        class Commit:
            commit_url = f"https://huggingface.co/spaces/{kw['repo_id']}/commit/abc"

        return Commit()

    def request_space_hardware(self, repo_id, hardware):
        self.calls.append(("request_space_hardware", repo_id, {"hardware": hardware}))


def test_deploy_space_with_a_fake_hub(tmp_path, capsys, monkeypatch):
    deploy = _deploy_module()
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_never_printed")
    space = tmp_path / "space"
    (space / "owlfinder" / "__pycache__").mkdir(parents=True)
    (space / "owl_data").mkdir()
    (space / "app.py").write_text("print('hi')\n")
    (space / "README.md").write_text("---\nsdk: gradio\n---\n")
    (space / "owlfinder" / "__init__.py").write_text("")
    (space / "owlfinder" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (space / "owl_data" / "queue.sqlite3").write_bytes(b"\0")
    api = FakeHfApi()
    files = deploy.deploy("me/owl-finder", private=True, hardware="zero-a10g", api=api, folder=space)
    assert [f.as_posix() for f in files] == ["README.md", "app.py", "owlfinder/__init__.py"]
    (name, repo, kw), (name2, _, up), (name3, _, hw) = api.calls
    assert name == "create_repo" and repo == "me/owl-finder"
    assert kw == dict(repo_type="space", space_sdk="gradio", private=True, exist_ok=True)
    assert name2 == "upload_folder" and up["repo_type"] == "space" and up["folder_path"] == str(space)
    assert sorted(up["allow_patterns"]) == ["README.md", "app.py", "owlfinder/__init__.py"]
    assert name3 == "request_space_hardware" and hw == {"hardware": "zero-a10g"}
    # Dry run: lists, uploads nothing.
    api2 = FakeHfApi()
    deploy.deploy("me/owl-finder", dry_run=True, api=api2, folder=space)
    out = capsys.readouterr().out
    assert "Would upload 3 files" in out and "owlfinder/__init__.py" in out and not api2.calls
    assert "hf_secret_token_never_printed" not in out
    with pytest.raises(SystemExit, match="USER/SPACE"):
        deploy.deploy("not a repo", api=api2, folder=space)


def test_deploy_dry_run_of_the_real_space_folder(capsys):
    deploy = _deploy_module()
    assert deploy.main(["--to", "me/owl-finder", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "app.py" in out and "requirements.txt" in out and "owlfinder/ui/app.py" in out
    assert "__pycache__" not in out and ".pyc" not in out and "egg-info" not in out
