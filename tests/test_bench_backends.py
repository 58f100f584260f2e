"""bench/backends.py on a 20 s file: rows through scripts/detect.py, score differences, the table."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from conftest import REPO_ROOT, write_tone_file


@pytest.mark.slow
def test_backend_rows_and_table(tmp_path):
    spec = importlib.util.spec_from_file_location("owlbench_backends", REPO_ROOT / "bench" / "backends.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["owlbench_backends"] = mod
    spec.loader.exec_module(mod)
    rec = write_tone_file(tmp_path / "night.flac", 20.0, sr=44100, channels=2)
    args = mod.parse_args(["--recording", str(rec), "--minutes", "0.5", "--ast-minutes", "0", "--models", "starter",
                           "--backends", "torch", "onnx", "--skip", "birdnet", "--cache", str(tmp_path / "cache")])
    results = mod.run(args)
    rows = {r["backend"]: r for r in results["rows"]}
    assert set(rows) == {"torch", "onnx"} and all(r["ok"] for r in rows.values()), rows
    assert rows["torch"]["max_dp"] == 0 and rows["onnx"]["max_dp"] < 1e-3  # the same windows, the same scores
    assert rows["onnx"]["export_s"] > 0 and list((tmp_path / "cache" / "onnx").glob("*/model.onnx"))
    text = mod.render(results)
    assert "| starter model | onnx |" in text and "nan" not in text.split("|---|")[1].replace("n/a", "")
