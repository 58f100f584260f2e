"""Measuring a detector: clip-level metrics on labelled clips, event-level metrics on long recordings.

**Clips** (:func:`evaluate_clips`): every clip of a labelled dataset is scored; precision, recall, F1, F0.5
and average precision at the model's threshold, confusion counts, the precision-recall curve and the false
positives per rejection ``reason`` (what the model mistakes for an owl).

**Long recordings** (:func:`evaluate_recordings`): recordings are run through the detection engine and the
resulting events compared with the ground truth (the synthesizer's ``<stem>.truth.json``, or a Raven
selection table). A detected event *matches* a true owl call when the two overlap in time. Then

- recall = true owl calls overlapped by at least one event / true owl calls;
- precision = events overlapping at least one true owl call / events;
- false positives per hour = events overlapping no owl call / hours of audio.

Recordings known to hold no owl at all (real negatives) have an empty truth: every event there is a false
positive. Results are given at the model's calibrated threshold and at the lowest threshold keeping the
false-positive rate at or below a target (:func:`threshold_for_fp_rate`).

Other detectors (BirdNET, ...) plug in through :func:`register_detector`: anything that turns a path into a
:class:`~owlfinder.detect.detection.Detection` (window scores) is evaluated the same way.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from owlfinder.data.annotations import read_raven
from owlfinder.detect.detection import Detection
from owlfinder.detect.events import merge_events
from owlfinder.errors import OwlFinderError
from owlfinder.evaluation.metrics import PRCurve, binary_metrics, pr_curve

__all__ = [
    "DETECTORS",
    "ClipEvaluation",
    "EventCounts",
    "TruthError",
    "count_events",
    "evaluate_clips",
    "evaluate_recordings",
    "find_truth",
    "fp_rate_upper_bound",
    "match_events",
    "plot_pr_curve",
    "read_truth",
    "register_detector",
    "score_clips",
    "summarize_counts",
    "threshold_for_fp_rate",
]

#: Ground-truth files looked for beside a recording ``<stem>.<ext>``, in order.
TRUTH_SUFFIXES = (".truth.json", ".truth.raven.txt", ".selections.txt", ".Table.1.selections.txt")
#: Column names of a Raven table that may say what a selection is.
_LABEL_COLUMNS = ("Kind", "Species", "Label", "Annotation", "Class", "Sound Type")
_OWL_WORDS = ("owl", "ninox strenua", "ninox_strenua", "powerful", "nistre")
_NOT_OWL = ("boobook", "barking", "not_owl", "not owl", "no owl", "barking_owl")


class TruthError(OwlFinderError):
    """Ground truth that cannot be found or read; ``str(err)`` is one line naming the file."""


# ------------------------------------------------------------------------------------------------ clips


@dataclass
class ClipEvaluation:
    """Clip-level results at one threshold.

    Attributes:
        threshold: where a clip is called owl (``score >= threshold``).
        metrics: :func:`owlfinder.evaluation.metrics.binary_metrics` output (precision, recall, F1, F0.5, AP, counts).
        curve: the precision-recall curve (``None`` without owl clips).
        fp_by_reason: false positives per rejection reason of the not-owl clips.
        negatives_by_reason: not-owl clips per reason (to turn counts into rates).
        fp_by_group: false positives per group (recording/site), most first.
        scores: the owl score of every clip, in order.
    """

    threshold: float
    metrics: dict
    curve: PRCurve | None
    fp_by_reason: dict[str, int]
    negatives_by_reason: dict[str, int]
    fp_by_group: dict[str, int]
    scores: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    def to_dict(self) -> dict:
        return {
            "threshold": self.threshold,
            "metrics": _clean(self.metrics),
            "false_positives_by_reason": {r: {"false_positives": self.fp_by_reason.get(r, 0), "clips": n}
                                          for r, n in self.negatives_by_reason.items()},
            "false_positives_by_group": self.fp_by_group,
            "pr_curve": self.curve.to_dict() if self.curve is not None else None,
        }


def score_clips(clf, clips, *, batch_size: int = 32, progress: bool = True) -> np.ndarray:
    """Owl score of every clip of a :class:`~owlfinder.train.clipsets.ClipSet` with an ``OwlClassifier``."""
    from tqdm.auto import tqdm

    from owlfinder.audio import resample

    out = []
    n = clf.window_samples
    for lo in tqdm(range(0, len(clips), batch_size), desc="scoring clips", unit="batch", disable=not progress):
        hi = min(lo + batch_size, len(clips))
        batch = np.stack([_fit(resample(clips.wave(i), clips.sampling_rate, clf.sampling_rate), n)
                          for i in range(lo, hi)])
        out.append(np.asarray(clf.score(batch), dtype=np.float64))
    return np.concatenate(out) if out else np.zeros(0)


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    from owlfinder.data.clips import fit_to_length

    return fit_to_length(y, n) if len(y) != n else y


def evaluate_clips(clf, clips, *, threshold: float | None = None, batch_size: int = 32,
                   progress: bool = True, scores: np.ndarray | None = None) -> ClipEvaluation:
    """Score labelled clips and measure them at ``threshold`` (default: the model's calibrated one)."""
    thr = float(clf.threshold if threshold is None else threshold)
    s = score_clips(clf, clips, batch_size=batch_size, progress=progress) if scores is None else np.asarray(scores)
    y = clips.is_owl.astype(int)
    m = binary_metrics(y, s, thr)
    curve = pr_curve(y, s) if y.any() else None
    fp_reason: Counter[str] = Counter()
    neg_reason: Counter[str] = Counter()
    fp_group: Counter[str] = Counter()
    for i in np.flatnonzero(y == 0):
        reason = clips.reasons[i] or "unspecified"
        neg_reason[reason] += 1
        if s[i] >= thr:
            fp_reason[reason] += 1
            fp_group[clips.groups[i]] += 1
    return ClipEvaluation(thr, m, curve, dict(fp_reason), dict(sorted(neg_reason.items())),
                          dict(fp_group.most_common()), s)


def plot_pr_curve(curve: PRCurve, path: str | os.PathLike, *, threshold: float | None = None,
                  point: tuple[float, float] | None = None, title: str = "Precision-recall (clips)") -> Path:
    """Save the precision-recall curve as a PNG, with the operating point ``(recall, precision)`` marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    ax.plot(curve.recall, curve.precision, lw=1.8, label=f"AP = {curve.average_precision:.3f}")
    if point is not None:
        ax.plot([point[0]], [point[1]], "o", color="C3",
                label=f"threshold {threshold:.3f}" if threshold is not None else "operating point")
    ax.set_xlabel("recall (owl clips found)")
    ax.set_ylabel("precision (detections that are owls)")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------- ground truth


def find_truth(audio_path: str | os.PathLike) -> Path | None:
    """The ground-truth file beside a recording (see :data:`TRUTH_SUFFIXES`), or ``None``."""
    p = Path(audio_path)
    stem = p.with_suffix("") if p.suffix else p
    for suffix in TRUTH_SUFFIXES:
        cand = stem.with_name(stem.name + suffix)
        if cand.is_file():
            return cand
    return None


def _is_owl_label(value: str | None) -> bool:
    v = (value or "").strip().lower()
    if not v:
        return True
    if any(w in v for w in _NOT_OWL):
        return False
    return any(w in v for w in _OWL_WORDS)


def read_truth(path: str | os.PathLike) -> list[tuple[float, float]]:
    """True Powerful Owl calls as ``(start_s, end_s)``, sorted, from a truth JSON or a Raven table.

    ``path`` may be the truth file or the recording (its truth is then looked up with :func:`find_truth`).
    Confusers in a synthetic night's truth (``kind`` boobook / barking_owl) are not owl calls. In a Raven
    table a label column (Kind, Species, Label, Annotation, ...) keeps the rows that name an owl; without
    one every selection is an owl call.

    Raises:
        TruthError: no truth file, or an unreadable one.
    """
    p = Path(path)
    if not (p.name.endswith(".json") or p.name.endswith(".txt")):
        found = find_truth(p)
        if found is None:
            raise TruthError(f"{p.name}: no ground truth beside it (expected {p.with_suffix('').name}.truth.json "
                             "or a Raven .selections.txt)")
        p = found
    if not p.is_file():
        raise TruthError(f"{p}: ground-truth file not found")
    try:
        if p.name.endswith(".json"):
            doc = json.loads(p.read_text(encoding="utf-8"))
            events = doc["events"] if isinstance(doc, dict) else doc
            calls = [(float(e["start_s"]), float(e["end_s"])) for e in events
                     if (e.get("kind") or "owl") == "owl"]
        else:
            rows = read_raven(p, all_views=True)
            if rows and not {"Begin Time (s)", "End Time (s)"} <= set(rows[0]):
                raise TruthError(f"{p.name}: not a Raven selection table (no Begin/End Time (s) columns)")
            label_col = next((c for c in _LABEL_COLUMNS if rows and c in rows[0]), None)
            calls = []
            for r in rows:
                if (r.get("View") or "Spectrogram").startswith("Waveform"):
                    continue  # Raven lists each selection once per view
                if label_col and not _is_owl_label(r.get(label_col)):
                    continue
                calls.append((float(r["Begin Time (s)"]), float(r["End Time (s)"])))
    except TruthError:
        raise
    except (OSError, ValueError, KeyError, TypeError, csv.Error) as err:
        raise TruthError(f"{p.name}: unreadable ground truth ({' '.join(str(err).split())[:150]})") from None
    return sorted(calls)


# --------------------------------------------------------------------------------------------- matching


def match_events(predicted: Sequence[tuple[float, float]], truth: Sequence[tuple[float, float]]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Which predicted events overlap a true call, and which true calls are overlapped by an event.

    Two intervals overlap when each starts before the other ends (touching ends do not count).

    Returns:
        ``(pred_hit, truth_hit)`` boolean arrays.
    """
    p = np.asarray(predicted, dtype=np.float64).reshape(-1, 2)
    t = np.asarray(truth, dtype=np.float64).reshape(-1, 2)
    if len(p) == 0 or len(t) == 0:
        return np.zeros(len(p), dtype=bool), np.zeros(len(t), dtype=bool)
    pred_hit = np.zeros(len(p), dtype=bool)
    truth_hit = np.zeros(len(t), dtype=bool)
    order = np.argsort(t[:, 0])
    ts, te = t[order, 0], t[order, 1]
    # Calls never outlast max_len: only calls starting in [p.start - max_len, p.end) can overlap p.
    max_len = float(np.max(te - ts)) if len(ts) else 0.0
    for i, (s, e) in enumerate(p):
        lo = np.searchsorted(ts, s - max_len, side="left")
        hi = np.searchsorted(ts, e, side="left")
        if hi > lo:
            hits = (ts[lo:hi] < e) & (te[lo:hi] > s)
            if hits.any():
                pred_hit[i] = True
                truth_hit[order[lo:hi][hits]] = True
    return pred_hit, truth_hit


@dataclass
class EventCounts:
    """Event-level counts for one recording at one threshold."""

    file: str
    duration_s: float
    threshold: float
    n_true: int
    n_found: int
    n_events: int
    n_true_positive_events: int
    snr_db: list[float | None] = field(default_factory=list)
    found_mask: list[bool] = field(default_factory=list)

    @property
    def false_positives(self) -> int:
        return self.n_events - self.n_true_positive_events


def count_events(det: Detection, truth: Sequence[tuple[float, float]], threshold: float | None = None,
                 snr_db: Sequence[float | None] | None = None) -> EventCounts:
    """Match a detection's events (re-derived at ``threshold``, default its own) with the true calls."""
    thr = det.threshold if threshold is None else float(threshold)
    events = merge_events(det.starts_s, det.ends_s, det.scores, thr, gap_s=det.gap_s,
                          min_duration_s=det.min_duration_s)
    pred = [(ev.start_s, ev.end_s) for ev in events]
    pred_hit, truth_hit = match_events(pred, truth)
    return EventCounts(det.file, float(det.duration_s), thr, len(truth), int(truth_hit.sum()), len(pred),
                       int(pred_hit.sum()), list(snr_db) if snr_db is not None else [None] * len(truth),
                       truth_hit.tolist())


def summarize_counts(counts: Sequence[EventCounts]) -> dict:
    """Pooled recall, precision, false positives and false positives per hour over recordings."""
    n_true = sum(c.n_true for c in counts)
    n_found = sum(c.n_found for c in counts)
    n_events = sum(c.n_events for c in counts)
    n_tp = sum(c.n_true_positive_events for c in counts)
    hours = sum(c.duration_s for c in counts) / 3600.0
    fp = n_events - n_tp
    out = {
        "recordings": len(counts),
        "hours": round(hours, 4),
        "true_calls": n_true,
        "found_calls": n_found,
        "recall": (n_found / n_true) if n_true else None,
        "events": n_events,
        "true_positive_events": n_tp,
        "false_positives": fp,
        "precision": (n_tp / n_events) if n_events else None,
        "fp_per_hour": (fp / hours) if hours > 0 else None,
        "fp_per_hour_upper95": fp_rate_upper_bound(fp, hours),
    }
    snrs = [(s, f) for c in counts for s, f in zip(c.snr_db, c.found_mask, strict=True) if s is not None]
    if snrs:
        bins: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for s, f in snrs:
            lo = int(np.floor(s / 5.0) * 5)
            key = f"{lo}..{lo + 5} dB"
            bins[key][0] += int(f)
            bins[key][1] += 1
        out["recall_by_snr"] = {k: {"found": v[0], "calls": v[1], "recall": v[0] / v[1]}
                                for k, v in sorted(bins.items(), key=lambda kv: int(kv[0].split("..")[0]))}
    return out


def fp_rate_upper_bound(false_positives: int, hours: float, confidence: float = 0.95) -> float | None:
    """One-sided upper confidence bound on a false-positive rate per hour (exact Poisson).

    With few hours of audio a low rate cannot be shown: 0 false positives in 0.3 h only bound the rate
    below about 10 per hour (the "rule of three": 3 / hours).
    """
    if hours <= 0:
        return None
    from scipy.stats import chi2

    return float(chi2.ppf(confidence, 2 * false_positives + 2) / 2.0 / hours)


def _negative_window_scores(det: Detection, truth: Sequence[tuple[float, float]]) -> np.ndarray:
    wins = list(zip(det.starts_s.tolist(), det.ends_s.tolist(), strict=True))
    hit, _ = match_events(wins, truth)
    return np.asarray(det.scores, dtype=np.float64)[~hit]


def threshold_for_fp_rate(detections: Sequence[Detection], truths: Sequence[Sequence[tuple[float, float]]],
                          target_fp_per_hour: float) -> float:
    """The lowest threshold at which the pooled false positives per hour stay at or below the target.

    Only the scores of windows overlapping no true call can add false positives, so those are the candidate
    thresholds. They are searched from the top down (galloping, then bisection), taking the rate as
    non-increasing in the threshold (merging of nearby events can rarely break this by one event); the
    answer lies just above the highest negative-window score that breaks the target (capped at 1.0), or is
    the lowest negative-window score when none does.
    """
    hours = sum(d.duration_s for d in detections) / 3600.0
    if hours <= 0:
        raise ValueError("no audio to measure a false-positive rate on")
    neg = np.concatenate([_negative_window_scores(d, t) for d, t in zip(detections, truths, strict=True)]
                         + [np.zeros(0)])
    cands = np.unique(neg)[::-1]  # descending
    if len(cands) == 0:
        return 0.0

    def ok_at(thr: float) -> bool:
        fp = sum(count_events(d, t, thr).false_positives for d, t in zip(detections, truths, strict=True))
        return fp / hours <= target_fp_per_hour

    def ok(k: int) -> bool:
        return ok_at(float(cands[k]))

    def just_above(k: int) -> float:
        return float(min(1.0, np.nextafter(np.float32(cands[k]), np.float32(2.0))))

    if not ok(0):
        return just_above(0)
    good, step = 0, 1
    bad = None
    while bad is None:
        k = min(good + step, len(cands) - 1)
        if k == good:
            return float(cands[good])  # every candidate keeps the rate
        if ok(k):
            good, step = k, step * 2
        else:
            bad = k
    while bad - good > 1:
        mid = (good + bad) // 2
        if ok(mid):
            good = mid
        else:
            bad = mid
    # Between the first failing negative score and the last passing one, no other negative window enters:
    # just above the failing one is the lowest threshold that still passes.
    t = just_above(bad)
    return t if ok_at(t) else float(cands[good])


def evaluate_recordings(detections: Sequence[Detection], truths: Sequence[Sequence[tuple[float, float]]], *,
                        snrs: Sequence[Sequence[float | None] | None] | None = None,
                        negative: Sequence[bool] | None = None,
                        target_fp_per_hour: float | None = 1.0,
                        extra_thresholds: Sequence[float] = ()) -> dict:
    """Event-level results over recordings at the model's threshold (and the target-FP/h one).

    Args:
        detections: one finished detection per recording (window scores kept).
        truths: true owl calls per recording (empty for real negatives).
        snrs: per recording, the SNR of each true call (for recall by SNR), or ``None``.
        negative: per recording, True when it is known to hold no owl (reported separately).
        target_fp_per_hour: also report the lowest threshold with at most this many false positives per hour.
        extra_thresholds: more thresholds to report.

    Returns:
        ``{"thresholds": {name: {"threshold", "all", "with_truth", "negatives", "files"}}, ...}``.
    """
    if not detections:
        raise ValueError("no recordings to evaluate")
    snrs = snrs or [None] * len(detections)
    negative = negative or [False] * len(detections)
    model_thr = float(detections[0].threshold)
    named: dict[str, float] = {"model": model_thr}
    if target_fp_per_hour is not None:
        named[f"fp_per_hour<={target_fp_per_hour:g}"] = threshold_for_fp_rate(detections, truths, target_fp_per_hour)
    for t in extra_thresholds:
        named[f"{float(t):g}"] = float(t)
    out: dict = {"thresholds": {}}
    for name, thr in named.items():
        counts = [count_events(d, t, thr, s) for d, t, s in zip(detections, truths, snrs, strict=True)]
        with_truth = [c for c, n in zip(counts, negative, strict=True) if not n]
        negs = [c for c, n in zip(counts, negative, strict=True) if n]
        out["thresholds"][name] = {
            "threshold": thr,
            "all": summarize_counts(counts),
            "with_truth": summarize_counts(with_truth) if with_truth else None,
            "negatives": summarize_counts(negs) if negs else None,
            "files": [{"file": c.file, "hours": round(c.duration_s / 3600, 4), "true_calls": c.n_true,
                       "found": c.n_found, "events": c.n_events, "false_positives": c.false_positives}
                      for c in counts],
        }
    return out


# -------------------------------------------------------------------------------------- other detectors

#: Other detectors to compare with: name -> factory ``(options: dict) -> (path -> Detection)``. A BirdNET
#: adapter registers itself here; ``scripts/evaluate.py --compare NAME`` then evaluates it side by side.
DETECTORS: dict[str, Callable[[dict], Callable[[str], Detection]]] = {}


def register_detector(name: str, factory: Callable[[dict], Callable[[str], Detection]]) -> None:
    """Make another detector available to ``scripts/evaluate.py --compare NAME``.

    ``factory(options)`` returns a function turning a recording's path into a
    :class:`~owlfinder.detect.detection.Detection` (window starts, ends and owl scores, plus its own threshold).
    """
    DETECTORS[name] = factory


def _clean(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, (float, np.floating)):
            v = None if np.isnan(v) else float(v)
        elif isinstance(v, np.integer):
            v = int(v)
        out[k] = v
    return out
