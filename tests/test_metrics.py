"""Metrics agree with scikit-learn; threshold calibration picks the right threshold (and falls back)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, fbeta_score, precision_score, recall_score

from owlfinder.evaluation.metrics import (
    binary_metrics,
    fbeta,
    make_compute_metrics,
    pr_curve,
    softmax_positive,
)
from owlfinder.train.calibration import (
    calibrate_threshold,
    read_calibration,
    threshold_sweep,
    write_calibration,
)


@pytest.fixture()
def scored():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    return y, s


@pytest.mark.parametrize("thr", [0.2, 0.5, 0.77])
def test_binary_metrics_match_sklearn(scored, thr):
    y, s = scored
    m = binary_metrics(y, s, thr)
    pred = (s >= thr).astype(int)
    assert m["precision"] == pytest.approx(precision_score(y, pred))
    assert m["recall"] == pytest.approx(recall_score(y, pred))
    assert m["f1"] == pytest.approx(f1_score(y, pred))
    assert m["f0.5"] == pytest.approx(fbeta_score(y, pred, beta=0.5))
    assert m["average_precision"] == pytest.approx(average_precision_score(y, s))
    assert m["tp"] + m["fp"] == pred.sum() and m["tp"] + m["fn"] == y.sum()
    assert fbeta(m["precision"], m["recall"], 0.5) == pytest.approx(m["f0.5"])


def test_binary_metrics_edge_cases():
    m = binary_metrics([0, 0, 0], [0.9, 0.1, 0.2], 0.5)
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and math.isnan(m["average_precision"])
    with pytest.raises(ValueError):
        binary_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError):
        binary_metrics([0, 1], [0.1])


def test_compute_metrics_for_trainer_uses_owl_index():
    from transformers import EvalPrediction

    # labels: 0 = owl, 1 = not_owl (the seed's order); logits favour the true class for 3 of 4.
    logits = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
    labels = np.array([0, 1, 1, 1])
    out = make_compute_metrics(positive_index=0)(EvalPrediction(predictions=logits, label_ids=labels))
    assert out["precision"] == pytest.approx(0.5) and out["recall"] == pytest.approx(1.0)
    assert set(out) >= {"precision", "recall", "f1", "f0.5", "average_precision"}
    p = softmax_positive(logits, 0)
    assert p[0] == pytest.approx(1 / (1 + math.exp(-2)))


def test_pr_curve_matches_average_precision(scored):
    y, s = scored
    c = pr_curve(y, s)
    assert c.average_precision == pytest.approx(average_precision_score(y, s))
    assert len(c.precision) == len(c.thresholds) == len(c.recall)
    d = c.to_dict(max_points=20)
    assert len(d["threshold"]) <= 20


def test_threshold_sweep_counts():
    thr, prec, rec, n = threshold_sweep([1, 0, 1, 1, 0], [0.9, 0.8, 0.7, 0.6, 0.1])
    assert thr.tolist() == [0.1, 0.6, 0.7, 0.8, 0.9]
    assert prec.tolist() == pytest.approx([0.6, 0.75, 2 / 3, 0.5, 1.0])
    assert rec.tolist() == pytest.approx([1.0, 1.0, 2 / 3, 1 / 3, 1 / 3])
    assert n.tolist() == [5, 4, 3, 2, 1]


def test_calibration_picks_lowest_threshold_reaching_target():
    y = [1, 0, 1, 1, 0]
    s = [0.9, 0.8, 0.7, 0.6, 0.1]
    cal = calibrate_threshold(y, s, target_precision=0.7)
    assert cal.reached and cal.method == "target_precision"
    assert cal.threshold == pytest.approx(0.6)  # precision 0.75 there; 0.1 gives only 0.6
    assert cal.precision == pytest.approx(0.75) and cal.recall == pytest.approx(1.0)
    cal = calibrate_threshold(y, s, target_precision=0.95)
    assert cal.threshold == pytest.approx(0.9) and cal.recall == pytest.approx(1 / 3)


def test_calibration_ties_are_all_in_or_all_out():
    cal = calibrate_threshold([1, 0, 1], [0.5, 0.5, 0.9], target_precision=0.9)
    assert cal.threshold == pytest.approx(0.9)


def test_calibration_falls_back_to_max_f05_when_unreachable():
    # The top score is a negative: precision never reaches 0.95.
    y = [0, 1, 1, 0, 1, 0]
    s = [0.95, 0.9, 0.8, 0.5, 0.4, 0.1]
    cal = calibrate_threshold(y, s, target_precision=0.95)
    assert not cal.reached and cal.method == "max_f0.5"
    assert "unreachable" in cal.message
    thr, prec, rec, _ = threshold_sweep(y, s)
    best = max(fbeta(p, r) for p, r in zip(prec, rec, strict=True))
    assert cal.f05 == pytest.approx(best)
    assert cal.threshold == pytest.approx(0.8)


def test_calibration_without_owls_keeps_default():
    cal = calibrate_threshold([0, 0], [0.2, 0.7])
    assert cal.method == "default" and cal.threshold == 0.5 and not cal.reached


def test_write_calibration_into_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    cal = calibrate_threshold([1, 0, 1], [0.8, 0.3, 0.6], 0.95)
    cfg = write_calibration(tmp_path, cal, window_s=5.0, extra={"validation": {"f0.5": np.float32(0.5)}})
    assert cfg["owl_threshold"] == pytest.approx(0.6)
    back = read_calibration(tmp_path)
    assert back["owl_window_s"] == 5.0 and back["owl_target_precision"] == 0.95
    assert back["owl_calibration"]["validation"]["f0.5"] == 0.5
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "whisper"
