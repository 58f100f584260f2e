"""Crashes mid-detection: SIGKILL the Space during a long scan, and the command line during a batch.

- The Space (``python space/app.py``, tiny model, a 4-minute recording scanned every 0.1 s so that it takes
  many seconds) is SIGKILLed mid-scan and restarted: it serves again, the client of the killed request got an
  error (never a result), the interrupted run is cleanly absent (no clips from it in the labelling queue, its
  scratch folder swept at start-up) and the next detection works and is queued.
- ``scripts/detect.py`` is SIGKILLed while the third of three recordings is being scanned, then re-run: the two
  finished files are reused, the killed one is redone, and a damaged or partial JSON is never taken for a
  finished result.

SIGKILL during labelling is covered by tests/test_label_api.py and tests/test_labelling.py; Hub pushes that
fail and land once later by tests/test_labelling.py and tests/test_store.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gradio_client import handle_file
from servers import SpaceProcess

from owlfinder.detect.batch import read_summary

from conftest import REPO_ROOT, write_tone_file

pytestmark = pytest.mark.slow


def _wait_for(predicate, timeout: float, what: str, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# ------------------------------------------------------------------------------------------------ the Space


def test_space_killed_mid_scan_restarts_clean(tmp_path, tiny_model_dir):
    long_rec = write_tone_file(tmp_path / "20240105_220000.flac", 240.0)
    short_rec = write_tone_file(tmp_path / "20240106_010000.wav", 12.0, seed=3)
    env = dict(GRADIO_TEMP_DIR=str(tmp_path / "gradio"), OWL_HOP_S="0.1", OWL_BATCH_SIZE="8")
    scratch = tmp_path / "scratch"
    app = SpaceProcess(tmp_path, tiny_model_dir, **env)
    outcome: dict[str, object] = {}
    try:
        client = app.client()
        job = client.submit(handle_file(str(long_rec)), 0.0, api_name="/detect")

        def wait_result() -> None:
            try:
                outcome["result"] = job.result(timeout=60)
            except BaseException as err:  # noqa: BLE001 - what the client sees when the server dies
                outcome["error"] = err

        waiter = threading.Thread(target=wait_result, daemon=True)
        waiter.start()
        # The scan has started once the upload was taken into a scratch folder; let it run a little.
        _wait_for(lambda: list(scratch.glob("run-*/recording.flac")), 60, "the scan to start")
        time.sleep(1.5)
        assert waiter.is_alive(), outcome  # still scanning: 2,350 windows take far longer than this
    finally:
        app.kill()
    waiter.join(timeout=90)
    assert not waiter.is_alive(), "the client never gave up on the killed server"
    assert "result" not in outcome, "a result was delivered for a killed scan"
    assert isinstance(outcome.get("error"), BaseException)
    orphans = list(scratch.glob("run-*"))
    assert orphans  # the killed run's folder is still there...

    app = SpaceProcess(tmp_path, tiny_model_dir, **env)
    try:
        assert not any(p.exists() for p in orphans)  # ...until the restarted Space sweeps it at start-up
        client = app.client()
        waiting = client.predict(api_name="/queue")
        assert waiting == {"clips": [], "labelled": 0, "remaining": 0}  # nothing from the killed scan
        doc = client.predict(handle_file(str(short_rec)), 0.0, api_name="/detect")
        assert doc["status"] == "complete" and doc["file"] == short_rec.name and doc["events"]
        sources = {c["source"] for c in client.predict(api_name="/queue")["clips"]}
        assert sources == {short_rec.name}
        assert not list(scratch.glob("run-*"))
    finally:
        app.stop()
    log = Path(app.log.name).read_text()
    assert "Traceback" not in log, log[-3000:]


# ------------------------------------------------------------------------------------------- the command line


def _cli(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(REPO_ROOT / "scripts" / "detect.py"), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_cli_killed_mid_file_resumes_without_trusting_partial_results(tmp_path, tiny_model_dir):
    rec = tmp_path / "recs"
    rec.mkdir()
    for i, name in enumerate(("a.wav", "b.wav", "b2.wav")):
        write_tone_file(rec / name, 10.0, seed=i)
    write_tone_file(rec / "c.flac", 480.0, seed=3)  # 8 minutes every 0.5 s: seconds of scanning, done last
    out = tmp_path / "out"
    args = [str(rec), "--out", str(out), "--model", str(tiny_model_dir), "--hop", "0.5", "--device", "cpu"]

    proc = _cli(args)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        _wait_for(lambda: any(line.startswith("[4/4]") for line in lines), 120, "the last file to start")
        time.sleep(0.5)
        assert proc.poll() is None, "".join(lines)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    reader.join(10)
    assert not list(out.glob("c.*")) and not list(out.glob(".*.tmp"))  # nothing half-written
    assert not (out / "summary.csv").exists()
    first = {n: json.loads((out / f"{n}.json").read_text()) for n in ("a", "b", "b2")}
    grid = {round(0.5 * k, 3) for k in range(11)}  # 10 s at a 0.5 s hop; second-look windows may lie between
    assert all(doc["status"] == "complete" and {round(w["start_s"], 3) for w in doc["windows"]} >= grid
               for doc in first.values())
    kept = (out / "b2.json").stat().st_mtime_ns

    # Before the re-run, damage two finished results the ways a crash elsewhere could: a JSON cut short (a
    # full disk, an interrupted copy) and one marked partial (a file that failed part-way). Neither may be
    # taken for a finished result.
    text = (out / "a.json").read_text()
    (out / "a.json").write_text(text[: len(text) // 2])
    partial = dict(first["b"], status="partial", windows=first["b"]["windows"][:2])
    (out / "b.json").write_text(json.dumps(partial))
    # And the temp file a kill during the write itself leaves (atomic writes: temp, fsync, rename).
    (out / ".c.json.k1ll3d_x.tmp").write_text(text[:100])
    (out / ".c.flac.json.k1ll3d_x.tmp").write_text("not ours: a recording named c.flac.flac")

    p = _cli(args + ["--quiet"])
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0 and "Traceback" not in err, err
    status = {Path(r.file).name: r.status for r in read_summary(out / "summary.csv")}
    assert status == {"a.wav": "ok", "b.wav": "ok", "b2.wav": "reused", "c.flac": "ok"}
    assert (out / "b2.json").stat().st_mtime_ns == kept  # the finished file was not rewritten
    assert not (out / ".c.json.k1ll3d_x.tmp").exists()  # the killed write's leftover is cleared
    assert (out / ".c.flac.json.k1ll3d_x.tmp").exists()  # only that file's own
    for name in ("a", "b"):
        doc = json.loads((out / f"{name}.json").read_text())
        assert doc["status"] == "complete" and doc["windows"] == first[name]["windows"]
    doc = json.loads((out / "c.json").read_text())
    assert doc["status"] == "complete" and doc["duration_s"] == pytest.approx(480.0, abs=0.01)
    assert (out / "c.csv").exists() and (out / "c.raven.txt").exists() and (out / "c.audacity.txt").exists()
