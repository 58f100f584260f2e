#!/usr/bin/env python
"""Do speed views at test time help fold models find calls they never trained on? (tried, not kept)

    python scripts/evaluate_speed_views.py --models out/lofo/cglide/fold-{additive,sourcefilter,contours,fm,syrinx}
    python scripts/evaluate_speed_views.py --models ... --factors 0.88 0.94 1.06 1.12        # ~1.5 min a model

Each model scans, as ``scripts/evaluate_generalisation.py`` does (the engine's defaults, cached material in
``--work``), the calibration and test recordings as they are, copies of both with its held-out family's calls
inserted (the first family in ``FAMILIES`` order it never trained on: a fold's own, ``syrinx`` for the syrinx
fold), and copies of the calibration recordings with its training families' calls. Every window scoring 0.5 or
more is then scored again played ``--factors`` times as fast, and scores the mean logit of its views
(:func:`owlfinder.evaluation.speed_views.rescore_with_speed_views`). Plain and with views, each model is
calibrated on the calibration sites (<= 0.5 false events per hour, ``--margin-logit`` of headroom) and measured:
the held-out family's recall at <= 1 FP/h on both held-out site groups, its recall and the false events at the
calibrated threshold on the test sites, and the training families' recall on the calibration sites.

The verdict applies the rule written for recipe trials, paired over the models
(:mod:`owlfinder.evaluation.trial_rule`). Writes ``speed-views.json`` and ``.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

#: Windows scoring this or more are viewed again: the folds' scans run at threshold 0.5, and every calibrated
#: threshold lies several logits above it.
FLOOR = 0.5


def _scan_groups(mat, model: str, held: str, trained: list[str]) -> dict:
    """``{(name, split): (detections, sites, truths)}`` for the clean recordings and the copies with calls."""
    from owlfinder.evaluation.lofo import inserted_call_detections

    groups = {("clean", "calibration"): None, ("clean", "test"): None, (held, "calibration"): held,
              (held, "test"): held, **{(f, "calibration"): f for f in trained}}
    return {(name, split): tuple(map(list, zip(*inserted_call_detections(mat, model, [split], [fam]), strict=True)))
            for (name, split), fam in groups.items()}


def _with_views(groups: dict, clf, factors: list[float]) -> tuple[dict, int]:
    from owlfinder import audio
    from owlfinder.evaluation.speed_views import rescore_with_speed_views

    out, n = {}, 0
    for key, (dets, sites, truths) in groups.items():
        new = []
        for det in dets:
            info = audio.probe(det.file)

            def read(t0: float, t1: float, path=det.file, info=info) -> np.ndarray:
                return audio.load(path, clf.sampling_rate, start_s=t0, end_s=min(t1, info.duration_s), info=info)

            d, k = rescore_with_speed_views(det, clf.score, read, clf.sampling_rate, clf.window_samples, factors,
                                            FLOOR)
            new.append(d)
            n += k
        out[key] = (new, sites, truths)
    return out, n


def _measure(groups: dict, held: str, trained: list[str], margin: float) -> dict:
    from owlfinder.evaluation.generalisation import calibrate_threshold_fph, evaluate_fold

    cal_dets, cal_sites, _ = groups[("clean", "calibration")]
    thr = calibrate_threshold_fph(cal_dets, 0.5, margin)

    def fold(name: str, split: str) -> dict:
        clean, sites, _ = groups[("clean", split)]
        dets, _, truths = groups[(name, split)]
        return evaluate_fold(thr, clean, sites, dets, truths)

    test, cal = fold(held, "test"), fold(held, "calibration")
    train = {f: fold(f, "calibration")["recall"] for f in trained}
    return {"threshold": thr, "test_recall_at_1_fph": test["recall_at_1_fph"],
            "calibration_recall_at_1_fph": cal["recall_at_1_fph"], "test_recall": test["recall"],
            "test_false_positives": test["false_positives"], "test_max_clean_score": test["max_clean_score"],
            "calibration_max_clean_score": cal["max_clean_score"], "training_family_recall": train,
            "training_recall_mean": float(np.mean(list(train.values())))}


def _table(models: list[str], rows: list[dict], v: dict, factors: list[float]) -> str:
    from owlfinder.evaluation.trial_rule import verdict_lines

    views = ", ".join(f"{a:g}" for a in factors)
    lines = [f"Speed views (plain -> played {views} times as fast, mean logit), each model calibrated on the "
             "calibration sites", "",
             "| model | held-out family | test: recall at <= 1 FP/h | calibration sites: at <= 1 FP/h | "
             "test: recall at cal. thr. (false events) | training families, calibration sites | threshold |",
             "|---|---|---|---|---|---|---|"]
    for model, r in zip(models, rows, strict=True):
        a, b = r["plain"], r["views"]
        lines.append(f"| {model} | {r['held_out']} | {a['test_recall_at_1_fph']:.3f} -> {b['test_recall_at_1_fph']:.3f} | "
                     f"{a['calibration_recall_at_1_fph']:.3f} -> {b['calibration_recall_at_1_fph']:.3f} | "
                     f"{a['test_recall']:.3f} ({a['test_false_positives']}) -> {b['test_recall']:.3f} "
                     f"({b['test_false_positives']}) | {a['training_recall_mean']:.3f} -> {b['training_recall_mean']:.3f} | "
                     f"{a['threshold']:.4f} -> {b['threshold']:.4f} |")
    lines += ["", *verdict_lines(v)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from evaluate_generalisation import default_shared, shared_missing

    from owlfinder.detect.model import load_classifier
    from owlfinder.durable import atomic_write_text
    from owlfinder.errors import OwlFinderError
    from owlfinder.evaluation.generalisation import MARGIN_LOGIT
    from owlfinder.evaluation.lofo import Material, training_record
    from owlfinder.evaluation.trial_rule import verdict
    from owlfinder.synth.families import FAMILIES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", required=True, help="fold model folders (never trained on the "
                   "calibration or test sites)")
    p.add_argument("--factors", type=float, nargs="+", default=[0.94, 1.06],
                   help="playback speeds of the views besides the plain window")
    p.add_argument("--margin-logit", type=float, default=MARGIN_LOGIT, help="headroom above the calibrated threshold")
    p.add_argument("--shared", type=Path, default=default_shared(), help="the real recordings (MANIFEST.tsv)")
    p.add_argument("--work", type=Path, default=REPO / "out" / "lofo" / "cache",
                   help="the cached material (evaluate_generalisation.py's cache)")
    p.add_argument("--out", type=Path, default=REPO / "out" / "speed-views", help="folder for speed-views.json/.md")
    args = p.parse_args(argv)
    if shared_missing(args.shared):
        return 2
    if any(a <= 0 for a in args.factors):
        print("error: --factors: playback speeds must be positive", file=sys.stderr)
        return 2
    records = []
    for model in args.models:
        try:
            rec = training_record(model)
        except (OSError, ValueError) as e:  # no folder, no config.json, a broken record
            print(f"error: {model}: not a model folder ({e})", file=sys.stderr)
            return 2
        negatives = rec["background_splits"]
        unseen = [f for f in FAMILIES if f not in rec["families"]]
        if negatives is None or {"calibration", "test"} & set(negatives):
            why = "does not record which sites it trained on" if negatives is None else "trained on held-out sites"
            print(f"error: {model}: {why}; only fold models can be measured here", file=sys.stderr)
            return 2
        if not rec["families"] or not unseen:
            print(f"error: {model}: needs training families and a family it never trained on", file=sys.stderr)
            return 2
        records.append((rec["families"], unseen[0]))
    mat = Material(args.shared, args.work, log=lambda m: print(m, flush=True))
    rows = []
    for i, (model, (trained, held)) in enumerate(zip(args.models, records, strict=True), 1):
        try:
            clf = load_classifier(model, device="cpu")
            plain = _scan_groups(mat, model, held, trained)
            viewed, n = _with_views(plain, clf, args.factors)
        except (OwlFinderError, OSError) as e:  # a bad model folder, an unreadable recording
            print(f"error: {model}: {e}", file=sys.stderr)
            return 2
        rows.append({"model": model, "held_out": held, "training_families": trained, "windows_viewed": n,
                     "plain": _measure(plain, held, trained, args.margin_logit),
                     "views": _measure(viewed, held, trained, args.margin_logit)})
        r = rows[-1]
        print(f"model {i}/{len(args.models)}: {model} ({held} held out, {n} windows viewed): recall at <= 1 FP/h "
              f"test {r['plain']['test_recall_at_1_fph']:.3f} -> {r['views']['test_recall_at_1_fph']:.3f}, "
              f"calibration sites {r['plain']['calibration_recall_at_1_fph']:.3f} -> "
              f"{r['views']['calibration_recall_at_1_fph']:.3f}", flush=True)
    v = verdict([(r["plain"], r["views"]) for r in rows])
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "speed-views.json", json.dumps(
        {"models": args.models, "factors": args.factors, "margin_logit": args.margin_logit, "floor": FLOOR,
         "rows": rows, "verdict": v}, indent=1))
    table = _table(args.models, rows, v, args.factors)
    atomic_write_text(args.out / "speed-views.md", table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
