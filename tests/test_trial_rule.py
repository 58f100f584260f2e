"""The written rule that keeps or drops a trial (``owlfinder.evaluation.trial_rule``) and the script that applies it
to two leave-one-family-out runs (``scripts/compare_runs.py``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from owlfinder.evaluation.trial_rule import fold_numbers, mean_over_seeds, verdict, verdict_lines

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
    assert verdict_lines(gain)[-1].startswith("kept by the one-seed rule: yes (1 folds); it is superseded")
    with pytest.raises(ValueError, match="no folds"):
        verdict([])


def test_two_seeds_per_arm_raise_the_bar_to_three_points():
    shipped, changed = _m(0.80, 0.70, 0.80, 0), _m(0.82, 0.72, 0.80, 0)  # +2 points over both groups
    assert verdict([(shipped, changed)])["kept"]  # enough for the superseded one-seed rule
    two = verdict([(shipped, changed)], seeds=2)
    assert not two["kept"] and two["checks"]["recall_both_groups"] is False and two["rule"] == "two-seed"
    assert verdict([(shipped, _m(0.83, 0.73, 0.80, 0))], seeds=2)["kept"]  # exactly +3 points passes
    assert verdict_lines(two)[-1] == "kept by the rule: no (1 folds, 2 seeds per arm)"
    assert "needs +0.03" in verdict_lines(two)[0]
    # the seeds of an arm are averaged, false events too: half a false event more per seed is a rise
    arm = mean_over_seeds([_m(0.9, 0.8, 0.8, 0), _m(0.7, 0.6, 0.7, 1)])
    assert arm == pytest.approx({"test_recall_at_1_fph": 0.8, "calibration_recall_at_1_fph": 0.7,
                                 "training_recall_mean": 0.75, "test_false_positives": 0.5, "threshold": 0.99})
    assert not verdict([(_m(0.8, 0.7, 0.75, 0), arm)], seeds=2)["checks"]["test_false_events"]
    with pytest.raises(ValueError, match="no seeds"):
        mean_over_seeds([])


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


def _run(folder: Path, folds: dict, seed: int | None = None) -> Path:
    folder.mkdir(parents=True)
    record = {"folds": folds} | ({"recipe": {"seed": seed}} if seed is not None else {})
    (folder / "lofo.json").write_text(json.dumps(record))
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
    assert "kept by the one-seed rule: yes (1 folds)" in out  # +3 points over both groups
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


def test_compare_runs_averages_paired_seeds_and_refuses_unpaired_ones(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    import compare_runs

    def arm(name: str, tests: tuple[float, float], seeds: tuple[int, int] = (0, 1), machine: dict | None = None):
        return [str(_run(tmp_path / f"{name}{k}", {"fm": _fold(t, 0.7, {"additive": 0.8}, 0)
                                                   | ({"training": {"machine": machine}} if machine else {})}, seed=s))
                for k, (t, s) in enumerate(zip(tests, seeds, strict=True))]

    shipped = arm("a", (0.70, 0.90))  # the seeds' mean: 0.80 on the test sites
    changed = arm("b", (0.92, 0.80))  # 0.86: +3 points over both groups
    assert compare_runs.main(["--shipped", *shipped, "--changed", *changed]) == 0
    out = capsys.readouterr().out
    assert "| fm | 0.800 -> 0.860 |" in out and "means over 2 seeds" in out
    assert "note: fold fm: the runs did not all train on one recorded machine" in out  # these records name none
    assert out.rstrip().endswith("kept by the rule: yes (1 folds, 2 seeds per arm)")
    small = arm("c", (0.80, 0.84))  # +2 points: not enough with two seeds
    assert compare_runs.main(["--shipped", *shipped, "--changed", *small]) == 0
    assert capsys.readouterr().out.rstrip().endswith("kept by the rule: no (1 folds, 2 seeds per arm)")
    here = {"torch": "2.13.0", "cpu_capability": "AVX512", "threads": 2, "cpu": "AMD EPYC"}
    assert compare_runs.main(["--shipped", *arm("h", (0.7, 0.9), machine=here), "--changed",
                              *arm("i", (0.9, 0.9), machine=here)]) == 0
    assert "note:" not in capsys.readouterr().out  # one machine: the seeds are pairs
    fast = [str(_run(tmp_path / f"bf{k}", {"fm": _fold(0.9, 0.9, {"additive": 0.8}, 0)
                                          | {"training": {"machine": here, "recipe": {"seed": k, "precision": "bf16"}}}}))
            for k in (0, 1)]
    assert compare_runs.main(["--shipped", *arm("j", (0.7, 0.9), machine=here), "--changed", *fast]) == 0
    out = capsys.readouterr().out  # a bf16 arm against fp32 ones: the arms differ in precision too
    assert "note: the runs trained at different precisions (shipped fp32, changed bf16 in fm)" in out
    # a committed record (the lofo.json file itself) reads like its run folder
    files = [str(Path(r) / "lofo.json") for r in shipped]
    assert compare_runs.main(["--shipped", *files, "--changed", *changed]) == 0
    capsys.readouterr()
    other = arm("d", (0.9, 0.9), seeds=(0, 2))
    twice = arm("e", (0.9, 0.9), seeds=(1, 1))
    unknown = [str(_run(tmp_path / "f", {"fm": _fold(0.9, 0.9, {"additive": 0.8}, 0)})), changed[1]]
    # a fold's own training record names its seed (a tag's later folds may be trained with another)
    per_fold = str(_run(tmp_path / "g", {"fm": _fold(0.9, 0.9, {"additive": 0.8}, 0)
                                         | {"training": {"recipe": {"seed": 1}}}}, seed=0))
    assert compare_runs.main(["--shipped", *shipped, "--changed", changed[0], per_fold]) == 0
    capsys.readouterr()
    for args, says in ((["--shipped", *shipped, "--changed", *other], "not paired by seed"),
                       (["--shipped", *shipped, "--changed", *twice], "repeats a seed"),
                       (["--shipped", *shipped, "--changed", *unknown], "seed is not recorded"),
                       (["--shipped", *shipped, "--changed", changed[0]], "have 2 and 1 runs")):
        assert compare_runs.main(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and says in err, err
        assert "lofo.json" in err or "runs:" in err, err  # names the files, unless the arguments are at fault
    for args in ([shipped[0]], [shipped[0], changed[0], "--shipped", shipped[1]], []):
        with pytest.raises(SystemExit) as e:
            compare_runs.main(args)
        assert e.value.code == 2
    capsys.readouterr()
    sys.modules.pop("compare_runs", None)


def test_committed_run_records_are_read_by_the_rule(capsys, monkeypatch):
    """docs/runs/ holds run records for later sessions to compare against; each must read as the rule reads it."""
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    import compare_runs

    records = sorted((REPO / "docs" / "runs").glob("*.json"))
    assert records, "docs/runs/ holds no run record"
    for rec in records:
        assert rec.name in (REPO / "docs" / "runs" / "README.md").read_text(), f"{rec.name} is not described"
        lines, v = compare_runs.compare([rec], [rec])
        # all five folds, except a run still under way, which says so in its name; a run is no gain over itself
        assert (v["folds"] >= 1 if rec.stem.endswith("-partial") else v["folds"] == 5) and not v["kept"]
        assert all(0 <= x <= 1 for x in v["recall_both_groups"].values())
    sys.modules.pop("compare_runs", None)
