"""scripts/detect.py end to end: all four formats, a broken file among good ones, resumable runs."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import pty
import stat
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from owlfinder.detect import exports
from owlfinder.detect.batch import read_summary

from conftest import REPO_ROOT, write_tone_file

SCRIPT = REPO_ROOT / "scripts" / "detect.py"


def run_cli(*args: str, umask: int = -1) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300,
                          umask=umask)


@pytest.fixture()
def survey(tmp_path) -> Path:
    root = tmp_path / "survey"
    (root / "site-a").mkdir(parents=True)
    (root / "site-b").mkdir()
    write_tone_file(root / "site-a" / "20210603T200000+1000_Site-A_1.flac", 23.0, sr=44100, channels=2)
    write_tone_file(root / "site-b" / "20240101_203000.WAV", 12.0, sr=48000)
    (root / "site-b" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (root / "site-b" / "notes.txt").write_text("not audio, ignored by the folder walk")
    (root / "site-a" / "empty.flac").write_bytes(b"")
    return root


def test_folder_with_broken_files(survey, tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    proc = run_cli(str(survey), "--out", str(out), "--model", str(tiny_model_dir), "--threshold", "0")
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and any("broken.wav" in e for e in errors) and any("empty.flac" in e for e in errors)
    assert "Traceback" not in proc.stderr

    # Good files have all four formats, mirrored under their site folders.
    stem = out / "site-a" / "20210603T200000+1000_Site-A_1"
    doc = json.loads(Path(f"{stem}.json").read_text())
    assert set(doc) >= {"file", "duration_s", "sample_rate", "model", "threshold", "window_s", "hop_s",
                        "recorded_at", "windows", "events"}
    assert doc["sample_rate"] == 44100 and doc["duration_s"] == pytest.approx(23.0)
    assert doc["windows"][-1]["end_s"] == pytest.approx(23.0)
    assert doc["recorded_at"] == "2021-06-03T20:00:00+10:00"
    (row,) = exports.read_csv(f"{stem}.csv")  # threshold 0: the whole file is one event
    assert float(row["end_s"]) == pytest.approx(23.0) and row["start_time"] == "2021-06-03T20:00:00.000+10:00"
    (sel,) = exports.read_raven(f"{stem}.raven.txt")
    assert list(sel) == exports.RAVEN_FIELDS and sel["Low Freq (Hz)"] == "250.0"
    assert exports.read_audacity(f"{stem}.audacity.txt")[0][2].startswith("owl ")
    assert (out / "site-b" / "20240101_203000.json").exists()

    summary = {Path(r.file).name: r for r in read_summary(out / "summary.csv")}
    assert summary["broken.wav"].status == "error" and summary["broken.wav"].error
    assert summary["20240101_203000.WAV"].status == "ok" and summary["20240101_203000.WAV"].events == 1

    # A re-run reuses finished files; a new threshold re-derives events without the model; --force redoes.
    again = run_cli(str(survey), "--out", str(out), "--model", str(tiny_model_dir), "--threshold", "0")
    assert {r.status for r in read_summary(out / "summary.csv") if r.error is None} == {"reused"}
    assert again.returncode == 1
    assert again.stderr.count("reused saved results") == 2 and "saved scores were used" in again.stderr
    rethr = run_cli(str(survey), "--out", str(out), "--model", str(tiny_model_dir), "--threshold", "1")
    rows = [r for r in read_summary(out / "summary.csv") if r.error is None]
    assert {r.status for r in rows} == {"rethresholded"} and all(r.events == 0 for r in rows)
    assert rethr.stderr.count("reused saved scores; events re-derived") == 2
    assert exports.read_csv(f"{stem}.csv") == []
    run_cli(str(survey), "--out", str(out), "--model", str(tiny_model_dir), "--force", "--formats", "json")
    assert {r.status for r in read_summary(out / "summary.csv") if r.error is None} == {"ok"}


def test_only_good_files_exit_zero_and_formats_selected(tmp_path, tiny_model_dir):
    rec = write_tone_file(tmp_path / "night one.ogg", 8.0, sr=32000)
    out = tmp_path / "out"
    proc = run_cli(str(rec), "--out", str(out), "--model", str(tiny_model_dir), "--formats", "raven")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["night one.json", "night one.raven.txt", "summary.csv"]


def test_missing_path_and_bad_model(tmp_path, tiny_model_dir):
    proc = run_cli(str(tmp_path / "nope.flac"), "--out", str(tmp_path / "o"), "--model", str(tiny_model_dir))
    assert proc.returncode == 1 and "nope.flac: no such file or folder" in proc.stderr
    proc = run_cli(str(tmp_path), "--out", str(tmp_path / "o"), "--model", str(tmp_path / "no-model"))
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: cannot load model")
    assert "Traceback" not in proc.stderr


def _detect_script():
    """``scripts/detect.py`` as a module, to call its ``main`` in-process."""
    spec = importlib.util.spec_from_file_location("detect_script", SCRIPT)
    detect = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(detect)
    return detect


def test_rerun_with_a_calibrated_threshold_rewrites_nothing(tmp_path, tiny_model_dir, capsys):
    # The JSON keeps 6 digits (0.85988); the reuse check must compare at that precision, not to 1e-9.
    # In-process (main()) rather than a subprocess: two runs, one import of torch.
    detect = _detect_script()
    (tmp_path / "in").mkdir()
    for i in range(2):
        write_tone_file(tmp_path / "in" / f"night{i}.flac", 8.0, seed=i)
    out = tmp_path / "out"
    args = [str(tmp_path / "in"), "--out", str(out), "--model", str(tiny_model_dir), "--threshold", "0.8598797",
            "--quiet"]
    assert detect.main(args) == 0
    assert json.loads((out / "night0.json").read_text())["threshold"] == 0.85988
    results = sorted(p for p in out.iterdir() if p.name != "summary.csv")
    assert len(results) == 8  # json, csv, raven, audacity for each
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in results}
    capsys.readouterr()
    assert detect.main(args) == 0
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in results} == before  # nothing rewritten
    assert {r.status for r in read_summary(out / "summary.csv")} == {"reused"}
    assert "2 reused (results already there)" in capsys.readouterr().err


def test_outputs_follow_the_umask(tmp_path, tiny_model_dir):
    """Colleagues on a shared server can read results: 0644 under umask 022, not mkstemp's 0600."""
    rec = write_tone_file(tmp_path / "night.wav", 6.0)
    out = tmp_path / "out"
    proc = run_cli(str(rec), "--out", str(out), "--model", str(tiny_model_dir), umask=0o022)
    assert proc.returncode == 0, proc.stderr
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert len(modes) == 5 and set(modes.values()) == {0o644}, modes


def test_linked_folders_are_walked_and_loops_end(tmp_path, tiny_model_dir):
    drive = tmp_path / "mounted-drive" / "site-c"
    drive.mkdir(parents=True)
    write_tone_file(drive / "night.wav", 6.0)
    survey = tmp_path / "survey"
    survey.mkdir()
    write_tone_file(survey / "local.wav", 6.0)
    (survey / "site-c").symlink_to(drive, target_is_directory=True)  # a linked site folder
    (drive / "back").symlink_to(survey, target_is_directory=True)  # a loop through the link
    linked_root = tmp_path / "linked-survey"
    linked_root.symlink_to(survey, target_is_directory=True)
    out = tmp_path / "out"
    proc = run_cli(str(linked_root), "--out", str(out), "--model", str(tiny_model_dir))
    assert proc.returncode == 0, proc.stderr
    assert "2 recording(s)" in proc.stderr
    assert (out / "local.json").is_file() and (out / "site-c" / "night.json").is_file()
    assert len(read_summary(out / "summary.csv")) == 2


def test_a_folder_without_audio_is_an_error_naming_it(tmp_path, tiny_model_dir):
    empty = tmp_path / "card-01"
    empty.mkdir()
    (empty / "notes.txt").write_text("battery died")
    proc = run_cli(str(empty), "--out", str(tmp_path / "out"), "--model", str(tiny_model_dir))
    assert proc.returncode == 1
    assert f"error: {empty}: no audio files" in proc.stderr and "Traceback" not in proc.stderr
    (row,) = read_summary(tmp_path / "out" / "summary.csv")
    assert row.file == str(empty) and row.status == "error"


def test_a_terminal_with_no_width_gets_plain_progress_lines(tmp_path, tiny_model_dir):
    """Some consoles report 0 columns: bars would draw nothing, so plain lines say where the run is."""
    rec = write_tone_file(tmp_path / "night.wav", 30.0)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
    try:
        proc = subprocess.run([sys.executable, str(SCRIPT), str(rec), "--out", str(tmp_path / "out"), "--model",
                               str(tiny_model_dir), "--hop", "1", "--batch-size", "4"], stdout=subprocess.PIPE, stderr=follower,
                              timeout=300, env={**os.environ, "COLUMNS": "0"})
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the child side is closed and drained
                break
            if not data:
                break
            chunks.append(data)
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0, text
    assert f"[1/1] {rec} (00:00:30)" in text
    assert "% " in text and "of 00:00:30" in text, text


def test_damaged_mp3_frames_are_one_note_not_a_flood(shared_data, tmp_path, tiny_model_dir):
    mp3 = (shared_data / "QutEcoacoustics__audio-analysis/Acoustics/Acoustics.Test/TestResources/"
           "Currawongs_curlew_West_Knoll_Bees_20091102-183000.mp3")
    proc = run_cli(str(mp3), "--out", str(tmp_path / "out"), "--model", str(tiny_model_dir), "--hop", "5")
    assert proc.returncode == 0, proc.stderr
    assert "libmpg123/" not in proc.stderr and "part2_3_length (" not in proc.stderr
    assert proc.stderr.count("note: the MP3 decoder reported") == 1


def test_second_look_is_part_of_what_a_saved_result_is_reused_for(tmp_path, tiny_model_dir):
    detect = _detect_script()
    (tmp_path / "in").mkdir()
    write_tone_file(tmp_path / "in" / "night.flac", 12.0, seed=3)
    out = tmp_path / "out"
    base = [str(tmp_path / "in"), "--out", str(out), "--model", str(tiny_model_dir), "--quiet"]

    def run(*extra: str) -> tuple[str, list[float]]:
        assert detect.main([*base, *extra]) == 0
        doc = json.loads((out / "night.json").read_text())
        return read_summary(out / "summary.csv")[0].status, [w["start_s"] for w in doc["windows"]]

    status, grid = run("--threshold", "0.5", "--no-second-look")
    assert status == "ok" and grid == [0.0, 2.5, 5.0, 7.0]  # the grid and the end-aligned window
    status, looked = run("--threshold", "0.5", "--second-look", "50")  # every window is a candidate
    assert status == "ok" and looked == [0.0, 1.25, 2.5, 3.75, 5.0, 6.25, 7.0]
    assert run("--threshold", "0.6", "--second-look", "50")[0] == "rethresholded"  # higher: same windows
    assert run("--threshold", "0.4", "--second-look", "50")[0] == "ok"  # lower: scanned again


def test_description_check_options_reach_the_json_and_the_reuse_key(tmp_path, tiny_model_dir):
    detect = _detect_script()
    (tmp_path / "in").mkdir()
    write_tone_file(tmp_path / "in" / "night.flac", 12.0, seed=3)
    out = tmp_path / "out"
    base = [str(tmp_path / "in"), "--out", str(out), "--model", str(tiny_model_dir), "--quiet", "--threshold", "0.5"]

    def run(*extra: str) -> tuple[str, dict]:
        assert detect.main([*base, *extra]) == 0
        return read_summary(out / "summary.csv")[0].status, json.loads((out / "night.json").read_text())

    status, doc = run()
    assert status == "ok" and (doc["description_check_logit"], doc["description_unpaired_logit"]) == (3.0, None)
    status, doc = run("--description-check", "3", "--description-unpaired", "2")
    assert status == "ok"  # another setting: scanned again, not reused
    assert (doc["description_check_logit"], doc["description_unpaired_logit"]) == (3.0, 2.0)
    assert run("--description-check", "3", "--description-unpaired", "2")[0] == "reused"
    status, doc = run("--no-description-check")
    assert status == "ok" and doc["description_check_logit"] is None
