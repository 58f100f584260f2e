"""Speed views at test time (``owlfinder.evaluation.speed_views``, ``scripts/evaluate_speed_views.py``): a window
played faster is higher and shorter and stays centred; candidate windows score the mean logit of their views;
the fold measurement end to end on a toy folder, and its refusals."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from owlfinder.detect.engine import Detection
from owlfinder.evaluation.speed_views import rescore_with_speed_views, speed_view

REPO = Path(__file__).resolve().parents[1]
SR = 16000


def _peak_hz(y: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / SR)[np.argmax(spec)])


def _burst(hz: float = 400.0, at_s: float = 1.5, dur_s: float = 0.4, total_s: float = 3.0) -> np.ndarray:
    y = np.zeros(int(total_s * SR), np.float32)
    t = np.arange(int(dur_s * SR)) / SR
    i = int((at_s - dur_s / 2) * SR)
    y[i:i + len(t)] = np.sin(2 * np.pi * hz * t) * np.hanning(len(t))
    return y


def _centre_of_energy(y: np.ndarray) -> float:
    e = y.astype(np.float64) ** 2
    return float((np.arange(len(y)) * e).sum() / e.sum())


def test_a_faster_view_is_higher_and_shorter_and_stays_centred():
    y, n = _burst(), SR
    plain = speed_view(y, SR, 1.0, 1.5, n)
    assert np.array_equal(plain, y[int(1.0 * SR):int(2.0 * SR)])  # factor 1: the window itself
    fast, slow = speed_view(y, SR, 1.06, 1.5, n), speed_view(y, SR, 0.94, 1.5, n)
    assert _peak_hz(fast) == pytest.approx(424, abs=4) and _peak_hz(slow) == pytest.approx(376, abs=4)
    for v in (plain, fast, slow):  # the burst that was at the window's centre is still there
        assert _centre_of_energy(v) == pytest.approx(n / 2, abs=0.005 * SR)
    width = [np.count_nonzero(np.abs(v) > 0.05) for v in (slow, plain, fast)]
    assert width[0] > width[1] > width[2]  # slower is longer
    edge = speed_view(y, SR, 0.9, 0.2, n)  # near the start: zeros where there is no audio
    assert len(edge) == n and not edge[: int(0.25 * SR)].any()
    with pytest.raises(ValueError, match="positive"):
        speed_view(y, SR, 0.0, 1.5, n)


def _det(scores: list[float]) -> Detection:
    s = np.array(scores, dtype=np.float32)
    starts = np.arange(len(s)) * 2.5
    return Detection(file="x", duration_s=float(starts[-1] + 5.0), sample_rate=SR, model="m", threshold=0.8,
                     window_s=5.0, hop_s=2.5, gap_s=0.7, min_duration_s=0.0, recorded_at=None, starts_s=starts,
                     ends_s=starts + 5.0, scores=s, events=[]).rethreshold(0.8)


def test_candidates_score_the_mean_logit_of_their_views_and_the_rest_are_left_alone():
    recording = np.tile(_burst(400.0, 1.5, 2.0, 3.0), 5)  # 15 s of a 400 Hz tone, a burst every 3 s

    def score(batch: np.ndarray) -> np.ndarray:  # owl-ness follows the pitch: 400 Hz is a coin toss
        return np.array([1 / (1 + math.exp(-(_peak_hz(w) - 400) / 10)) for w in batch])

    seen = []

    def read(t0: float, t1: float) -> np.ndarray:
        seen.append((t0, t1))
        return recording[int(t0 * SR):int(t1 * SR)]

    det = _det([0.2, 0.9, 0.6, 0.3])
    out, n = rescore_with_speed_views(det, score, read, SR, 5 * SR, (0.94, 1.06), floor=0.5)
    assert n == 2 and len(seen) == 2  # only the windows at or above the floor are read and viewed
    assert seen[0] == pytest.approx((2.5 - 0.8, 7.5 + 0.8))
    # the two views sit 24 Hz either side of 400 Hz: their logits (-2.4, +2.4) cancel, the plain one is divided by 3
    assert out.scores[1] == pytest.approx(1 / (1 + math.exp(-math.log(9) / 3)), abs=0.01)
    assert out.scores[2] == pytest.approx(1 / (1 + math.exp(-math.log(1.5) / 3)), abs=0.01)
    assert out.scores[0] == pytest.approx(0.2) and out.scores[3] == pytest.approx(0.3)
    assert det.scores[1] == pytest.approx(0.9)  # the input is not changed
    assert out.threshold == 0.8 and not out.events  # 0.9 fell to 0.67: below the threshold, no event left
    same, none = rescore_with_speed_views(det, score, read, SR, 5 * SR, (), floor=0.5)
    assert same is det and none == 0


def _fold_model(root: Path, families: list[str], negatives: list[str] | None) -> Path:
    from test_generalisation import save_toy_owlnet

    model = save_toy_owlnet(root)
    if negatives is not None:
        (model / "training.json").write_text(json.dumps({"families": families,
                                                         "training": {"background_splits": negatives}}))
    return model


def test_the_fold_measurement_end_to_end_and_its_refusals(tmp_path, capsys, monkeypatch):
    from test_generalisation import _toy_shared

    shared = _toy_shared(tmp_path / "shared")  # one training, one calibration, one test site
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    import evaluate_speed_views as script

    out, work = tmp_path / "out", tmp_path / "work"
    base = ["--shared", str(shared), "--out", str(out), "--work", str(work)]
    refused = ((tmp_path / "missing", "not a model folder"),
               (_fold_model(tmp_path / "unknown", ["additive"], None), "does not record which sites"),
               (_fold_model(tmp_path / "starter", ["additive"], ["train", "test"]), "trained on held-out"),
               (_fold_model(tmp_path / "all", ["additive", "sourcefilter", "contours", "fm", "syrinx"], ["train"]),
                "a family it never trained on"))
    capsys.readouterr()
    for model, says in refused:
        rc = script.main(["--models", str(model), *base])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and says in err and str(model) in err
    assert not out.exists()

    model = _fold_model(tmp_path / "fold", ["additive"], ["train"])
    # views played at speed 1 are the windows themselves: every number must come out as without views
    rc = script.main(["--models", str(model), "--factors", "1", *base])
    assert rc == 0
    result = json.loads((out / "speed-views.json").read_text())
    (row,) = result["rows"]
    assert row["held_out"] == "sourcefilter" and row["training_families"] == ["additive"]
    plain, views = row["plain"], row["views"]
    assert views["threshold"] == pytest.approx(plain["threshold"], rel=1e-4)
    for key in ("test_recall_at_1_fph", "calibration_recall_at_1_fph", "test_recall", "test_false_positives",
                "training_recall_mean"):
        assert views[key] == pytest.approx(plain[key]), key
    assert result["verdict"]["checks"] == {"recall_both_groups": False, "training_families": True,
                                           "test_false_events": True}
    assert not result["verdict"]["kept"]  # no change is no gain
    md = (out / "speed-views.md").read_text()
    assert md.startswith("Speed views") and "kept by the one-seed rule: no (1 folds); it is superseded" in md
    assert sorted(p.name for p in work.iterdir() if p.is_dir()) == [
        "calibration_additive", "calibration_sourcefilter", "test_sourcefilter"]
    rc = script.main(["--models", str(model), "--factors", "0", *base])
    assert rc == 2 and "positive" in capsys.readouterr().err
    sys.modules.pop("evaluate_speed_views", None)
