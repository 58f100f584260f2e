"""Binary detection metrics for the owl class, computed with scikit-learn (no ``evaluate`` Hub downloads).

The owl is the *positive* class throughout: ``precision`` is the share of clips called owl that are owls,
``recall`` the share of owls that are found. ``F0.5`` weighs precision twice as much as recall (a survey
team would rather check fewer false alarms than find every last call); ``average_precision`` summarises the
precision-recall curve over all thresholds, so it does not depend on the threshold at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    fbeta_score,
    precision_recall_curve,
    precision_score,
    recall_score,
)

__all__ = [
    "METRIC_KEYS",
    "PRCurve",
    "binary_metrics",
    "fbeta",
    "make_compute_metrics",
    "pr_curve",
    "softmax_positive",
]

#: The keys every metrics dict carries (Trainer prefixes them with ``eval_``).
METRIC_KEYS = ("precision", "recall", "f1", "f0.5", "average_precision")


def fbeta(precision: float, recall: float, beta: float = 0.5) -> float:
    """F-beta from precision and recall (0 when both are 0)."""
    b2 = beta * beta
    denom = b2 * precision + recall
    return float((1 + b2) * precision * recall / denom) if denom > 0 else 0.0


def _as_binary(y_true) -> np.ndarray:
    y = np.asarray(y_true).astype(np.int64).reshape(-1)
    if len(y) and not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must hold 0/1 values (1 = owl)")
    return y


def binary_metrics(y_true, scores, threshold: float = 0.5) -> dict[str, float | int]:
    """Precision, recall, F1, F0.5, average precision and confusion counts for owl scores.

    Args:
        y_true: 1 for owl, 0 for not owl.
        scores: owl probability (or any score where higher means "more owl").
        threshold: a clip is called owl when ``score >= threshold`` (the engine's rule).

    Returns:
        ``precision, recall, f1, f0.5, average_precision`` (floats; AP is ``nan`` without positives) and
        ``tp, fp, fn, tn, n_pos, n_neg, threshold``.
    """
    y = _as_binary(y_true)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(s) != len(y):
        raise ValueError(f"{len(y)} labels but {len(s)} scores")
    pred = (s >= threshold).astype(np.int64)
    if len(y):
        tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, pred, labels=[0, 1]).ravel())
    else:
        tn = fp = fn = tp = 0
    out: dict[str, float | int] = {
        "precision": float(precision_score(y, pred, zero_division=0)) if len(y) else 0.0,
        "recall": float(recall_score(y, pred, zero_division=0)) if len(y) else 0.0,
        "f1": float(fbeta_score(y, pred, beta=1.0, zero_division=0)) if len(y) else 0.0,
        "f0.5": float(fbeta_score(y, pred, beta=0.5, zero_division=0)) if len(y) else 0.0,
        "average_precision": float(average_precision_score(y, s)) if y.any() else float("nan"),
    }
    out.update(tp=tp, fp=fp, fn=fn, tn=tn, n_pos=int(y.sum()), n_neg=int(len(y) - y.sum()),
               threshold=float(threshold))
    return out


@dataclass
class PRCurve:
    """A precision-recall curve: ``precision[i]``, ``recall[i]`` when calling owl at ``score >= thresholds[i]``."""

    precision: np.ndarray
    recall: np.ndarray
    thresholds: np.ndarray
    average_precision: float

    def to_dict(self, max_points: int = 200) -> dict:
        """JSON-friendly, thinned to at most ``max_points`` points."""
        idx = np.unique(np.linspace(0, len(self.thresholds) - 1, min(max_points, len(self.thresholds))).astype(int))
        return {
            "average_precision": self.average_precision,
            "threshold": [round(float(v), 6) for v in self.thresholds[idx]],
            "precision": [round(float(v), 6) for v in self.precision[idx]],
            "recall": [round(float(v), 6) for v in self.recall[idx]],
        }


def pr_curve(y_true, scores) -> PRCurve:
    """The precision-recall curve (scikit-learn's), without its final ``(precision=1, recall=0)`` point."""
    y = _as_binary(y_true)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not y.any():
        raise ValueError("a precision-recall curve needs at least one owl")
    p, r, t = precision_recall_curve(y, s)
    return PRCurve(p[:-1], r[:-1], t, float(average_precision_score(y, s)))


def softmax_positive(logits: np.ndarray, positive_index: int) -> np.ndarray:
    """Softmax probability of class ``positive_index`` for logits ``[N, C]`` (numerically stable)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e[:, positive_index] / e.sum(axis=-1)).astype(np.float64)


def make_compute_metrics(positive_index: int, threshold: float = 0.5) -> Callable:
    """A ``compute_metrics`` for :class:`transformers.Trainer` on owl / not-owl logits.

    Labels are class indices (the dataset's ``label`` column); the owl is ``positive_index`` (0 in the
    seed's ``[owl, not_owl]`` order). Metrics are taken at ``threshold`` on the owl probability, which for
    two classes and 0.5 is the argmax.
    """

    def compute_metrics(eval_pred) -> dict[str, float]:
        logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        labels = np.asarray(eval_pred.label_ids).reshape(-1)
        probs = softmax_positive(logits, positive_index)
        m = binary_metrics((labels == positive_index).astype(int), probs, threshold)
        out = {k: float(m[k]) for k in METRIC_KEYS}
        if np.isnan(out["average_precision"]):
            out["average_precision"] = 0.0
        return out

    return compute_metrics
