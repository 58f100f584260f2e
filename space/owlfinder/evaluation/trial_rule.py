"""The rule that keeps or drops a change to the recipe or the scan, as code (docs/generalisation.md, "What these
trials say together" and "The second seed over five folds", each written before the trials it judges).

Paired with the shipped recipe over the same folds, and with the same seeds, a change is kept only if:

1. the held-out family's recall at <= 1 false event per hour, averaged over both groups of held-out sites
   (calibration and test), rises by at least 3 points (:data:`MIN_GAIN`);
2. the training families' recall on the calibration sites, at the calibrated threshold, falls by no more than 1
   point (:data:`MAX_TRAINING_LOSS`);
3. the false events at the calibrated threshold on the test sites do not rise.

Each arm is trained with at least two seeds (:data:`MIN_SEEDS`, paired: the same seeds in both arms) and the three
conditions read the means over the seeds: the seed alone moved the shipped recipe's five-fold mean by 3 points. With
one seed per arm, :func:`verdict` applies the rule the earlier trials were judged by (a 1-point bar,
:data:`ONE_SEED_MIN_GAIN`) and says that it is superseded.

- :func:`fold_numbers`: the four numbers the rule reads (and the threshold, for tables), from a fold's record
  in ``lofo.json``; :func:`mean_over_seeds` averages one fold's numbers over the seeds of an arm.
- :func:`verdict`: the rule over paired folds; :func:`verdict_lines` prints it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["MAX_TRAINING_LOSS", "MIN_GAIN", "MIN_SEEDS", "ONE_SEED_MIN_GAIN", "fold_numbers", "mean_over_seeds",
           "verdict", "verdict_lines"]

#: The least rise of recall at <= 1 FP/h over both held-out site groups, as a fraction, with two seeds per arm.
MIN_GAIN = 0.03
#: Seeds per arm the rule in force asks for.
MIN_SEEDS = 2
#: The superseded one-seed rule's bar (the trials up to the second seed, 2026-12-07, were judged by it).
ONE_SEED_MIN_GAIN = 0.01
#: The most the training families' recall on the calibration sites may fall, as a fraction.
MAX_TRAINING_LOSS = 0.01


def fold_numbers(fold: Mapping) -> dict:
    """What the rule reads from one fold's record in ``lofo.json`` (``scripts/evaluate_generalisation.py``).

    Returns:
        ``{"test_recall_at_1_fph", "calibration_recall_at_1_fph", "training_recall_mean", "test_false_positives",
        "threshold"}``.

    Raises:
        ValueError: a record without calibration-site numbers or training-family recall (a run older than them).
    """
    cal = fold.get("calibration_sites") or {}
    train = (fold.get("calibration") or {}).get("training_family_recall") or {}
    if "recall_at_1_fph" not in cal or not train:
        raise ValueError("the fold record lacks the calibration sites' recall or the training families' recall")
    return {"test_recall_at_1_fph": float(fold["recall_at_1_fph"]),
            "calibration_recall_at_1_fph": float(cal["recall_at_1_fph"]),
            "training_recall_mean": float(np.mean([v["recall"] for v in train.values()])),
            "test_false_positives": int(fold["false_positives"]), "threshold": float(fold["threshold"])}


def mean_over_seeds(numbers: Sequence[Mapping]) -> dict:
    """One fold's :func:`fold_numbers` from each seed of an arm, averaged (false events too: a mean per seed).

    Raises:
        ValueError: no numbers.
    """
    if not numbers:
        raise ValueError("no seeds to average")
    return {k: float(np.mean([n[k] for n in numbers])) for k in numbers[0]}


def verdict(pairs: Sequence[tuple[Mapping, Mapping]], *, seeds: int = 1) -> dict:
    """The rule over ``(shipped, changed)`` pairs of :func:`fold_numbers` (one pair per fold).

    Args:
        pairs: per fold, the two arms' numbers; with several seeds per arm, each side is :func:`mean_over_seeds`.
        seeds: seeds per arm (paired). Fewer than :data:`MIN_SEEDS` applies the superseded one-seed rule.

    Returns:
        ``{"folds", "seeds", "min_gain", "rule", "recall_both_groups": {"shipped", "changed"},
        "training_recall": {...}, "test_false_positives": {...}, "checks": {"recall_both_groups",
        "training_families", "test_false_events"}, "kept"}``; recalls are means over the folds, false events
        the sum over the folds (a mean over the seeds).
    """
    if not pairs:
        raise ValueError("no folds to compare")
    if seeds < 1:
        raise ValueError(f"seeds per arm must be at least 1, not {seeds}")
    two = seeds >= MIN_SEEDS
    min_gain = MIN_GAIN if two else ONE_SEED_MIN_GAIN
    sides = {"shipped": [a for a, _ in pairs], "changed": [b for _, b in pairs]}
    both = {k: float(np.mean([(m["test_recall_at_1_fph"] + m["calibration_recall_at_1_fph"]) / 2 for m in v]))
            for k, v in sides.items()}
    train = {k: float(np.mean([m["training_recall_mean"] for m in v])) for k, v in sides.items()}
    fps = {k: float(sum(m["test_false_positives"] for m in v)) for k, v in sides.items()}
    eps = 1e-9  # a gain of exactly the bar passes
    checks = {"recall_both_groups": both["changed"] - both["shipped"] >= min_gain - eps,
              "training_families": train["changed"] - train["shipped"] >= -MAX_TRAINING_LOSS - eps,
              "test_false_events": fps["changed"] <= fps["shipped"] + eps}
    return {"folds": len(pairs), "seeds": seeds, "min_gain": min_gain,
            "rule": "two-seed" if two else "one-seed (superseded)", "recall_both_groups": both,
            "training_recall": train, "test_false_positives": fps, "checks": checks, "kept": all(checks.values())}


def verdict_lines(v: Mapping) -> list[str]:
    """The verdict as the lines the scripts print."""
    c = v["checks"]

    def ok(name: str) -> str:
        return "pass" if c[name] else "fail"

    fps = v["test_false_positives"]
    lines = [f"(1) recall at <= 1 FP/h, both held-out site groups: {v['recall_both_groups']['shipped']:.4f} -> "
             f"{v['recall_both_groups']['changed']:.4f} ({ok('recall_both_groups')}, needs +{v['min_gain']:g})",
             f"(2) training families, calibration sites: {v['training_recall']['shipped']:.4f} -> "
             f"{v['training_recall']['changed']:.4f} ({ok('training_families')}, may fall {MAX_TRAINING_LOSS:g})",
             f"(3) false events at the calibrated threshold, test sites: {fps['shipped']:g} -> {fps['changed']:g} "
             f"({ok('test_false_events')}, may not rise)"]
    if v["seeds"] >= MIN_SEEDS:
        lines.append(f"kept by the rule: {'yes' if v['kept'] else 'no'} ({v['folds']} folds, {v['seeds']} seeds "
                     "per arm)")
    else:
        lines.append(f"kept by the one-seed rule: {'yes' if v['kept'] else 'no'} ({v['folds']} folds); it is "
                     f"superseded: the rule in force asks for {MIN_SEEDS} seeds per arm and +{MIN_GAIN:g}")
    return lines
