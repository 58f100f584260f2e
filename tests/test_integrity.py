"""A clip is known by its audio, not its file name: the queue, the store, chunk.py and build_dataset.py.

Recorders name files by time, so two recorders in one night write the same ``20240101_203000.WAV``; each
test here gives two *different* recordings one name and checks that nothing of the second is dropped, that
the same audio is still recognised (resume, de-duplication), and that stores and queues written with the
old name-based ids keep working.
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from owlfinder.data.clips import clips_from_file, encode_flac, source_name
from owlfinder.data.schema import SAMPLE_RATE, is_legacy_clip_id, legacy_clip_id
from owlfinder.data.store import DatasetStore
from owlfinder.detect.engine import Detection
from owlfinder.detect.events import Event
from owlfinder.labelling.queue import LabelQueue

from conftest import REPO_ROOT, write_tone_file

NAME = "20240101_203000.wav"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"integrity_{name}", REPO_ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


build = load_script("build_dataset")
chunk = load_script("chunk")


def recorder(folder: Path, seed: int, seconds: float = 30.0) -> Path:
    """One recorder's file, named by time like every other recorder's."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_tone_file(folder / NAME, seconds, sr=48000, seed=seed)


def detection(path: Path) -> Detection:
    """A run on a 30 s recording with one event at 11-13 s and windows around the threshold."""
    starts = np.arange(0.0, 26.0, 2.5)
    scores = np.linspace(0.3, 0.7, len(starts)).astype(np.float32)
    return Detection(file=str(path), duration_s=30.0, sample_rate=16000, model="tiny-owl", threshold=0.5,
                     window_s=5.0, hop_s=2.5, gap_s=0.7, min_duration_s=0.0, recorded_at=None,
                     starts_s=starts, ends_s=starts + 5.0, scores=scores,
                     events=[Event(11.0, 13.0, 0.9, 0.9, 1)])


# ------------------------------------------------------------------------------------------- the queue


def test_same_named_recordings_reach_the_queue_and_the_store_in_full(tmp_path):
    q = LabelQueue(tmp_path / "data")
    a, b = recorder(tmp_path / "sd1", seed=1), recorder(tmp_path / "sd2", seed=2)
    first = q.add_detection(detection(a), a, n_uncertain=6, display_name=NAME)
    second = q.add_detection(detection(b), b, n_uncertain=6, display_name=NAME)
    assert first == second == 7  # before content ids the second upload queued almost nothing
    assert q.add_detection(detection(a), a, n_uncertain=6, display_name=NAME) == 0  # same audio: known
    clips = q.pending()
    assert len(clips) == 14 and {c.source for c in clips} == {NAME}  # the display name stays the file name
    assert len({c.filename for c in clips}) == 14  # and the dataset's file names stay apart
    for c in clips:
        q.label(c.clip_id, "not_owl", "ann")
    ds = q.store.load()
    assert len(ds) == 14 and sorted(ds["clip_id"]) == sorted(c.clip_id for c in clips)
    assert q.counts()["remaining"] == 0


def test_same_named_uploads_to_the_space_both_reach_the_queue_in_full(tmp_path, tiny_model_dir):
    """The issue's report, through the Space's detection service: the second upload with the first's name
    queued 2 clips where the first queued 10."""
    from owlfinder.detect.model import load_classifier
    from owlfinder.ui.config import AppConfig
    from owlfinder.ui.detect_service import DetectService

    q = LabelQueue(tmp_path / "data")
    cfg = AppConfig(tmp_dir=tmp_path / "scratch", data_dir=tmp_path / "data", update_every_s=0.0, n_uncertain=4)
    svc = DetectService(cfg, q, classifier=load_classifier(tiny_model_dir, device="cpu"))
    counts = []
    for seed in (1, 2):
        src = recorder(tmp_path / f"upload{seed}", seed=seed)
        doc = svc.detect_json(src, NAME, threshold=0.0)  # threshold 0: the whole recording is one event
        assert doc["events"]
        counts.append(len(q.pending()) - sum(counts))
    assert counts[0] == counts[1] >= 6, counts  # 30 s of event: six 5 s clips from each recording
    assert {c.source for c in q.pending()} == {NAME}


def _legacy_queue(data: Path, rec: Path, source: str) -> list[str]:
    """A queue as the name-id version left it: two clips of ``rec`` queued under legacy ids."""
    q = LabelQueue(data)
    ids = []
    for start in (0.0, 5.0):
        y = next(c for s, _, c in clips_from_file(rec) if s == start)
        cid = legacy_clip_id(source, start, start + 5.0)
        (q.dir / "clips" / f"{cid}.flac").write_bytes(encode_flac(y))
        with sqlite3.connect(q.db_path) as db:
            db.execute("INSERT INTO clips (clip_id, seq, source, start_s, end_s, audio, added_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, '2024-01-01T00:00:00.000000Z')",
                       (cid, len(ids) + 1, source, start, start + 5.0, f"clips/{cid}.flac"))
        ids.append(cid)
    q.close()
    return ids


def test_a_legacy_queue_keeps_its_ids_and_tells_same_named_audio_apart(tmp_path):
    a, b = recorder(tmp_path / "sd1", seed=1), recorder(tmp_path / "sd2", seed=2)
    old = _legacy_queue(tmp_path / "data", a, NAME)
    q = LabelQueue(tmp_path / "data")
    assert [c.clip_id for c in q.pending()] == old and all(is_legacy_clip_id(c) for c in old)
    # The same recording, queued again through a chunk manifest: its clips are the legacy ones.
    out = tmp_path / "to_label"
    assert chunk.main([str(a), "--out", str(out), "--root", str(tmp_path), "--quiet"]) == 0
    manifest = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    for rec in manifest:  # name the source as the legacy queue did
        rec["source"] = NAME
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in manifest))
    assert q.add_manifest(out) == len(manifest) - 2  # 0-5 s and 5-10 s were queued already
    # An old id is labelled under that id, and its verdict counts.
    ack = q.label(old[0], "owl", "ann")
    assert ack.clip_id == old[0] and old[0] in q.store.clip_ids()
    # Another recording with the same name: its 0-5 s clip shares the legacy id but not the audio.
    y = next(c for s, _, c in clips_from_file(b) if s == 0.0)
    assert q.add_clip(y, source=NAME, start_s=0.0, end_s=5.0) is True
    y_same = next(c for s, _, c in clips_from_file(a) if s == 0.0)
    assert q.add_clip(y_same, source=NAME, start_s=0.0, end_s=5.0) is False  # labelled under its old id
    q.close()
    # A new queue over the same store (the queue lost): the labelled legacy clip is still not offered.
    fresh = LabelQueue(tmp_path / "data2", store=DatasetStore.open(tmp_path / "data" / "dataset"))
    assert fresh.add_clip(y_same, source=NAME, start_s=0.0, end_s=5.0) is False
    assert fresh.add_clip(y, source=NAME, start_s=0.0, end_s=5.0) is True


# ------------------------------------------------------------------------------------------- chunk.py


def test_chunk_keeps_same_named_recordings_apart_and_resumes(tmp_path):
    # Two SD cards, each with DATA/<time>.wav: the same source name under a --root per card.
    a = recorder(tmp_path / "sd1" / "DATA", seed=1, seconds=12.0)
    b = recorder(tmp_path / "sd2" / "DATA", seed=2, seconds=12.0)
    assert source_name(a) == source_name(b) == f"DATA/{NAME}"
    out = tmp_path / "out"
    assert chunk.main([str(a), str(b), "--out", str(out), "--quiet"]) == 0
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and len({r["clip_id"] for r in lines}) == 6 and len({r["audio"] for r in lines}) == 6
    for r in lines:  # each WAV holds its own recording's audio (none overwritten by the other's)
        rec = a if r["recording"] == str(a.resolve()) else b
        y = next(c for s, _, c in clips_from_file(rec) if s == r["start_s"])
        np.testing.assert_allclose(sf.read(out / r["audio"], dtype="float32")[0], y, atol=1 / 32768 + 1e-7)
    assert chunk.main([str(a), str(b), "--out", str(out), "--quiet"]) == 0
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 6  # resumed: nothing twice
    q = LabelQueue(tmp_path / "data")
    assert q.add_manifest(out) == 6 and q.add_manifest(out) == 0


def test_chunk_resumes_a_manifest_written_with_legacy_ids(tmp_path):
    a = recorder(tmp_path / "site", seed=1, seconds=10.0)
    out = tmp_path / "out"
    assert chunk.main([str(a), "--out", str(out), "--quiet"]) == 0
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    for r in lines:  # what the name-id version wrote
        r["clip_id"] = legacy_clip_id(r["source"], r["start_s"], r["end_s"])
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert chunk.main([str(a), "--out", str(out), "--quiet"]) == 0
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 2  # the legacy lines were recognised
    other = recorder(tmp_path / "site2" / "x" / "site", seed=2, seconds=10.0)  # same "site/<name>"
    assert chunk.main([str(other), "--out", str(out), "--quiet"]) == 0
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 4  # other audio, same legacy id


# ------------------------------------------------------------------------------------- build_dataset.py


def _batch(root: Path, seed: int) -> Path:
    """The seed's labelling-round layout: owls/o0.wav ..., not_owls/n0.wav ..., names reused every round."""
    for i in range(3):
        (root / "owls").mkdir(parents=True, exist_ok=True)
        (root / "not_owls").mkdir(parents=True, exist_ok=True)
        write_tone_file(root / "owls" / f"o{i}.wav", 4.0, freq=400 + 10 * i, seed=seed * 10 + i)
        write_tone_file(root / "not_owls" / f"n{i}.wav", 4.0, freq=200 + 10 * i, seed=seed * 10 + 5 + i)
    return root


def test_a_second_batch_with_reused_file_names_appends_all_its_clips(tmp_path, capsys):
    target = tmp_path / "ds"
    for round_, seed in ((1, 1), (2, 2)):
        batch = _batch(tmp_path / f"round{round_}", seed)
        assert build.main(["--owl", str(batch / "owls"), "--not-owl", str(batch / "not_owls"),
                           "--to", str(target), "--quiet"]) == 0
        assert "6 new clip(s)" in capsys.readouterr().out
    ds = DatasetStore.open(target).load()
    assert len(ds) == 12 and sorted(set(ds["filename"])) == sorted(
        [f"o{i}.wav" for i in range(3)] + [f"n{i}.wav" for i in range(3)])
    # The same batch again: every clip is known.
    batch = tmp_path / "round2"
    assert build.main(["--owl", str(batch / "owls"), "--not-owl", str(batch / "not_owls"),
                       "--to", str(target), "--quiet"]) == 0
    assert "0 new clip(s)" in capsys.readouterr().out


def test_build_over_a_legacy_store_skips_its_clips_and_adds_same_named_new_ones(tmp_path, capsys):
    target = tmp_path / "ds"
    first = _batch(tmp_path / "round1", 1)
    # The store as the name-id version built it from round 1.
    rows = []
    for label, folder in (("owl", first / "owls"), ("not_owl", first / "not_owls")):
        for f in sorted(folder.iterdir()):
            src = source_name(f, folder)
            for start, end, y in clips_from_file(f):
                rows.append({"audio": encode_flac(y), "verdict": label, "source": src, "start_s": start,
                             "end_s": end, "clip_id": legacy_clip_id(src, start, end), "filename": f.name})
    store = DatasetStore.open(target)
    store.append(rows)
    args = ["--to", str(target), "--quiet"]
    assert build.main(["--owl", str(first / "owls"), "--not-owl", str(first / "not_owls"), *args]) == 0
    assert "0 new clip(s)" in capsys.readouterr().out  # old ids still name these clips
    second = _batch(tmp_path / "round2", 2)
    assert build.main(["--owl", str(second / "owls"), "--not-owl", str(second / "not_owls"), *args]) == 0
    assert "6 new clip(s)" in capsys.readouterr().out
    ds = store.load()
    assert len(ds) == 12 and sum(is_legacy_clip_id(c) for c in ds["clip_id"]) == 6
    assert all(r["audio"]["sampling_rate"] == SAMPLE_RATE for r in ds)
