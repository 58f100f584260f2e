#!/usr/bin/env python
"""How many owl calls the published-description check lets through, and how many confusers it rejects.

    python scripts/evaluate_description_check.py             # 200 clips per family and per confuser (~6 min)
    python scripts/evaluate_description_check.py --n 50

Every family's calls (and every confuser kind) in 5 s clips of the *calibration* sites' recordings, at -3..15 dB
band SNR, through the training clips' propagation and recorder; see owlfinder.evaluation.description_check. Writes
``description_check.json`` and ``.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))


def main(argv: list[str] | None = None) -> int:
    from evaluate_generalisation import default_shared, shared_missing

    from owlfinder.durable import atomic_write_text
    from owlfinder.evaluation.description_check import description_check_rates, rates_table
    from owlfinder.evaluation.generalisation import read_manifest
    from owlfinder.synth import fieldclips

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=default_shared(), help="the real recordings (MANIFEST.tsv)")
    p.add_argument("--split", default="calibration", choices=["train", "calibration"],
                   help="whose recordings are the backgrounds (never the test sites)")
    p.add_argument("--n", type=int, default=200, help="clips per family and per confuser kind")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "out", help="folder for description_check.json/.md")
    args = p.parse_args(argv)
    if shared_missing(args.shared):
        return 2
    if args.n < 1:
        print("error: --n must be at least 1", file=sys.stderr)
        return 2
    files = read_manifest(args.shared)[args.split]
    bgs = fieldclips.load_backgrounds([f["path"] for f in files], 16000, min_s=1.0,
                                      on_error=lambda m: print(f"skipped: {m}", file=sys.stderr))
    print(f"{args.split}: {len(bgs)} recordings as backgrounds", flush=True)
    rates = description_check_rates(bgs, 16000, n=args.n, seed=args.seed, log=lambda m: print(m, flush=True))
    rates["split"] = args.split
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "description_check.json", json.dumps(rates, indent=1))
    table = rates_table(rates)
    atomic_write_text(args.out / "description_check.md", table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
