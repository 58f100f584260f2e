"""The written rule that keeps or drops a trial (``owlfinder.evaluation.trial_rule``) and the script that applies it
to two leave-one-family-out runs (``scripts/compare_runs.py``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from owlfinder.evaluation.trial_rule import fold_numbers, verdict, verdict_lines

REPO = Path(__file__).resolve().parents[1]


def _m(test: float, cal: float, train: float, fp: int) -> dict:
    return {"test_recall_at_1_fph": test, "calibration_recall_at_1_fph": cal, "training_recall_mean": train,
            "test_false_positives": fp, "threshold": 0.99}


def test_the_verdict_reads_each_condition_of_the_rule():
    gain = verdict([(_m(0.80, 0.70, 0.80, 0), _m(0.82, 0.70, 0.795, 0))])
    assert gain["kept"] and gain["recall_both_groups"] == pytest.approx({"shipped": 0.75, "changed": 0.76})
    # more recall everywhere, but one more false event at the threshold
    fired = verdict([(_m(0.80, 0.70, 0.80, 0), _m(0.90, 0.80, 0.85, 1))])
    assert fired["checks"] == {"recall_both_groups": True, "training_families": True, "test_false_events": False}
    assert not fired["kept"]
    costly = verdict([(_m(0.80, 0.70, 0.80, 0), _m(0.90, 0.80, 0.78, 0))])  # training families -2 points
    assert not costly["kept"] and not costly["checks"]["training_families"]
    # paired over folds: one fold's gain is another's loss
    flat = verdict([(_m(0.8, 0.8, 0.8, 0), _m(0.9, 0.9, 0.8, 0)), (_m(0.8, 0.8, 0.8, 1), _m(0.7, 0.7, 0.8, 1))])
    assert flat["folds"] == 2 and not flat["checks"]["recall_both_groups"] and flat["test_false_positives"] == {
        "shipped": 1, "changed": 1}
    assert verdict_lines(gain)[-1] == "kept by the rule: yes (1 folds)"
    with pytest.raises(ValueError, match="no folds"):
        verdict([])


def _fold(test: float, cal: float, train: dict[str, float], fp: int, margin: float = 1.0) -> dict:
    return {"threshold": 0.99, "recall_at_1_fph": test, "false_positives": fp,
            "calibration_sites": {"recall_at_1_fph": cal},
            "calibration": {"margin_logit": margin, "splits": ["calibration"],
                            "training_family_recall": {f: {"recall": r, "calls": 10} for f, r in train.items()}},
            "description_check": True, "description_unpaired_logit": None}


def test_fold_numbers_come_from_a_lofo_record_and_old_records_are_refused():
    n = fold_numbers(_fold(0.9, 0.8, {"additive": 0.7, "fm": 0.9}, 2))
    assert n == {"test_recall_at_1_fph": 0.9, "calibration_recall_at_1_fph": 0.8, "training_recall_mean": 0.8,
                 "test_false_positives": 2, "threshold": 0.99}
    old = _fold(0.9, 0.8, {}, 0)
    with pytest.raises(ValueError, match="training families"):
        fold_numbers(old)


def _run(folder: Path, folds: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "lofo.json").write_text(json.dumps({"folds": folds}))
    return folder


def test_compare_runs_pairs_common_folds_and_refuses_what_cannot_be_paired(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    import compare_runs

    shipped = _run(tmp_path / "a", {"fm": _fold(0.8, 0.7, {"additive": 0.8}, 0),
                                    "additive": _fold(0.8, 0.8, {"fm": 0.8}, 0)})
    changed = _run(tmp_path / "b", {"fm": _fold(0.84, 0.72, {"additive": 0.8}, 0),
                                    "syrinx": _fold(0.1, 0.1, {"fm": 0.1}, 9)})
    assert compare_runs.main([str(shipped), str(changed)]) == 0
    out = capsys.readouterr().out
    assert "| fm | 0.800 -> 0.840 |" in out and "additive |" not in out and "syrinx" not in out  # common folds only
    assert out.rstrip().endswith("kept by the rule: yes (1 folds)")  # +3 points over both groups
    for args, says in (([str(shipped), str(tmp_path / "missing")], "not a leave-one-family-out result"),
                       ([str(shipped), str(changed), "--folds", "additive"], "no fold in common among additive")):
        assert compare_runs.main(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and says in err
    half = _run(tmp_path / "c", {"fm": _fold(0.9, 0.9, {"additive": 0.9}, 0, margin=0.5)})
    assert compare_runs.main([str(shipped), str(half)]) == 2  # thresholds set with another margin
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "fold fm" in err and "margin_logit" in err
    sys.modules.pop("compare_runs", None)
