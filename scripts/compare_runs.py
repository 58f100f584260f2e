#!/usr/bin/env python
"""Does a change pass the written rule? Two leave-one-family-out runs compared fold by fold.

    python scripts/compare_runs.py out/lofo/cglide out/lofo/cglide-seed1      # the seed's noise, read as a trial
    python scripts/compare_runs.py out/lofo/cglide out/lofo/ens-seeds --folds additive sourcefilter

Reads each run's ``lofo.json`` (``scripts/evaluate_generalisation.py --tag ...``), pairs the folds both hold (or
``--folds``) and prints, per fold, the numbers the rule reads and then its verdict
(:mod:`owlfinder.evaluation.trial_rule`: one seed per arm, a 1-point bar; the two-seed, 3-point rule written for
the next trial is not coded yet): the first run is the shipped recipe, the second the change. Runs whose
thresholds were set another way (margin, calibration sites) are refused: recalibrate one with ``--reuse-models``
first.
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


def _protocol(fold: dict) -> tuple:
    cal = fold.get("calibration") or {}
    return cal.get("margin_logit"), cal.get("splits", ["calibration"])


def main(argv: list[str] | None = None) -> int:
    from owlfinder.evaluation.trial_rule import fold_numbers, verdict, verdict_lines
    from owlfinder.synth.families import FAMILIES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("shipped", type=Path, help="the shipped recipe's run folder (holds lofo.json)")
    p.add_argument("changed", type=Path, help="the changed recipe's run folder")
    p.add_argument("--folds", nargs="+", choices=list(FAMILIES), default=None, help="only these folds")
    args = p.parse_args(argv)
    runs = []
    for run in (args.shipped, args.changed):
        path = run / "lofo.json"
        try:
            runs.append(json.loads(path.read_text(encoding="utf-8"))["folds"])
        except (OSError, ValueError, KeyError) as e:
            print(f"error: {path}: not a leave-one-family-out result ({e})", file=sys.stderr)
            return 2
    folds = [f for f in FAMILIES if f in runs[0] and f in runs[1] and (args.folds is None or f in args.folds)]
    if not folds:
        print(f"error: {args.shipped} and {args.changed} hold no fold in common"
              + (f" among {', '.join(args.folds)}" if args.folds else ""), file=sys.stderr)
        return 2
    pairs = []
    for fold in folds:
        a, b = runs[0][fold], runs[1][fold]
        differ = [k for k, x, y in zip(PROTOCOL_KEYS, _protocol(a), _protocol(b), strict=True) if x != y]
        if differ:  # thresholds set another way: the numbers at the threshold cannot be paired
            print(f"error: fold {fold}: the two runs set their thresholds differently ({', '.join(differ)}); "
                  f"run one again with --reuse-models and the other's settings", file=sys.stderr)
            return 2
        try:
            pairs.append((fold_numbers(a), fold_numbers(b)))
        except (ValueError, KeyError) as e:
            print(f"error: fold {fold}: {e}", file=sys.stderr)
            return 2
    print(f"{args.shipped} (shipped) -> {args.changed} (changed)\n")
    print("| held-out family | test: recall at <= 1 FP/h | calibration sites: at <= 1 FP/h | training families, "
          "calibration sites | test: false events at cal. thr. | threshold |")
    print("|---|---|---|---|---|---|")
    for fold, (a, b) in zip(folds, pairs, strict=True):
        print(f"| {fold} | {a['test_recall_at_1_fph']:.3f} -> {b['test_recall_at_1_fph']:.3f} | "
              f"{a['calibration_recall_at_1_fph']:.3f} -> {b['calibration_recall_at_1_fph']:.3f} | "
              f"{a['training_recall_mean']:.3f} -> {b['training_recall_mean']:.3f} | "
              f"{a['test_false_positives']} -> {b['test_false_positives']} | {a['threshold']:.4f} -> {b['threshold']:.4f} |")
    print("\n" + "\n".join(verdict_lines(verdict(pairs))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
