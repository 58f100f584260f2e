#!/usr/bin/env python
"""The README's first run: make a synthetic night, find the owls in it with the bundled model, then serve the Space.

    python scripts/demo.py                 # 30-minute demo night, detection, results, then the Space
    python scripts/demo.py --no-serve      # stop after detection
    python scripts/demo.py --minutes 120   # a full 2-hour 44.1 kHz stereo night

Backgrounds are the real field recordings in ../shared/data when present (pink noise otherwise); owl calls
are synthetic (see docs/synth.md), so the demo shows both hits and the ground truth.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30.0, help="length of the demo night (default 30)")
    p.add_argument("--out", type=Path, default=ROOT / "demo", help="demo folder (default ./demo)")
    p.add_argument("--backgrounds", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-serve", action="store_true", help="do not start the Space afterwards")
    p.add_argument("--promise-precision", type=float, default=None,
                   help="event precision the README promises at the calibrated threshold (default: the "
                        "model's own calibration target, owl_target_precision, else 0.9)")
    return p.parse_args(argv)


def results_text(counts, duration_s: float, promised_precision: float) -> str:
    """The demo's verdict in plain words: calls found, false alarms, and whether the promise holds.

    Args:
        counts: an :class:`owlfinder.evaluation.report.EventCounts` for the demo night.
        duration_s: the night's length in seconds.
        promised_precision: the event precision (0-1) the README promises at the calibrated threshold.
    """
    hours = max(duration_s, 1e-9) / 3600
    fp = counts.false_positives
    lines = [f"Results on this {duration_s / 60:.0f}-minute synthetic night "
             f"({counts.n_true} synthetic owl calls mixed into real owl-free recordings), "
             f"threshold {counts.threshold:.3f}:",
             f"  calls found:   {counts.n_found} of {counts.n_true}"
             + (f" (recall {counts.n_found / counts.n_true:.0%})" if counts.n_true else ""),
             f"  events:        {counts.n_events}, of which {counts.n_true_positive_events} on an owl call and "
             f"{fp} false alarm(s) ({fp / hours:.1f} per hour)"]
    if counts.n_events:
        precision = counts.n_true_positive_events / counts.n_events
        met = precision >= promised_precision
        lines.append(f"  precision:     {precision:.0%} of events are owl calls; the README promises at least "
                     f"{promised_precision:.0%}: " + ("met" if met else "NOT met by this model"))
    else:
        lines.append("  precision:     no events, so nothing to check against the README's promise")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from owlfinder.audio import quiet_decoder_messages
    from owlfinder.detect import batch
    from owlfinder.detect.detection import Detection, DetectionParams
    from owlfinder.detect.model import ModelError, load_classifier
    from owlfinder.evaluation.report import count_events, match_events, read_truth
    from owlfinder.synth.nights import a2o_filename, make_night

    args.out.mkdir(parents=True, exist_ok=True)
    night = args.out / a2o_filename("20210603T200000+1000", "Demo-Site", args.seed)
    if not night.exists() or not Path(f"{night.with_suffix('')}.truth.json").exists():
        backgrounds = args.backgrounds if args.backgrounds.is_dir() else None
        print(f"making a {args.minutes:.0f}-minute synthetic night: {night}", file=sys.stderr)
        with quiet_decoder_messages() as skipped:
            make_night(night, args.minutes * 60, sr=44100, channels=2, backgrounds=backgrounds, seed=args.seed,
                       progress=True)
        if skipped.count:
            print(f"note: the MP3 decoder reported {skipped.count} damaged frame(s) in the background recordings "
                  "(libmpg123 'part2_3_length' messages) and skipped them; the night is complete", file=sys.stderr)
    try:
        clf = load_classifier(None)
    except ModelError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"model {clf.name} | calibrated threshold {clf.threshold:.3f}", file=sys.stderr)
    inputs, _ = batch.collect_inputs([night])
    (res,) = batch.detect_files(inputs, args.out / "results", clf, DetectionParams(),
                                on_error=lambda m: print(f"error: {m}", file=sys.stderr))
    if res.status == "error":
        return 1
    det = Detection.from_dict(json.loads((args.out / "results" / f"{night.stem}.json").read_text()))
    truth = read_truth(night)
    counts = count_events(det, truth)
    target = args.promise_precision
    if target is None:
        target = float(getattr(clf.model.config, "owl_target_precision", None) or 0.9)
    print("\n" + results_text(counts, det.duration_s, target), file=sys.stderr)
    hits, _ = match_events([(ev.start_s, ev.end_s) for ev in det.events], truth)
    for ev, hit in zip(det.events[:15], hits, strict=False):
        print(f"  {ev.start_s:8.1f}-{ev.end_s:8.1f} s  score {ev.score:.3f}  {ev.start_time or ''}  "
              + ("owl call" if hit else "false alarm"))
    if len(det.events) > 15:
        print(f"  … and {len(det.events) - 15} more in the results")
    print(f"results: {args.out / 'results'} (JSON, CSV, Raven, Audacity)", file=sys.stderr)
    if args.no_serve:
        return 0
    print(f"\nstarting the Space; upload {night} in the browser", file=sys.stderr)
    sys.path.insert(0, str(ROOT / "space"))
    import runpy

    runpy.run_path(str(ROOT / "space" / "app.py"), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
