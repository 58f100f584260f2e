"""scripts/detect.py --workers N: the same results, summary and resumability as one process."""

from __future__ import annotations

import json
import subprocess
import sys

from owlfinder.detect import batch
from owlfinder.detect.detection import DetectionParams
from owlfinder.detect.model import load_classifier

from conftest import REPO_ROOT, write_tone_file

SCRIPT = REPO_ROOT / "scripts" / "detect.py"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def test_workers_match_one_process_and_resume(tmp_path, tiny_model_dir, monkeypatch):
    """docs/onnx.md's command: ``--backend onnx-int8 --workers 2`` over a folder."""
    monkeypatch.setenv("OWL_ONNX_CACHE", str(tmp_path / "onnx"))
    survey = tmp_path / "survey"
    survey.mkdir()
    for i, freq in enumerate((300.0, 500.0, 700.0)):
        write_tone_file(survey / f"site{i}.flac", 6.0 + 2 * i, sr=44100, channels=2, freq=freq, seed=i)
    (survey / "broken.wav").write_bytes(b"RIFF not audio")

    two = run_cli(str(survey), "--out", str(tmp_path / "two"), "--backend", "onnx-int8", "--workers", "2",
                  "--model", str(tiny_model_dir),
                  "--quiet", "--formats", "json", "csv")
    assert two.returncode == 1, two.stderr  # the broken file fails; the others are done
    assert "over 2 worker processes" in two.stderr and "(onnx-int8)" in two.stderr
    assert len(list((tmp_path / "onnx").glob("*/model.int8.onnx"))) == 1  # exported once, before the workers
    assert sum("error:" in line and "broken.wav" in line for line in two.stderr.splitlines()) == 1

    # One process, in this one, on the same files: the same rows and window scores.
    clf = load_classifier(tiny_model_dir, device="cpu", backend="onnx-int8")
    inputs, _ = batch.collect_inputs([survey])
    one = batch.detect_files(inputs, tmp_path / "one", clf, DetectionParams(batch_size=32), formats=["json"])
    rows_two = batch.read_summary(tmp_path / "two" / "summary.csv")
    assert [(r.file, r.status, r.events) for r in one] == [(r.file, r.status, r.events) for r in rows_two]
    for i in range(3):
        a = json.loads((tmp_path / "one" / f"site{i}.json").read_text())
        b = json.loads((tmp_path / "two" / f"site{i}.json").read_text())
        assert a["windows"] == b["windows"] and a["events"] == b["events"]
        assert (tmp_path / "two" / f"site{i}.csv").exists()

    # The workers' outputs make a later run resumable: nothing is scanned again.
    again = batch.detect_files(inputs, tmp_path / "two", clf, DetectionParams(batch_size=32), formats=["json"])
    assert [r.status for r in again] == [("error" if "broken" in r.file else "reused") for r in one]


def test_workers_must_be_positive(tmp_path, tiny_model_dir):
    res = run_cli(str(tmp_path), "--out", str(tmp_path / "o"), "--model", str(tiny_model_dir), "--workers", "0")
    assert res.returncode == 2 and "--workers must be at least 1" in res.stderr
