"""bench/gpu.py's CPU path on a tiny input (it has not been run on a GPU here: see docs/onnx.md)."""

from __future__ import annotations

import importlib.util
import sys

from conftest import REPO_ROOT, write_tone_file


def _load(name: str, filename: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "bench" / filename)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_gpu_bench_cpu_path(tmp_path):
    gpu = _load("owlbench_gpu", "gpu.py")
    rec = write_tone_file(tmp_path / "night.flac", 40.0, sr=44100, channels=2)
    args = gpu.parse_args(["--device", "cpu", "--models", "starter", "--batches", "1", "3", "--dtypes", "fp32",
                           "--iters", "1", "--segments", "3", "--e2e-batch", "4", "--recording", str(rec),
                           "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "gpu.md")])
    results = gpu.run(args)
    assert [(r["model"], r["batch"]) for r in results["sweep"]] == [("starter", 1), ("starter", 3)]
    assert all(r["x_realtime"] > 0 for r in results["sweep"])
    e2e = results["end_to_end"]
    assert e2e["windows"] == 15  # 40 s at a 2.5 s hop: starts 0, 2.5, ..., 35
    assert e2e["same_scores"], e2e  # three ranges scanned in parallel threads agree with one sequential scan
    assert e2e["overlapped_x"] > 0 and e2e["sequential_x"] > 0
    text = gpu.render(results)
    assert "| starter | fp32 | 3 |" in text and "overlapped segments" in text


def test_gpu_bench_refuses_cuda_without_it(tmp_path, monkeypatch):
    import pytest
    import torch

    gpu = _load("owlbench_gpu", "gpu.py")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="CUDA is not available"):
        gpu.run(gpu.parse_args(["--cache", str(tmp_path)]))
