"""Precision-calibrated decision thresholds, and writing them into a saved model's ``config.json``.

:func:`calibrate_threshold` picks, on validation scores, the **lowest** threshold whose precision reaches a
target (default 0.95): the most owls found while keeping at most about 1 false alarm in 20 detections. When
no threshold reaches the target it falls back to the threshold that maximises F0.5 and says so.

:func:`write_calibration` stores the result in the model's config (``owl_threshold``, ``owl_window_s``,
``owl_target_precision``, ``owl_calibration``), which :func:`owlfinder.detect.model.load_classifier` reads, so
detection uses the calibrated threshold by default.

Per-site thresholds: :func:`site_thresholds` calibrates one threshold per recording site from that site's
verified clips (the site comes from the file name, :func:`owlfinder.timestamps.parse_site`), and
:func:`write_site_thresholds` stores them as ``owl_site_thresholds`` in ``config.json``. Detection uses a
site's threshold for files whose name names that site (:meth:`owlfinder.detect.model.OwlClassifier.threshold_for`),
and the model's own threshold everywhere else.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from owlfinder.evaluation.metrics import fbeta

__all__ = [
    "DEFAULT_TARGET_PRECISION",
    "Calibration",
    "calibrate_threshold",
    "read_calibration",
    "site_thresholds",
    "threshold_sweep",
    "write_calibration",
    "write_site_thresholds",
]

DEFAULT_TARGET_PRECISION = 0.95
#: Config keys (``owl_threshold``/``owl_window_s`` are the ones ``owlfinder.detect.model`` reads).
THRESHOLD_KEY = "owl_threshold"
WINDOW_KEY = "owl_window_s"
TARGET_KEY = "owl_target_precision"
CALIBRATION_KEY = "owl_calibration"
#: ``{site: {"threshold", "precision", "recall", "n_pos", "n_neg", "message"}}``, read by ``owlfinder.detect.model``.
SITE_THRESHOLDS_KEY = "owl_site_thresholds"
#: A site needs at least this many verified owl clips and as many not-owl clips for its own threshold.
MIN_SITE_CLIPS = 3


@dataclass
class Calibration:
    """A calibrated threshold and what it achieves on the calibration (validation) set.

    Attributes:
        threshold: call a window owl when its score is at least this.
        method: ``"target_precision"`` (the target was reached), ``"max_f0.5"`` (fallback) or ``"default"``
            (no owls to calibrate on; 0.5 kept).
        target_precision: the precision asked for.
        reached: whether the target was reached.
        precision, recall, f0.5: at ``threshold`` on the calibration set.
        n_pos, n_neg: calibration set size per class.
        message: one line saying what was done (printed by training, stored in the config).
    """

    threshold: float
    method: str
    target_precision: float
    reached: bool
    precision: float
    recall: float
    f05: float
    n_pos: int
    n_neg: int
    message: str

    def to_dict(self) -> dict:
        d = asdict(self)
        d["f0.5"] = d.pop("f05")
        return d


def threshold_sweep(y_true, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and counts at every distinct score used as threshold (``score >= t`` is owl).

    Returns:
        ``thresholds`` (ascending distinct scores), ``precision``, ``recall``, ``n_predicted`` arrays.
    """
    y = np.asarray(y_true).astype(bool).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(y) != len(s):
        raise ValueError(f"{len(y)} labels but {len(s)} scores")
    order = np.argsort(-s, kind="stable")
    s_desc, y_desc = s[order], y[order]
    tp = np.cumsum(y_desc)
    n_pred = np.arange(1, len(s) + 1)
    # Keep the last index of each run of equal scores: ties are all in or all out.
    last = np.r_[np.flatnonzero(np.diff(s_desc) != 0), len(s) - 1] if len(s) else np.zeros(0, dtype=int)
    thr = s_desc[last]
    tp, n_pred = tp[last], n_pred[last]
    precision = tp / n_pred
    n_pos = max(int(y.sum()), 1)
    recall = tp / n_pos
    return thr[::-1], precision[::-1], recall[::-1], n_pred[::-1]


def calibrate_threshold(y_true, scores, target_precision: float = DEFAULT_TARGET_PRECISION,
                        beta: float = 0.5) -> Calibration:
    """The lowest threshold whose precision on ``(y_true, scores)`` reaches ``target_precision``.

    Args:
        y_true: 1 for owl, 0 for not owl.
        scores: owl probabilities.
        target_precision: precision to reach, in (0, 1].
        beta: the F-beta used for the fallback (0.5).

    Returns:
        A :class:`Calibration`. Without a threshold reaching the target, the one maximising F-beta (ties go
        to the higher threshold, i.e. the more precise), with ``reached=False``; without any owl, 0.5 with
        ``method="default"``.
    """
    if not 0 < target_precision <= 1:
        raise ValueError(f"target precision must lie in (0, 1], got {target_precision}")
    y = np.asarray(y_true).astype(bool).reshape(-1)
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if n_pos == 0:
        return Calibration(0.5, "default", target_precision, False, 0.0, 0.0, 0.0, n_pos, n_neg,
                           "no owl clips to calibrate on; threshold left at 0.5")
    thr, prec, rec, _ = threshold_sweep(y, scores)
    ok = np.flatnonzero(prec >= target_precision - 1e-12)
    if len(ok):
        i = int(ok[0])  # thresholds ascend: the first one reaching the target is the lowest
        f = fbeta(prec[i], rec[i], beta)
        return Calibration(
            _exact(thr[i]), "target_precision", target_precision, True, float(prec[i]), float(rec[i]), f,
            n_pos, n_neg,
            f"threshold {_exact(thr[i]):.6f} is the lowest reaching precision {prec[i]:.3f} >= "
            f"{target_precision:.2f} on {n_pos} owl / {n_neg} other validation clips (recall {rec[i]:.3f})",
        )
    fb = np.array([fbeta(p, r, beta) for p, r in zip(prec, rec, strict=True)])
    best = np.flatnonzero(fb >= fb.max() - 1e-12)
    i = int(best[-1])
    return Calibration(
        _exact(thr[i]), f"max_f{beta:g}", target_precision, False, float(prec[i]), float(rec[i]),
        float(fb[i]), n_pos, n_neg,
        f"target precision {target_precision:.2f} is unreachable on validation (best {prec.max():.3f}); "
        f"using the F{beta:g}-maximising threshold {_exact(thr[i]):.6f} (precision {prec[i]:.3f}, "
        f"recall {rec[i]:.3f})",
    )


def _exact(x: float) -> float:
    """The threshold as stored: the exact score (rounding could let in clips scored just below it)."""
    return float(x)


def write_calibration(model_dir: str | os.PathLike, calibration: Calibration, *, window_s: float,
                      extra: dict | None = None) -> dict:
    """Write the calibration into ``model_dir/config.json`` (in place) and return the updated config dict.

    Keys: ``owl_threshold``, ``owl_window_s``, ``owl_target_precision`` and ``owl_calibration`` (the
    :class:`Calibration` plus ``extra``, e.g. validation metrics).
    """
    path = Path(model_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no config.json to write the calibration into")
    cfg = json.loads(path.read_text(encoding="utf-8"))
    cfg.update(calibration_config(calibration, window_s=window_s, extra=extra))
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return cfg


def calibration_config(calibration: Calibration, *, window_s: float, extra: dict | None = None) -> dict:
    """The config entries :func:`write_calibration` adds (also usable as ``model.config`` attributes)."""
    info = calibration.to_dict()
    if extra:
        info.update(extra)
    return {
        THRESHOLD_KEY: float(calibration.threshold),
        WINDOW_KEY: float(window_s),
        TARGET_KEY: float(calibration.target_precision),
        CALIBRATION_KEY: _jsonable(info),
    }


def read_calibration(model_dir: str | os.PathLike) -> dict:
    """The calibration entries of a saved model's ``config.json`` (empty when it was never calibrated)."""
    cfg = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    return {k: cfg[k] for k in (THRESHOLD_KEY, WINDOW_KEY, TARGET_KEY, CALIBRATION_KEY) if k in cfg}


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return None if math.isnan(v) or math.isinf(v) else round(v, 6)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def site_thresholds(sites, y_true, scores, target_precision: float = DEFAULT_TARGET_PRECISION, *,
                    min_clips: int = MIN_SITE_CLIPS) -> tuple[dict[str, dict], list[str]]:
    """One threshold per site: the lowest reaching ``target_precision`` on that site's verified clips.

    A site gets a threshold only when it has at least ``min_clips`` owl and ``min_clips`` not-owl clips and
    the target is reachable there; otherwise the model's own threshold stays in force and a note says why.

    Args:
        sites: the site of each clip (``None``: unknown, ignored).
        y_true: 1 for owl, 0 for not owl.
        scores: the model's owl probability per clip.
        target_precision: precision to reach at each site.
        min_clips: least owl and least not-owl clips per site.

    Returns:
        ``(entries, notes)``: ``entries[site]`` holds ``threshold``, ``precision``, ``recall``, ``n_pos``,
        ``n_neg``, ``target_precision`` and ``message``; ``notes`` has one line per site left out.
    """
    y = np.asarray(y_true).astype(bool).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    sites = list(sites)
    entries: dict[str, dict] = {}
    notes: list[str] = []
    for site in sorted({x for x in sites if x}):
        idx = np.array([i for i, x in enumerate(sites) if x == site], dtype=np.int64)
        n_pos, n_neg = int(y[idx].sum()), int(len(idx) - y[idx].sum())
        if n_pos < min_clips or n_neg < min_clips:
            notes.append(f"{site}: {n_pos} owl / {n_neg} not-owl verified clips (need {min_clips} of each); "
                         "the model's threshold stays in force there")
            continue
        cal = calibrate_threshold(y[idx], s[idx], target_precision)
        if not cal.reached:
            notes.append(f"{site}: precision {target_precision:.2f} is unreachable on its {n_pos} owl / {n_neg} "
                         "not-owl clips; the model's threshold stays in force there")
            continue
        entries[site] = _jsonable({
            "threshold": cal.threshold, "precision": cal.precision, "recall": cal.recall, "n_pos": n_pos,
            "n_neg": n_neg, "target_precision": target_precision,
            "message": f"per-site threshold for {site}: lowest reaching precision {cal.precision:.2f} >= "
                       f"{target_precision:.2f} on {n_pos} owl / {n_neg} not-owl verified clips from that site "
                       f"(recall {cal.recall:.2f})",
        })
        entries[site]["threshold"] = float(cal.threshold)  # exact, not rounded: see _exact
    return entries, notes


def write_site_thresholds(model_dir: str | os.PathLike, entries: dict[str, dict]) -> dict:
    """Store per-site thresholds as ``owl_site_thresholds`` in ``model_dir/config.json`` (replacing any)."""
    from owlfinder.durable import atomic_write_text

    path = Path(model_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no config.json to write the site thresholds into")
    cfg = json.loads(path.read_text(encoding="utf-8"))
    if entries:
        cfg[SITE_THRESHOLDS_KEY] = entries
    else:
        cfg.pop(SITE_THRESHOLDS_KEY, None)
    atomic_write_text(path, json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return cfg
