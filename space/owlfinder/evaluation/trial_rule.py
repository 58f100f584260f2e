"""The rule that keeps or drops a change to the recipe or the scan, as code (docs/generalisation.md, "What these
trials say together", written before the trials it judged: one seed per arm, a 1-point bar).

A second seed of the shipped recipe then moved the five-fold mean by 3 points, so the rule written for the next trial
asks for two seeds per arm and a 3-point rise ("The second seed over five folds"); that rule is not coded here yet.

Paired with the shipped recipe over the same folds, a change is kept only if:

1. the held-out family's recall at <= 1 false event per hour, averaged over both groups of held-out sites
   (calibration and test), rises by at least 1 point (:data:`MIN_GAIN`);
2. the training families' recall on the calibration sites, at the calibrated threshold, falls by no more than 1
   point (:data:`MAX_TRAINING_LOSS`);
3. the false events at the calibrated threshold on the test sites do not rise.

- :func:`fold_numbers`: the four numbers the rule reads (and the threshold, for tables), from a fold's record
  in ``lofo.json``.
- :func:`verdict`: the rule over paired folds; :func:`verdict_lines` prints it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["MAX_TRAINING_LOSS", "MIN_GAIN", "fold_numbers", "verdict", "verdict_lines"]

#: The least rise of recall at <= 1 FP/h over both held-out site groups, as a fraction.
MIN_GAIN = 0.01
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


def verdict(pairs: Sequence[tuple[Mapping, Mapping]]) -> dict:
    """The rule over ``(shipped, changed)`` pairs of :func:`fold_numbers` (one pair per fold).

    Returns:
        ``{"folds", "recall_both_groups": {"shipped", "changed"}, "training_recall": {...},
        "test_false_positives": {...}, "checks": {"recall_both_groups", "training_families", "test_false_events"},
        "kept"}``; recalls are means over the folds.
    """
    if not pairs:
        raise ValueError("no folds to compare")
    sides = {"shipped": [a for a, _ in pairs], "changed": [b for _, b in pairs]}
    both = {k: float(np.mean([(m["test_recall_at_1_fph"] + m["calibration_recall_at_1_fph"]) / 2 for m in v]))
            for k, v in sides.items()}
    train = {k: float(np.mean([m["training_recall_mean"] for m in v])) for k, v in sides.items()}
    fps = {k: int(sum(m["test_false_positives"] for m in v)) for k, v in sides.items()}
    eps = 1e-9  # a gain of exactly one point passes
    checks = {"recall_both_groups": both["changed"] - both["shipped"] >= MIN_GAIN - eps,
              "training_families": train["changed"] - train["shipped"] >= -MAX_TRAINING_LOSS - eps,
              "test_false_events": fps["changed"] <= fps["shipped"]}
    return {"folds": len(pairs), "recall_both_groups": both, "training_recall": train, "test_false_positives": fps,
            "checks": checks, "kept": all(checks.values())}


def verdict_lines(v: Mapping) -> list[str]:
    """The verdict as the lines the scripts print."""
    c = v["checks"]

    def ok(name: str) -> str:
        return "pass" if c[name] else "fail"

    return [f"(1) recall at <= 1 FP/h, both held-out site groups: {v['recall_both_groups']['shipped']:.4f} -> "
            f"{v['recall_both_groups']['changed']:.4f} ({ok('recall_both_groups')}, needs +{MIN_GAIN:g})",
            f"(2) training families, calibration sites: {v['training_recall']['shipped']:.4f} -> "
            f"{v['training_recall']['changed']:.4f} ({ok('training_families')}, may fall {MAX_TRAINING_LOSS:g})",
            f"(3) false events at the calibrated threshold, test sites: {v['test_false_positives']['shipped']} -> "
            f"{v['test_false_positives']['changed']} ({ok('test_false_events')}, may not rise)",
            f"kept by the rule: {'yes' if v['kept'] else 'no'} ({v['folds']} folds)"]
