#!/usr/bin/env python
"""Does a change pass the written rule? Leave-one-family-out runs of two arms compared fold by fold.

    python scripts/compare_runs.py --shipped out/lofo/cglide out/lofo/cglide-seed1 \\
                                   --changed out/lofo/try out/lofo/try-seed1          # the rule in force: 2 seeds
    python scripts/compare_runs.py out/lofo/cglide out/lofo/cglide-seed1              # one run each (superseded rule)
    python scripts/compare_runs.py --shipped docs/runs/cglide-seed0.json ... --changed ...   # a committed record

Reads each run's ``lofo.json`` (``scripts/evaluate_generalisation.py --tag ...``; a run folder or the file itself,
such as a record committed under ``docs/runs/``), pairs the folds every run holds (or ``--folds``) and prints, per
fold, the numbers the rule reads, averaged over each arm's seeds, then its verdict
(:mod:`owlfinder.evaluation.trial_rule`): two seeds per arm, the same seeds in both, a 3-point bar. With one run
per arm it applies the superseded one-seed rule and says so. Runs whose thresholds were set another way (margin,
calibration sites) are refused: recalibrate one with ``--reuse-models`` first. A seed repeats bit for bit only on one
kind of machine (``training.machine`` in each fold's record): where the runs did not all train on one, the script
says so, and the seeds are draws of each arm rather than pairs. It says so too where the arms trained at different
precisions (``--precision``): a trial of another change must train both arms alike.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: What must match for two folds' numbers at the calibrated threshold to be paired: how the threshold was set. The
#: scan (the description check, its double-hoot demotion) may differ: each run calibrates under its own, and a change
#: to it is a trial like any other.
PROTOCOL_KEYS = ("margin_logit", "calibration splits")


class RunError(ValueError):
    """A run that cannot be read or paired; its message is the one line the script prints."""


def _protocol(fold: dict) -> tuple:
    cal = fold.get("calibration") or {}
    return cal.get("margin_logit"), tuple(cal.get("splits", ["calibration"]))


def _load(run: Path) -> dict:
    path = run if run.suffix == ".json" else run / "lofo.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record.get("folds"), dict):
            raise KeyError("folds")
    except (OSError, ValueError, KeyError, AttributeError) as e:
        raise RunError(f"{path}: not a leave-one-family-out result ({e})") from e
    return {"path": path, "folds": record["folds"], "recipe": record.get("recipe") or {}}


def _seed(run: dict, fold: str) -> int | None:
    """The seed that trained a fold: its own training record's (runs of one tag may add folds with other seeds),
    else the run's; None where unknown or where the fold chose among seeds."""
    rec = run["folds"][fold]
    if rec.get("seed_choice"):
        return None
    seed = ((rec.get("training") or {}).get("recipe") or {}).get("seed")
    return seed if seed is not None else run["recipe"].get("seed")


def _precision(run: dict, fold: str) -> str:
    """The precision a fold trained at (``RecipeConfig.precision``; records before it existed: fp32)."""
    rec = run["folds"][fold]
    return ((rec.get("training") or {}).get("recipe") or {}).get("precision") or run["recipe"].get("precision", "fp32")


def _check_seeds(shipped: list[dict], changed: list[dict], fold: str) -> None:
    """Two seeds or more per arm must be paired: known, distinct within an arm, the same in both arms."""
    arms = {}
    for name, arm in (("shipped", shipped), ("changed", changed)):
        seeds = [_seed(r, fold) for r in arm]
        for run, seed in zip(arm, seeds, strict=True):
            if seed is None:
                raise RunError(f"{run['path']}: fold {fold}'s seed is not recorded (or it chose among seeds), so it "
                               "cannot be paired by seed")
        if len(set(seeds)) != len(seeds):
            raise RunError(f"fold {fold}: the {name} arm repeats a seed ({', '.join(map(str, seeds))} in "
                           f"{', '.join(str(r['path']) for r in arm)}): each run must be another seed")
        arms[name] = sorted(seeds)
    if arms["shipped"] != arms["changed"]:
        raise RunError(f"fold {fold}: the arms are not paired by seed: shipped {arms['shipped']}, changed "
                       f"{arms['changed']} ({', '.join(str(r['path']) for r in changed)})")


def compare(shipped: list[Path], changed: list[Path], folds: list[str] | None = None) -> tuple[list[str], dict]:
    """The per-fold table's lines and the verdict. Raises :class:`RunError` with a one-line message."""
    from owlfinder.evaluation.trial_rule import fold_numbers, mean_over_seeds, verdict
    from owlfinder.synth.families import FAMILIES

    if len(shipped) != len(changed):
        raise RunError(f"the arms have {len(shipped)} and {len(changed)} runs: pair them seed by seed")
    arms = [[_load(r) for r in shipped], [_load(r) for r in changed]]
    seeds = len(shipped)
    runs = arms[0] + arms[1]
    common = [f for f in FAMILIES if all(f in r["folds"] for r in runs) and (folds is None or f in folds)]
    if not common:
        raise RunError(f"{', '.join(str(r['path']) for r in runs)} hold no fold in common"
                       + (f" among {', '.join(folds)}" if folds else ""))
    pairs = []
    for fold in common:
        if seeds > 1:
            _check_seeds(*arms, fold)
        first = _protocol(runs[0]["folds"][fold])
        differ = sorted({k for r in runs[1:] for k, x, y in zip(PROTOCOL_KEYS, first, _protocol(r["folds"][fold]),
                                                                 strict=True) if x != y})
        if differ:  # thresholds set another way: the numbers at the threshold cannot be paired
            raise RunError(f"fold {fold}: the runs set their thresholds differently ({', '.join(differ)}); run one "
                           "again with --reuse-models and the other's settings")
        try:
            pairs.append(tuple(mean_over_seeds([fold_numbers(r["folds"][fold]) for r in arm]) for arm in arms))
        except (ValueError, KeyError) as e:
            raise RunError(f"fold {fold}: {e}") from e
    machines = {fold: {json.dumps((r["folds"][fold].get("training") or {}).get("machine"), sort_keys=True)
                       for r in runs} for fold in common}
    apart = [fold for fold, m in machines.items() if len(m) > 1 or "null" in m]
    precisions = {fold: [sorted({_precision(r, fold) for r in arm}) for arm in arms] for fold in common}
    mixed = [fold for fold, (a, b) in precisions.items() if len(a) > 1 or len(b) > 1 or a != b]
    lines = ["| held-out family | test: recall at <= 1 FP/h | calibration sites: at <= 1 FP/h | training families, "
             "calibration sites | test: false events at cal. thr. | threshold |", "|---|---|---|---|---|---|"]
    for fold, (a, b) in zip(common, pairs, strict=True):
        lines.append(f"| {fold} | {a['test_recall_at_1_fph']:.3f} -> {b['test_recall_at_1_fph']:.3f} | "
                     f"{a['calibration_recall_at_1_fph']:.3f} -> {b['calibration_recall_at_1_fph']:.3f} | "
                     f"{a['training_recall_mean']:.3f} -> {b['training_recall_mean']:.3f} | "
                     f"{a['test_false_positives']:g} -> {b['test_false_positives']:g} | "
                     f"{a['threshold']:.4f} -> {b['threshold']:.4f} |")
    if apart:  # the rule still reads them as draws of each arm; the seeds are not paired bit for bit
        lines += ["", f"note: fold{'s' if len(apart) > 1 else ''} {', '.join(apart)}: the runs did not all train on "
                  "one recorded machine (torch, CPU kernels, threads), so a seed there is not the same draw in both "
                  "arms"]
    if mixed:  # a trial of some other change must train both arms at one precision, or it measures that too
        groups: dict[str, list[str]] = {}
        for fold in mixed:
            a, b = precisions[fold]
            groups.setdefault(f"shipped {'/'.join(a)}, changed {'/'.join(b)}", []).append(fold)
        lines += ["", "note: the runs trained at different precisions ("
                  + "; ".join(f"{how} in {', '.join(folds)}" for how, folds in groups.items())
                  + "), so the arms differ in that too"]
    return lines, verdict(pairs, seeds=seeds)


def main(argv: list[str] | None = None) -> int:
    from owlfinder.evaluation.trial_rule import verdict_lines
    from owlfinder.synth.families import FAMILIES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", type=Path, nargs="*", metavar="RUN",
                   help="one run per arm: SHIPPED CHANGED (the superseded one-seed rule)")
    p.add_argument("--shipped", type=Path, nargs="+", default=None,
                   help="the shipped recipe's runs, one per seed (folders holding lofo.json, or the files)")
    p.add_argument("--changed", type=Path, nargs="+", default=None, help="the changed recipe's runs, the same seeds")
    p.add_argument("--folds", nargs="+", choices=list(FAMILIES), default=None, help="only these folds")
    args = p.parse_args(argv)
    if args.runs and (args.shipped or args.changed):
        p.error("give either two runs (SHIPPED CHANGED) or --shipped ... --changed ..., not both")
    if args.runs:
        if len(args.runs) != 2:
            p.error(f"two runs, SHIPPED and CHANGED, not {len(args.runs)}")
        shipped, changed = [args.runs[0]], [args.runs[1]]
    elif args.shipped and args.changed:
        shipped, changed = args.shipped, args.changed
    else:
        p.error("give the runs to compare: SHIPPED CHANGED, or --shipped ... --changed ...")
    try:
        lines, v = compare(shipped, changed, args.folds)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    arm = " + ".join
    print(f"{arm(map(str, shipped))} (shipped) -> {arm(map(str, changed))} (changed)"
          + (f"; means over {len(shipped)} seeds" if len(shipped) > 1 else "") + "\n")
    print("\n".join(lines))
    print("\n" + "\n".join(verdict_lines(v)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
