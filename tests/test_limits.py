"""The Space's limits, each configurable, each answered with a clear message instead of a hang or a crash.

- ``OWL_MAX_UPLOAD``: gradio refuses a larger upload (client and server), and the service checks again;
- ``OWL_MAX_HOURS``: a longer recording is refused from its header, before any decoding;
- ``OWL_MAX_REQUEST_S``: a detection running longer is stopped between batches ("took longer than N s");
- ``OWL_QUEUE_SIZE``: requests beyond the queue get gradio's "Queue is full" at once, not a hang;
- temporary files: every API request, good or failed, leaves nothing in ``OWL_TMP_DIR`` or gradio's upload
  folder, and a failed page run leaves no scratch folder behind.

One Space in-process on loopback: the tiny model, slowed to 0.4 s per batch of 2 windows so that scans take
seconds, ``OWL_QUEUE_SIZE=1`` and ``OWL_CONCURRENCY=1``.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from servers import free_port

from owlfinder.ui.config import ENV_VARS, AppConfig, ConfigError
from owlfinder.ui.detect_service import ServiceError

from conftest import write_tone_file

BATCH_S = 0.4  # seconds the slowed model takes per batch (2 windows)
MAX_HOURS = 0.01  # 36 s
MAX_UPLOAD = 2_000_000



@pytest.fixture(scope="module")
def space(tiny_model_dir, tmp_path_factory):
    from owlfinder.ui.app import build_app, launch_kwargs

    root = tmp_path_factory.mktemp("space-limits")
    env = dict(OWL_MODEL=str(tiny_model_dir), OWL_DATA_DIR=str(root / "data"), OWL_TMP_DIR=str(root / "scratch"),
               OWL_MAX_UPLOAD="2mb", OWL_MAX_HOURS=str(MAX_HOURS), OWL_MAX_REQUEST_S="1.5",
               OWL_QUEUE_SIZE="1", OWL_CONCURRENCY="1", OWL_BATCH_SIZE="2", OWL_DEVICE="cpu",
               OWL_LABEL_QUEUE="0", GRADIO_SERVER_PORT=str(free_port()))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(root / "gradio"))
        for k, v in env.items():
            mp.setenv(k, v)
        cfg = AppConfig.from_env()
        assert cfg.max_request_s == 1.5 and cfg.queue_size == 1 and cfg.max_upload_bytes == MAX_UPLOAD
        demo = build_app(cfg, None)
        service = demo.owl_service
        predict = service.clf.predict

        def slow_predict(inputs):
            time.sleep(BATCH_S)
            return predict(inputs)

        object.__setattr__(service.clf, "predict", slow_predict)
        service.recent_s = 1.0  # taken uploads stay findable for 1 s (default 15 s), see the last test
        demo.launch(**launch_kwargs(cfg), prevent_thread_lock=True, quiet=True)
        try:
            url = f"http://127.0.0.1:{cfg.server_port}/"
            yield dict(url=url, client=Client(url, verbose=False), cfg=cfg, root=root, service=service,
                       uploads=root / "gradio", scratch=Path(cfg.tmp_dir))
        finally:
            demo.close()


@pytest.fixture
def time_limit(space):
    """Set the service's per-request limit for one test (``None``: leave it); restored afterwards."""
    service = space["service"]
    original = service.cfg

    def set_limit(seconds: float) -> None:
        service.cfg = dataclasses.replace(original, max_request_s=seconds)

    yield set_limit
    service.cfg = original


def files_under(*folders: Path) -> set[Path]:
    """The files under ``folders`` now. The Space removes expired folders while this walks, so a folder that goes
    between listing and reading is skipped (``os.walk`` ignores it; ``rglob`` raised FileNotFoundError)."""
    return {Path(root) / name for d in folders for root, _, names in os.walk(d) for name in names}


def tmp_files(space) -> set[Path]:
    """Uploads and scratch files, but not the hard links under scratch/recent (expiring by themselves)."""
    recent = space["scratch"] / "recent"
    return {p for p in files_under(space["uploads"], space["scratch"]) if recent not in p.parents}


# ------------------------------------------------------------------------------------------ settings


def test_the_limits_are_settings_with_clear_errors():
    cfg = AppConfig.from_env({"OWL_MAX_UPLOAD": "500mb", "OWL_MAX_HOURS": "2", "OWL_MAX_REQUEST_S": "600",
                              "OWL_QUEUE_SIZE": "3"})
    assert (cfg.max_upload_bytes, cfg.max_hours, cfg.max_request_s, cfg.queue_size) == (500e6, 2.0, 600.0, 3)
    assert AppConfig.from_env({}).max_request_s == 0  # no time limit unless one is set
    for var, bad in [("OWL_MAX_UPLOAD", "lots"), ("OWL_MAX_HOURS", "0"), ("OWL_MAX_REQUEST_S", "-1"),
                     ("OWL_MAX_REQUEST_S", "soon"), ("OWL_QUEUE_SIZE", "0")]:
        with pytest.raises(ConfigError, match=var):
            AppConfig.from_env({var: bad})
    for var in ("OWL_MAX_UPLOAD", "OWL_MAX_HOURS", "OWL_MAX_REQUEST_S", "OWL_QUEUE_SIZE", "OWL_TMP_DIR"):
        assert var in ENV_VARS


def test_the_page_states_the_limits(space):
    config = httpx.get(space["url"] + "config", timeout=30).text
    assert f"up to {MAX_HOURS:g} h and 2 MB" in config


# -------------------------------------------------------------------------------------- size, duration


def test_max_upload_is_enforced_by_gradio_and_by_the_service(space, tmp_path):
    big = write_tone_file(tmp_path / "big.wav", 40.0, sr=32000)  # 2.6 MB
    assert big.stat().st_size > MAX_UPLOAD
    before = tmp_files(space)
    with pytest.raises(ValueError, match=rf"exceeds the maximum file size of {MAX_UPLOAD} bytes"):
        space["client"].predict(handle_file(str(big)), api_name="/detect")
    with big.open("rb") as f:
        r = httpx.post(space["url"] + "gradio_api/upload", files={"files": ("big.wav", f)}, timeout=60)
    assert r.status_code == 413 and f"exceeded maximum allowed size of {MAX_UPLOAD} bytes" in r.text
    assert tmp_files(space) <= before  # the refused upload left nothing
    # The service refuses it too (a file that reached it some other way), naming the file and the limit.
    service = space["service"]
    inbox = Path(service.upload_root) / "limits-test"
    inbox.mkdir(parents=True, exist_ok=True)
    dropped = inbox / "big.wav"
    dropped.write_bytes(big.read_bytes())
    with pytest.raises(ServiceError, match=r"^big\.wav: the file is 2\.\d+ MB; the upload limit is 2 MB$"):
        service.detect_json(dropped, "big.wav")
    assert not dropped.exists() and tmp_files(space) <= before


def test_max_hours_refuses_from_the_header(space, tmp_path):
    long = write_tone_file(tmp_path / "forty-seconds.wav", 40.0, sr=8000)
    before = tmp_files(space)
    t = time.monotonic()
    with pytest.raises(AppError) as err:
        space["client"].predict(handle_file(str(long)), api_name="/detect")
    assert time.monotonic() - t < 5  # refused before the (slow) model saw anything
    assert str(err.value) == f"forty-seconds.wav: recording is 0.0 h long; the limit is {MAX_HOURS:g} h"
    assert tmp_files(space) <= before


# ------------------------------------------------------------------------------------------- time limit


def test_a_detection_past_the_time_limit_stops_with_a_clear_error(space, tmp_path, time_limit):
    time_limit(1.5)
    slow = write_tone_file(tmp_path / "slow.wav", 34.0)  # 12 windows: 6 batches of 0.4 s
    before = tmp_files(space)
    t = time.monotonic()
    with pytest.raises(AppError) as err:
        space["client"].predict(handle_file(str(slow)), api_name="/detect")
    took = time.monotonic() - t
    msg = str(err.value)
    assert msg.startswith("slow.wav: detection took longer than 1.5 s (the limit per request; "), msg
    assert "of 00:00:34 scanned), so it was stopped; try a shorter recording" in msg and "\n" not in msg
    assert took < 1.5 + 3 * BATCH_S + 3, took  # stopped between batches, not at the end
    assert tmp_files(space) <= before  # the upload and its scratch copy are gone after the error
    # The page's run stops the same way and keeps no scratch folder for the failed run.
    scratch_before = set(space["scratch"].glob("run-*"))
    with pytest.raises(AppError, match=r"^slow\.wav: detection took longer than 1\.5 s"):
        space["client"].predict(handle_file(str(slow)), 0.5, api_name="/detect_ui")
    assert set(space["scratch"].glob("run-*")) <= scratch_before
    # A short file still fits in the limit.
    short = write_tone_file(tmp_path / "short.wav", 6.0)
    assert len(space["client"].predict(handle_file(str(short)), api_name="/detect")["windows"]) == 2


# ------------------------------------------------------------------------------------------------ queue


def test_a_full_queue_answers_at_once_and_the_server_recovers(space, tmp_path, time_limit):
    time_limit(0)  # no time limit: each of these scans takes about 2.5 s
    recs = [write_tone_file(tmp_path / f"queue-{i}.wav", 15.0, seed=i) for i in range(5)]
    outcomes: dict[int, tuple[str, float]] = {}
    start = threading.Barrier(len(recs))

    def call(i: int) -> None:
        client = Client(space["url"], verbose=False)
        start.wait(timeout=60)
        t = time.monotonic()
        try:
            doc = client.predict(handle_file(str(recs[i])), api_name="/detect")
            outcomes[i] = ("ok" if doc["file"] == recs[i].name else f"wrong file {doc['file']}",
                           time.monotonic() - t)
        except Exception as err:  # noqa: BLE001 - classified below
            outcomes[i] = (f"{type(err).__name__}: {err}", time.monotonic() - t)

    threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(len(recs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=90)
    assert not any(th.is_alive() for th in threads), outcomes  # nothing hangs
    ok = [i for i, (o, _) in outcomes.items() if o == "ok"]
    busy = [i for i, (o, _) in outcomes.items() if o.startswith("QueueError: Queue is full")]
    assert sorted(ok + busy) == list(range(len(recs))), outcomes  # each one: a result or "Queue is full"
    assert len(ok) >= 1 and len(busy) >= 1, outcomes  # one runs, at most one waits, the rest are refused
    assert all(outcomes[i][1] < 10 for i in busy), outcomes  # refused at once, not after a wait
    # The server goes on: the refused recordings can be sent again one at a time.
    for i in busy[:2]:
        assert space["client"].predict(handle_file(str(recs[i])), api_name="/detect")["file"] == recs[i].name
    assert not list(space["scratch"].glob("run-*"))


# -------------------------------------------------------------------------------------------- temp files


def test_every_api_request_cleans_up_after_itself_errors_included(space, tmp_path, time_limit):
    time_limit(0)
    good = write_tone_file(tmp_path / "fine.flac", 6.0)
    notes = tmp_path / "notes.wav"
    notes.write_text("not audio\n")
    cases = [("good", good, None), ("not audio", notes, None), ("bad threshold", good, 7.0)]
    for what, path, threshold in cases:
        before_uploads = files_under(space["uploads"])
        try:
            space["client"].predict(handle_file(str(path)), threshold, api_name="/detect")
        except AppError:
            assert what != "good"
        else:
            assert what == "good"
        assert files_under(space["uploads"]) <= before_uploads, what
        assert not list(space["scratch"].glob("run-*")), what
    # A taken upload stays findable under scratch/recent for recent_s (1 s here), then goes too.
    deadline = time.monotonic() + 10
    while files_under(space["scratch"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not files_under(space["scratch"])


def test_identical_uploads_sent_at_once_all_succeed(space, tmp_path, time_limit):
    """gradio stores identical uploads (same bytes, same name) at one path: every request must still find
    its recording, whichever took it first and removed the original."""
    time_limit(0)
    rec = write_tone_file(tmp_path / "same.wav", 6.0, seed=7)
    results: dict[int, str] = {}

    def call(i: int) -> None:
        client = Client(space["url"], verbose=False)
        for _ in range(20):  # a full queue (size 1 here) is retried, a bounded number of times
            try:
                results[i] = client.predict(handle_file(str(rec)), api_name="/detect")["file"]
                return
            except Exception as err:  # noqa: BLE001
                if "Queue is full" not in str(err):
                    results[i] = f"{type(err).__name__}: {err}"
                    return
                time.sleep(0.3)
        results[i] = "queue stayed full"

    threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=90)
    assert results == {i: "same.wav" for i in range(3)}
