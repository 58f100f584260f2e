#!/usr/bin/env python
"""One project scan, in-process, with the time split by stage (run by bench/run.py in its own process).

    python bench/project_runner.py RECORDING --model DIR [--backend torch|int8] [--scores out.npy]

Loads the classifier, scans the recording with :func:`owlfinder.detect.engine.iter_detect` and writes the results
with :func:`owlfinder.detect.exports.write_detection` (the same calls ``scripts/detect.py`` makes), and prints one
JSON line: seconds spent importing, loading the model, in each engine stage (decode, resample, features,
model: per-thread seconds, overlapped) and exporting, plus the scan's wall and CPU time.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recording", type=Path)
    p.add_argument("--model", default=None, help="model folder (default: the bundled starter model)")
    p.add_argument("--backend", default="torch", choices=["torch", "int8", "onnx", "onnx-int8"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--hop", type=float, default=2.5)
    p.add_argument("--threads", type=int, default=None, help="torch threads for the model (default: auto)")
    p.add_argument("--quality", default="HQ", help="soxr quality (HQ, MQ, LQ, QQ)")
    p.add_argument("--block-s", type=float, default=5.0)
    p.add_argument("--scores", type=Path, default=None, help="save the window scores here (.npy)")
    p.add_argument("--cpu-chunk", type=int, default=None, help="windows per model forward on the CPU")
    p.add_argument("--no-export", action="store_true")
    p.add_argument("--io-only", action="store_true",
                   help="only decode, downmix and resample to the model's rate (the I/O limit), no model")
    args = p.parse_args(argv)
    if args.io_only:
        return io_only(args)

    import torch  # noqa: F401  (counted as import time, as in scripts/detect.py)

    from owlfinder.detect.engine import DetectionParams, iter_detect
    from owlfinder.detect.exports import FORMATS, write_detection
    from owlfinder.detect.model import load_classifier

    t_imported = time.perf_counter()
    clf = load_classifier(args.model, device=args.device, backend=args.backend)
    if args.cpu_chunk is not None:
        clf.cpu_chunk = args.cpu_chunk
    t_loaded = time.perf_counter()
    import dataclasses

    extra = {"num_threads": args.threads, "resample_quality": args.quality}
    known = {f.name for f in dataclasses.fields(DetectionParams)}  # older engines lack some knobs
    params = DetectionParams(batch_size=args.batch_size, hop_s=args.hop, block_s=args.block_s,
                             **{k: v for k, v in extra.items() if k in known})
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    det = None
    for det in iter_detect(args.recording, clf, params):
        pass
    t_scanned = time.perf_counter()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    assert det is not None
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_export:
            write_detection(det, Path(tmp) / args.recording.stem, list(FORMATS))
    t_exported = time.perf_counter()
    if args.scores is not None:
        import numpy as np

        np.save(args.scores, np.asarray(det.scores, dtype=np.float32))
    scan_s = t_scanned - t0
    out = {
        "duration_s": det.duration_s,
        "n_windows": int(len(det.scores)),
        "n_events": len(det.events),
        "import_s": t_imported - T_START,
        "load_s": t_loaded - t_imported,
        "scan_s": scan_s,
        "scan_cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
        "export_s": t_exported - t_scanned,
        "timings": {k: round(v, 4) for k, v in det.timings_s.items()},
        "x_realtime_scan": det.duration_s / scan_s if scan_s > 0 else None,
        "threads": getattr(params, "num_threads", None),
    }
    print(json.dumps(out))
    return 0


def io_only(args: argparse.Namespace) -> int:
    """Stream the recording through :func:`owlfinder.audio.stream` at the model's rate and nothing else."""
    from owlfinder import audio  # no torch: the I/O path alone

    folder = Path(args.model or Path(__file__).resolve().parents[1] / "space" / "models" / "powerful-owl-starter")
    sr = int(json.loads((folder / "preprocessor_config.json").read_text()).get("sampling_rate", 16000))
    t_imported = time.perf_counter()
    timings: dict[str, float] = {}
    n = 0
    for block in audio.stream(args.recording, sr, block_s=args.block_s, quality=args.quality, timings=timings):
        n += len(block)
    scan_s = time.perf_counter() - t_imported
    print(json.dumps({"duration_s": n / sr, "import_s": t_imported - T_START, "load_s": 0.0, "scan_s": scan_s,
                      "timings": {k: round(v, 4) for k, v in timings.items()}, "sample_rate": sr}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
