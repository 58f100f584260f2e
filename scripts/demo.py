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
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from owlfinder.detect import batch
    from owlfinder.detect.detection import Detection, DetectionParams
    from owlfinder.detect.model import ModelError, load_classifier
    from owlfinder.evaluation.report import count_events, read_truth
    from owlfinder.synth.nights import a2o_filename, make_night

    args.out.mkdir(parents=True, exist_ok=True)
    night = args.out / a2o_filename("20210603T200000+1000", "Demo-Site", args.seed)
    if not night.exists() or not Path(f"{night.with_suffix('')}.truth.json").exists():
        backgrounds = args.backgrounds if args.backgrounds.is_dir() else None
        print(f"making a {args.minutes:.0f}-minute synthetic night: {night}", file=sys.stderr)
        make_night(night, args.minutes * 60, sr=44100, channels=2, backgrounds=backgrounds, seed=args.seed,
                   progress=True)
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
    counts = count_events(det, read_truth(night))
    print(f"\n{counts.n_events} event(s) in {det.duration_s / 60:.0f} min, {counts.false_positives} of them "
          f"false; {counts.n_found} of {counts.n_true} synthetic owl calls found", file=sys.stderr)
    for ev in det.events[:15]:
        print(f"  {ev.start_s:8.1f}-{ev.end_s:8.1f} s  score {ev.score:.3f}  {ev.start_time or ''}")
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
