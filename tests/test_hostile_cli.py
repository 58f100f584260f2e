"""Hostile inputs through the command line: one clean line per bad file, the rest of the batch goes on."""

from __future__ import annotations

import importlib.util
import json
import resource
import time
from pathlib import Path

import numpy as np
import pytest

from owlfinder import audio
from owlfinder.detect.batch import read_summary

import hostile
from conftest import REPO_ROOT


def _load_cli():
    spec = importlib.util.spec_from_file_location("detect_cli", REPO_ROOT / "scripts" / "detect.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    d = tmp_path_factory.mktemp("hostile")
    kinds = {}
    for group in (hostile.BROKEN, hostile.TRUNCATED, hostile.ODD_VALID):
        for kind, make in group.items():
            kinds[make(d).name] = kind
    for p in hostile.odd_names(d):
        kinds[p.name] = "odd name"
    return d, kinds


def test_cli_survives_every_hostile_input(hostile_folder, tmp_path, tiny_model_dir, capsys):
    folder, kinds = hostile_folder
    out = tmp_path / "out"
    code = _load_cli().main([str(folder), "--out", str(out), "--model", str(tiny_model_dir), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    rows = {Path(r.file).name: r for r in read_summary(out / "summary.csv")}
    assert set(rows) == set(kinds)  # every file accounted for, in one summary
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    for name, kind in kinds.items():
        row = rows[name]
        if kind in hostile.BROKEN:
            assert row.status == "error", name
            # exactly one line on stderr, naming the file and the reason
            assert sum(name in line for line in error_lines) == 1 and row.error
        elif kind in hostile.TRUNCATED:
            assert row.status in ("ok", "error"), name
            if row.status == "error":
                assert sum(name in line for line in error_lines) == 1
                if "kept" in row.error:  # windows scored before the damage are saved, marked partial
                    doc = json.loads((out / f"{name}.json").read_text())
                    assert doc["status"] == "partial" and doc["windows"]
        else:  # odd but valid audio, and odd names, are processed
            assert row.status == "ok", (name, row.error)
            assert (out / (Path(name).stem + ".json")).exists()
    assert len(error_lines) == sum(r.status == "error" for r in rows.values())


def test_leading_dash_name_as_argument(hostile_folder, tmp_path, tiny_model_dir, capsys):
    folder, _ = hostile_folder
    code = _load_cli().main(["--out", str(tmp_path / "o"), "--model", str(tiny_model_dir), "--quiet", "--",
                             str(folder / "-leading-dash.wav")])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "o" / "-leading-dash.json").exists()


def test_24_hour_recording_is_streamed_and_limits_are_clear(tmp_path, tiny_model_dir, capsys):
    day = hostile.sparse_long_wav(tmp_path / "20240101_000000.wav", hours=24.0)
    info = audio.probe(day)
    assert info.duration_s == pytest.approx(86400.0)
    # Streaming touches only what it reads: 10 blocks of a 24-hour file, memory bounded by the block.
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    gen = audio.stream(day, 16000, block_s=30.0, info=info)
    n = sum(len(next(gen)) for _ in range(10))
    gen.close()
    assert n == pytest.approx(300 * 16000, abs=16000)
    assert time.perf_counter() - t < 30
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200
    # A configured duration limit refuses it with one clear line, without decoding it.
    code = _load_cli().main([str(day), "--out", str(tmp_path / "o"), "--model", str(tiny_model_dir), "--quiet",
                             "--max-duration", "12"])
    err = capsys.readouterr().err
    assert code == 1
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert "20240101_000000.wav" in line and "24.0 h" in line and "limit is 12.0 h" in line
    assert np.isfinite(info.duration_s)
