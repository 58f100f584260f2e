"""scripts/build_dataset.py, scripts/chunk.py and scripts/push_dataset.py end to end."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from owlfinder.data.schema import clip_id
from owlfinder.data.store import DatasetStore

from conftest import REPO_ROOT, write_tone_file

SCRIPTS = REPO_ROOT / "scripts"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"script_{name}", SCRIPTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is created
    spec.loader.exec_module(mod)
    return mod


build = load_script("build_dataset")
chunk = load_script("chunk")
push = load_script("push_dataset")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def inputs(tmp_path) -> Path:
    """owl/ and not_owl/ folders in mixed formats and rates, with hostile files among them."""
    root = tmp_path / "in"
    (root / "owl" / "siteA").mkdir(parents=True)
    (root / "not_owl" / "siteB").mkdir(parents=True)
    write_tone_file(root / "owl" / "siteA" / "long.wav", 12.0, sr=44100, channels=2)  # 3 clips
    write_tone_file(root / "owl" / "short.flac", 2.0, sr=22050, freq=380)  # 1 filled clip
    write_tone_file(root / "not_owl" / "siteB" / "wind.ogg", 5.0, sr=48000, freq=90)  # 1 clip
    write_tone_file(root / "not_owl" / "siteB" / "blip.wav", 0.4)  # too short: skipped
    (root / "owl" / "empty.wav").write_bytes(b"")
    (root / "owl" / "siteA" / "text.wav").write_text("this is a text file renamed to .wav\n" * 20)
    good = (root / "owl" / "siteA" / "long.wav").read_bytes()
    (root / "not_owl" / "truncated.wav").write_bytes(good[:44])  # header only
    (root / "not_owl" / "notes.txt").write_text("field notes, not audio")
    return root


def test_build_skips_hostile_files_and_builds_the_rest(inputs, tmp_path):
    target = tmp_path / "ds"
    proc = subprocess.run([sys.executable, str(SCRIPTS / "build_dataset.py"), "--owl", str(inputs / "owl"),
                           "--not-owl", str(inputs / "not_owl"), "--to", str(target), "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr  # some files were unreadable, but the good ones are built
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    for name in ("empty.wav", "text.wav", "truncated.wav", "notes.txt", "blip.wav"):
        assert sum(name in line for line in lines) == 1, (name, proc.stderr)
    assert "owl 4, not_owl 1" in proc.stdout and "shard: data/train-" in proc.stdout

    ds = DatasetStore.open(target).load()
    assert len(ds) == 5 and ds.features["label"].names == ["owl", "not_owl"]
    assert all(len(r["audio"]["array"]) == 80000 and r["audio"]["sampling_rate"] == 16000 for r in ds)
    by_file = {}
    for r in ds:
        by_file.setdefault(r["filename"], []).append(r)
    assert sorted(by_file) == ["long.wav", "short.flac", "wind.ogg"]
    assert [(r["start_s"], r["end_s"]) for r in by_file["long.wav"]] == [(0, 5), (5, 10), (10, 12)]
    assert {r["group"] for r in by_file["long.wav"]} == {"siteA"}  # parent folder under the root
    assert by_file["short.flac"][0]["group"] == "short"  # straight under the root: its own group
    assert by_file["wind.ogg"][0]["label"] == 1 and by_file["wind.ogg"][0]["source"] == "not_owl/siteB/wind.ogg"
    assert by_file["short.flac"][0]["end_s"] == pytest.approx(2.0)
    y = np.asarray(by_file["short.flac"][0]["audio"]["array"])
    assert np.abs(y[-16000:]).mean() > 0.05  # filled with its own audio, not silence


def test_build_appends_resumes_and_reads_csv(inputs, tmp_path, capsys, shared_data):
    target = tmp_path / "ds"
    owl = tmp_path / "owl_only"
    (owl / "s1").mkdir(parents=True)
    write_tone_file(owl / "s1" / "a.wav", 6.0, sr=32000)
    assert build.main(["--owl", str(owl), "--to", str(target), "--quiet"]) == 0
    store = DatasetStore.open(target)
    [first] = store.shards()
    digest = sha(target / first)

    # Same input again: nothing new, no new shard.
    assert build.main(["--owl", str(owl), "--to", str(target), "--quiet"]) == 0
    assert "0 new clip(s)" in capsys.readouterr().out and store.shards() == [first]

    # A CSV (relative paths, groups, reasons, a bad line) and a real recording by absolute path.
    real = shared_data / "BirdVox__birdvoxdetect/tests/data/audio/BirdVox-scaper_example_background.wav"
    table = inputs / "labels.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "label", "group", "reason"])
        w.writerow(["not_owl/siteB/wind.ogg", "not_owl", "site-B", "wind/rain"])
        w.writerow(["owl/short.flac", "owl", "site-A", ""])
        w.writerow([str(real), "not_owl", "birdvox", "other"])
        w.writerow(["owl/missing.wav", "owl", "", ""])
        w.writerow(["owl/short.flac", "maybe", "", ""])
    assert build.main(["--csv", str(table), "--to", str(target), "--group-by", "csv", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "labels.csv line 5: owl/missing.wav: file not found" in err and "line 6" in err

    assert sha(target / first) == digest and len(store.shards()) == 2
    ds = store.load()
    rows = {(r["filename"], r["start_s"]): r for r in ds}
    assert len(ds) == 2 + 1 + 1 + 2
    assert rows[("wind.ogg", 0.0)]["group"] == "site-B" and rows[("wind.ogg", 0.0)]["reason"] == "wind/rain"
    assert rows[(real.name, 5.0)]["group"] == "birdvox" and rows[(real.name, 5.0)]["label"] == 1
    assert rows[("a.wav", 5.0)]["end_s"] == pytest.approx(6.0)


def test_chunk_naive_streams_clips_and_resumes(tmp_path):
    (tmp_path / "site").mkdir()
    rec = write_tone_file(tmp_path / "site" / "night.flac", 12.5, sr=48000, channels=2)
    out = tmp_path / "out"
    assert chunk.main([str(rec), "--out", str(out), "--quiet"]) == 0
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert [(r["start_s"], r["end_s"]) for r in lines] == [(0.0, 5.0), (5.0, 10.0), (10.0, 12.5)]
    for r in lines:
        y, sr = sf.read(out / r["audio"])
        assert sr == 16000 and y.ndim == 1 and len(y) == 80000
        assert r["source"] == "site/night.flac"
        assert r["clip_id"] == clip_id(sf.read(out / r["audio"], dtype="int16")[0], r["start_s"], r["end_s"])
        assert r["score"] is None and r["kind"] == "chunk"
    assert chunk.main([str(rec), "--out", str(out), "--quiet"]) == 0
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 3  # nothing twice


def test_chunk_from_detections(tmp_path, capsys):
    (tmp_path / "rec").mkdir()
    rec = write_tone_file(tmp_path / "rec" / "20240101_203000.wav", 60.0, sr=24000)
    scores = [.1, .2, .9, .3, .45, .1, .8, .85, .8, .1, .52, .2]
    doc = {"file": "/elsewhere/20240101_203000.wav",  # moved since detection: found via RECORDING
           "duration_s": 60.0, "sample_rate": 24000, "model": "me/owl-ast", "threshold": 0.5,
           "window_s": 5.0, "hop_s": 5.0, "recorded_at": "2024-01-01T20:30:00",
           "windows": [{"start_s": 5.0 * i, "end_s": 5.0 * i + 5, "score": s} for i, s in enumerate(scores)],
           "events": [{"start_s": 10.0, "end_s": 12.0, "score": 0.9, "mean_score": 0.9, "n_windows": 1,
                       "start_time": "2024-01-01T20:30:10"},
                      {"start_s": 30.0, "end_s": 41.0, "score": 0.85, "mean_score": 0.82, "n_windows": 3,
                       "start_time": "2024-01-01T20:30:30"}]}
    det = tmp_path / "night.json"
    det.write_text(json.dumps(doc))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    out = tmp_path / "out"
    code = chunk.main([str(rec), "--from", str(det), "--from", str(broken), "--context", "1",
                       "--uncertain", "2", "--out", str(out), "--quiet"])
    assert code == 1 and "error: broken.json: unreadable detection JSON" in capsys.readouterr().err
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    got = [(r["kind"], r["start_s"], r["end_s"], r["score"]) for r in lines]
    # Each clip carries the highest window score it overlaps.
    assert got == [("event", 8.5, 13.5, 0.9), ("event", 29.0, 34.0, 0.8), ("event", 34.0, 39.0, 0.85),
                   ("event", 37.0, 42.0, 0.85), ("uncertain", 50.0, 55.0, 0.52), ("uncertain", 20.0, 25.0, 0.45)]
    full, _ = sf.read(rec)
    from owlfinder.audio import resample

    full16 = resample(full.astype(np.float32), 24000, 16000)
    for r in lines:
        assert r["model"] == "me/owl-ast" and r["source"] == "rec/20240101_203000.wav"
        y, sr = sf.read(out / r["audio"], dtype="float32")
        assert sr == 16000 and len(y) == 80000
        lo = int(r["start_s"] * 16000)
        # The right stretch of audio (away from the edges, where resampling a segment differs a little).
        np.testing.assert_allclose(y[100:-100], full16[lo + 100: lo + 80000 - 100], atol=2e-3)
    assert len({r["clip_id"] for r in lines}) == 6


def test_push_dataset_script_with_a_fake_hub(tmp_path, capsys, monkeypatch):
    from test_store import FakeHfApi, rows

    monkeypatch.setenv("HF_TOKEN", "hf_SECRETsecretSECRETsecret")
    local = DatasetStore.open(tmp_path / "ds")
    shard = local.append(rows(2))
    api = FakeHfApi(tmp_path / "hub")
    assert push.main([str(tmp_path / "ds"), "--to", "me/owls", "--private"], api=api) == 0
    assert api.commits[0]["paths"] == [shard, "README.md"] and api.commits[0]["repo_type"] == "dataset"
    assert ("create_repo", {"repo_id": "me/owls", "repo_type": "dataset", "exist_ok": True,
                            "private": True}) in api.calls
    out = capsys.readouterr()
    assert "pushed 1 shard(s)" in out.out and "hf_SECRET" not in out.out + out.err
    assert push.main([str(tmp_path / "nope"), "--to", "me/owls"], api=api) == 1
