"""A labelling round, measured: the current model vs a candidate on the user's verified clips, and promotion.

``scripts/retrain.py`` runs the loop; this module holds its parts that need no training:

- :func:`measure` scores a :class:`~owlfinder.train.clipsets.ClipSet` and reports precision and recall at the
  model's own thresholds (a clip's site threshold when its recording names a site that has one) and two
  threshold-free figures: **recall at the target precision** (the most owls found while keeping precision at
  the target, at the best threshold) and average precision;
- :func:`decide` promotes the candidate only when it is at least as good as the current model at the
  target precision on every set both can be measured on (see its docstring for the exact rule);
- :func:`round_markdown` renders the before/after table for the model card and the report;
- :func:`promote` moves the candidate into place and :func:`push_model` uploads it as a new revision of a
  Hub model repo (token from the environment, never written anywhere).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from owlfinder.evaluation.metrics import binary_metrics
from owlfinder.timestamps import parse_site
from owlfinder.train.calibration import threshold_sweep
from owlfinder.train.clipsets import ClipSet

__all__ = [
    "Decision",
    "Measure",
    "decide",
    "measure",
    "promote",
    "push_model",
    "recall_at_precision",
    "round_markdown",
    "site_of_clips",
]

_EPS = 1e-9


def recall_at_precision(y_true, scores, target: float) -> float:
    """The highest recall over thresholds whose precision reaches ``target`` (0 when none does)."""
    y = np.asarray(y_true).astype(bool)
    if not y.any():
        return float("nan")
    _, prec, rec, _ = threshold_sweep(y, scores)
    ok = prec >= target - 1e-12
    return float(rec[ok].max()) if ok.any() else 0.0


def site_of_clips(clips: ClipSet) -> list[str | None]:
    """The recording site of every clip, from its source file name (``None`` where the name has none)."""
    return [parse_site(s.rsplit("/", 1)[-1]) if s else None for s in clips.sources]


@dataclass
class Measure:
    """One model on one set of verified clips.

    Attributes:
        n_pos, n_neg: owl / not-owl clips.
        precision, recall, f05: at the model's own thresholds (per clip: its site's, else the model's).
        recall_at_target: threshold-free recall at the target precision (``nan`` without owl clips).
        average_precision: threshold-free (``nan`` without owl clips).
        tp, fp, fn: counts at the model's own thresholds.
        by_site: ``site -> {"n_pos", "n_neg", "precision", "recall"}`` at the model's own thresholds.
    """

    n_pos: int
    n_neg: int
    precision: float
    recall: float
    f05: float
    recall_at_target: float
    average_precision: float
    tp: int
    fp: int
    fn: int
    by_site: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["f0.5"] = d.pop("f05")
        return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in d.items()}


def measure(scores: np.ndarray, clips: ClipSet, threshold_for: Callable[[str], float], target: float) -> Measure:
    """Figures for ``scores`` (owl probability per clip) on ``clips``.

    Args:
        scores: the model's owl probability of each clip.
        clips: the verified clips.
        threshold_for: a recording's name -> the threshold the model applies to it.
        target: the target precision.
    """
    y = clips.is_owl.astype(int)
    s = np.asarray(scores, dtype=np.float64)
    thr = np.array([threshold_for(src.rsplit("/", 1)[-1]) for src in clips.sources], dtype=np.float64)
    pred = s >= thr
    tp, fp = int((pred & (y == 1)).sum()), int((pred & (y == 0)).sum())
    fn = int((~pred & (y == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else float("nan")
    b2 = 0.25
    f05 = ((1 + b2) * precision * recall / (b2 * precision + recall)
           if recall == recall and (b2 * precision + recall) > 0 else 0.0)
    ap = float(binary_metrics(y, s, 0.5)["average_precision"]) if y.any() else float("nan")
    by_site: dict[str, dict] = {}
    sites = site_of_clips(clips)
    for site in sorted({x for x in sites if x}):
        idx = np.array([i for i, x in enumerate(sites) if x == site])
        st, sf = int((pred[idx] & (y[idx] == 1)).sum()), int((pred[idx] & (y[idx] == 0)).sum())
        n_pos = int(y[idx].sum())
        by_site[site] = {"n_pos": n_pos, "n_neg": int(len(idx) - n_pos),
                         "precision": round(st / (st + sf), 4) if st + sf else None,
                         "recall": round(st / n_pos, 4) if n_pos else None}
    return Measure(int(y.sum()), int(len(y) - y.sum()), precision, recall, f05,
                   recall_at_precision(y, s, target), ap, tp, fp, fn, by_site)


@dataclass
class Decision:
    """Whether the candidate replaces the current model, and why (one line per compared set)."""

    promote: bool
    reasons: list[str]


def decide(pairs: dict[str, tuple[Measure, Measure]], target: float, *, min_gain: float = 0.0,
           primary: str | None = None) -> Decision:
    """Promote only when the candidate is at least as good at the target precision on every set.

    On each set with owl clips: the candidate's recall at the target precision must be at least the current
    model's (plus ``min_gain`` on the ``primary`` set, the user's own verified clips); when the two are equal,
    its average precision must not be lower. Sets without owl clips cannot be compared and are skipped; with
    no set to compare on, the candidate is refused.

    Args:
        pairs: set name -> (current, candidate) measures.
        target: the target precision (for the messages).
        min_gain: least improvement in recall at the target precision asked of the candidate on ``primary``.
        primary: the set ``min_gain`` applies to.
    """
    reasons: list[str] = []
    ok_all, compared = True, 0
    for name, (cur, cand) in pairs.items():
        if cur.n_pos == 0:
            reasons.append(f"{name}: no owl clip, not compared")
            continue
        compared += 1
        gain = min_gain if name == primary else 0.0
        rc, rn = cur.recall_at_target, cand.recall_at_target
        if rn > rc + gain + _EPS:
            ok, why = True, "higher"
        elif abs(rn - rc - gain) <= _EPS and (gain > 0 or cand.average_precision >= cur.average_precision - _EPS):
            ok, why = True, "equal" + ("" if gain > 0 else ", average precision not lower")
        elif abs(rn - rc) <= _EPS and gain == 0:
            ok, why = False, "equal, but lower average precision"
        else:
            ok, why = False, "lower" if rn < rc - _EPS else f"not {gain:g} higher"
        ok_all &= ok
        reasons.append(f"{name}: recall at precision {target:.2f} {rc:.3f} -> {rn:.3f} ({why}; average precision "
                       f"{cur.average_precision:.3f} -> {cand.average_precision:.3f})")
    if compared == 0:
        reasons.append("no set with owl clips to compare on: the candidate is refused")
        return Decision(False, reasons)
    return Decision(ok_all, reasons)


def _f(v, nd: int = 3) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "-"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def round_markdown(report: dict) -> str:
    """The before/after section for the model card and ``report.md`` from :func:`scripts.retrain` 's report."""
    target = report["target_precision"]
    lines = [
        f"Labelling round of {report['round']['n_clips']} verified clips from `{report['round']['location']}` "
        f"({report['round']['n_owl']} owl, {report['round']['n_not_owl']} not owl); current model "
        f"`{report['current_model']}`. Round split: {report['round']['split']}.",
        "",
        "**The current model on all the new verdicts, before retraining** (at its own thresholds):",
        "",
        "| clips | owl / not owl | precision | recall | recall at precision "
        f"{target:.2f} | average precision |",
        "|---|---|---|---|---|---|",
    ]
    b = report["before"]
    lines.append(f"| all new verdicts | {b['n_pos']} / {b['n_neg']} | {_f(b['precision'])} | {_f(b['recall'])} | "
                 f"{_f(b['recall_at_target'])} | {_f(b['average_precision'])} |")
    for site, m in b.get("by_site", {}).items():
        lines.append(f"| site {site} | {m['n_pos']} / {m['n_neg']} | {_f(m['precision'])} | {_f(m['recall'])} "
                     "| | |")
    lines += ["", f"**Before / after on held-out clips** (recall at precision {target:.2f} and average precision "
                  "are threshold-free; precision and recall at each model's own threshold):", "",
              "| set | clips (owl / not owl) | model | threshold | precision | recall | recall at precision "
              f"{target:.2f} | average precision |", "|---|---|---|---|---|---|---|---|"]
    for name, row in report["compared"].items():
        for who in ("current", "candidate"):
            m = row[who]
            lines.append(f"| {name} | {m['n_pos']} / {m['n_neg']} | {who} | {_f(row[who + '_threshold'], 4)} | "
                         f"{_f(m['precision'])} | {_f(m['recall'])} | {_f(m['recall_at_target'])} | "
                         f"{_f(m['average_precision'])} |")
    verdict = "**promoted**" if report["promoted"] else "**not promoted**"
    lines += ["", f"Decision: {verdict}. " + " ".join(r.rstrip(".") + "." for r in report["reasons"])]
    sites = report.get("site_thresholds") or {}
    if sites:
        lines += ["", "Per-site thresholds (from each site's verified clips not used for training; applied to "
                      "files whose name names the site):", "", "| site | threshold | precision | recall | owl / "
                      "not owl clips |", "|---|---|---|---|---|"]
        lines += [f"| {k} | {v['threshold']:.4f} | {_f(v['precision'])} | {_f(v['recall'])} | {v['n_pos']} / "
                  f"{v['n_neg']} |" for k, v in sites.items()]
    for note in report.get("site_notes") or []:
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"


def promote(candidate: str | os.PathLike, model_dir: str | os.PathLike) -> Path:
    """Move the candidate folder to ``model_dir`` (a rename: the model folder is whole or absent)."""
    cand, dst = Path(candidate), Path(model_dir)
    if dst.exists():
        old = dst.with_name(dst.name + ".previous")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
    os.replace(cand, dst)
    return dst


def push_model(folder: str | os.PathLike, repo_id: str, *, token: str | None = None, api=None,
               message: str = "owlfinder: retrained model", private: bool | None = None) -> str | None:
    """Upload a model folder as a new revision of ``repo_id``; returns the commit id (the revision).

    Args:
        folder: the model folder (config, weights, preprocessor config, card).
        repo_id: ``owner/name`` of the model repo (created when missing).
        token: Hub token (default ``$HF_TOKEN``); passed only to ``huggingface_hub``.
        api: an ``HfApi``-like object (tests pass a fake).
    """
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token or os.environ.get("HF_TOKEN") or None)
    api.create_repo(repo_id, repo_type="model", exist_ok=True, private=private)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model", commit_message=message,
                             ignore_patterns=["checkpoint-*", "checkpoint-*/**", "*.tmp", "runs/**"])
    return getattr(info, "oid", None) or getattr(info, "commit_id", None)


def scores_with(predict: Callable[[ClipSet], np.ndarray], sets: Sequence[ClipSet]) -> list[np.ndarray]:
    """Scores of several sets with one model (empty sets give empty arrays)."""
    return [predict(s) if len(s) else np.zeros(0) for s in sets]
