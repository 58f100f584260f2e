"""Evaluation: event matching, false positives per hour, FP-rate thresholds, truth files, the CLI."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from owlfinder.detect.engine import Detection
from owlfinder.evaluation.report import (
    TruthError,
    count_events,
    evaluate_clips,
    evaluate_recordings,
    find_truth,
    fp_rate_upper_bound,
    match_events,
    read_truth,
    summarize_counts,
    threshold_for_fp_rate,
)
from owlfinder.train.clipsets import ClipSet
from owlfinder.train.modelcard import EVAL_BEGIN, EVAL_END

REPO = Path(__file__).resolve().parents[1]


def _det(scores, hop=2.5, win=5.0, threshold=0.5, file="x.wav") -> Detection:
    scores = np.asarray(scores, dtype=np.float32)
    starts = np.arange(len(scores)) * hop
    ends = starts + win
    return Detection(file=file, duration_s=float(ends[-1]), sample_rate=16000, model="m", threshold=threshold,
                     window_s=win, hop_s=hop, gap_s=0.7, min_duration_s=0.0, recorded_at=None, starts_s=starts,
                     ends_s=ends, scores=scores, events=[])


def test_match_events_overlap_rules():
    pred = [(0.0, 5.0), (10.0, 15.0), (20.0, 25.0)]
    truth = [(4.0, 6.0), (15.0, 16.0), (21.0, 22.0), (22.5, 23.0), (40.0, 41.0)]
    p, t = match_events(pred, truth)
    assert p.tolist() == [True, False, True]  # (10, 15) only touches (15, 16): no overlap
    assert t.tolist() == [True, False, True, True, False]
    p, t = match_events([], truth)
    assert len(p) == 0 and not t.any()


def test_count_events_and_fp_per_hour():
    # Windows every 2.5 s; positives at windows 1-2 (one event 2.5..10) and 10 (25..30).
    scores = np.zeros(1440)  # 1 hour of windows
    scores[[1, 2]] = 0.9
    scores[10] = 0.8
    det = _det(scores)
    c = count_events(det, [(4.0, 5.5), (100.0, 101.0)], snr_db=[5.0, 12.0])
    assert (c.n_events, c.n_true_positive_events, c.false_positives) == (2, 1, 1)
    assert (c.n_true, c.n_found) == (2, 1)
    s = summarize_counts([c])
    assert s["recall"] == 0.5 and s["precision"] == 0.5
    assert s["fp_per_hour"] == pytest.approx(1 / (det.duration_s / 3600))
    assert s["fp_per_hour_upper95"] > s["fp_per_hour"]
    assert fp_rate_upper_bound(0, 1.0) == pytest.approx(2.9957, abs=1e-3)  # the rule of three
    assert s["recall_by_snr"]["5..10 dB"]["recall"] == 1.0 and s["recall_by_snr"]["10..15 dB"]["recall"] == 0.0
    # A higher threshold drops the false positive, keeps the true one.
    assert count_events(det, [(4.0, 5.5)], threshold=0.85).false_positives == 0


def test_threshold_for_fp_rate():
    scores = np.full(1440, 0.1)
    scores[[5, 6]] = 0.95  # the owl
    scores[100] = 0.7  # false alarms
    scores[300] = 0.6
    scores[700] = 0.4
    det = _det(scores)
    truth = [(13.0, 14.0)]
    hours = det.duration_s / 3600
    assert threshold_for_fp_rate([det], [truth], 0.0) == pytest.approx(np.nextafter(np.float32(0.7), np.float32(2)))
    above = [float(np.nextafter(np.float32(v), np.float32(2))) for v in (0.6, 0.4)]
    assert threshold_for_fp_rate([det], [truth], 1.0 / hours) == pytest.approx(above[0])
    assert threshold_for_fp_rate([det], [truth], 2.0 / hours) == pytest.approx(above[1])
    assert threshold_for_fp_rate([det], [truth], 1000.0) == pytest.approx(0.1)


def test_evaluate_recordings_separates_negatives():
    night = np.full(200, 0.1)
    night[[4, 5]] = 0.9
    neg = np.full(200, 0.1)
    neg[50] = 0.8
    res = evaluate_recordings([_det(night), _det(neg, file="neg.wav")], [[(11.0, 12.0)], []],
                              negative=[False, True], target_fp_per_hour=0.0)
    model = res["thresholds"]["model"]
    assert model["with_truth"]["recall"] == 1.0 and model["with_truth"]["false_positives"] == 0
    assert model["negatives"]["false_positives"] == 1 and model["negatives"]["true_calls"] == 0
    strict = res["thresholds"]["fp_per_hour<=0"]
    assert strict["threshold"] > 0.8 and strict["all"]["false_positives"] == 0
    assert strict["with_truth"]["recall"] == 1.0


def test_read_truth_json_and_raven(tmp_path):
    audio = tmp_path / "night.flac"
    audio.write_bytes(b"")
    doc = {"events": [{"start_s": 30.0, "end_s": 31.5, "kind": "owl", "snr_db": 5},
                      {"start_s": 10.0, "end_s": 11.0, "kind": "boobook"},
                      {"start_s": 5.0, "end_s": 6.4, "kind": "owl"}]}
    (tmp_path / "night.truth.json").write_text(json.dumps(doc))
    assert find_truth(audio).name == "night.truth.json"
    assert read_truth(audio) == [(5.0, 6.4), (30.0, 31.5)]
    raven = tmp_path / "other.selections.txt"
    raven.write_text("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tSpecies\n"
                     "1\tSpectrogram 1\t1\t1.0\t2.0\tPowerful Owl\n"
                     "1\tWaveform 1\t1\t1.0\t2.0\tPowerful Owl\n"
                     "2\tSpectrogram 1\t1\t3.0\t4.0\tSouthern Boobook\n")
    assert read_truth(raven) == [(1.0, 2.0)]
    plain = tmp_path / "p.selections.txt"
    plain.write_text("Selection\tBegin Time (s)\tEnd Time (s)\n1\t7\t8\n")
    assert read_truth(plain) == [(7.0, 8.0)]
    with pytest.raises(TruthError, match="no ground truth"):
        read_truth(tmp_path / "missing.wav")
    bad = tmp_path / "bad.selections.txt"
    bad.write_text("a\tb\n1\t2\n")
    with pytest.raises(TruthError, match="not a Raven"):
        read_truth(bad)


class _FakeClf:
    threshold = 0.5
    sampling_rate = 16000
    window_samples = 16000

    def score(self, batch):
        return batch.max(axis=1)  # the clip's peak is its "owl score"


def test_evaluate_clips_counts_fp_per_reason():
    peaks = [0.9, 0.2, 0.8, 0.6, 0.1, 0.7]
    audio = np.zeros((6, 16000), np.int16)
    for i, p in enumerate(peaks):
        audio[i, 100] = int(p * 32767)
    labels = np.array([0, 0, 1, 1, 1, 1])  # 0 = owl
    reasons = [None, None, "koala", "koala", "wind/rain", None]
    clips = ClipSet(audio, labels, list("abcdef"), reasons, list("abcdef"))
    ev = evaluate_clips(_FakeClf(), clips, progress=False)
    assert ev.metrics["tp"] == 1 and ev.metrics["fp"] == 3 and ev.metrics["fn"] == 1
    assert ev.fp_by_reason == {"koala": 2, "unspecified": 1}
    assert ev.negatives_by_reason == {"koala": 2, "unspecified": 1, "wind/rain": 1}
    assert ev.to_dict()["false_positives_by_reason"]["koala"] == {"false_positives": 2, "clips": 2}


def test_evaluate_cli_end_to_end(tmp_path):
    from owlfinder.synth.backgrounds import make_clips
    from owlfinder.synth.nights import make_night

    from models import save_tiny  # tests/ is on sys.path (pytest rootdir conftest)

    model = save_tiny("sew-d", "owl_first", tmp_path / "model")
    (model / "README.md").write_text(f"# tiny\n\n{EVAL_BEGIN}\nnothing\n{EVAL_END}\n")
    make_night(tmp_path / "nights" / "n.flac", 40.0, sr=16000, channels=1, backgrounds=None, seed=1,
               calls_per_hour=300, confusers_per_hour=0)
    sf.write(tmp_path / "neg.wav", (np.random.default_rng(0).standard_normal(16000 * 12) * 0.01).astype(np.float32),
             16000)
    make_clips(tmp_path / "clips", 6, None, seed=2, progress=False)

    spec = importlib.util.spec_from_file_location("owl_script_evaluate", REPO / "scripts" / "evaluate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    out = tmp_path / "eval"
    rc = mod.main(["--model", str(model), "--clips", str(tmp_path / "clips"), "--recordings", str(tmp_path / "nights"),
                   "--negative-recordings", str(tmp_path / "neg.wav"), "--out", str(out), "--update-card", "--quiet"])
    assert rc == 0
    res = json.loads((out / "evaluation.json").read_text())
    rec = res["recordings"]["thresholds"]
    assert set(rec) == {"model", "fp_per_hour<=1"}
    assert rec["model"]["with_truth"]["true_calls"] >= 1 and rec["model"]["negatives"]["hours"] > 0
    assert res["clips"]["all"]["metrics"]["n_pos"] + res["clips"]["all"]["metrics"]["n_neg"] == 6
    assert (out / "report.txt").read_text().count("Recordings:") == 1
    assert "FP/h" in (model / "README.md").read_text() and "nothing" not in (model / "README.md").read_text()
    # A recording without ground truth is refused with one line.
    rc = mod.main(["--model", str(model), "--recordings", str(tmp_path / "neg.wav"), "--out", str(out), "--quiet"])
    assert rc == 2
