#!/usr/bin/env python
"""Which parameters of a call generator does a model's score follow? (the cues it learned)

    python scripts/explain_scores.py --model out/lofo/avg/fold-fm --family fm      # 400 calls (~1 min)
    python scripts/explain_scores.py --model space/model --family syrinx --by params.voice.glide_depth

Renders calls of one family into 5 s crops of the *calibration* sites' recordings at one band SNR (each through a
random propagation and recorder), scores them with the model, and prints every numeric parameter ranked by the
Spearman correlation of the logit with it, then the logit along the strongest one (or ``--by``). A model that
generalises scores the calls the description allows about alike; a strong correlation is a cue it keys on. Writes
``cues-<family>.json`` and ``.md`` to ``--out``. See owlfinder.evaluation.cues.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))


def _table(family: str, model: str, cues: list[dict], by: str, bins: list[dict], threshold_logit: float | None,
           snr_db: float, n: int) -> str:
    lines = [f"`{model}` on {n} `{family}` calls at {snr_db:g} dB band SNR (calibration-site backgrounds)", "",
             "| parameter | Spearman with the logit | calls |", "|---|---|---|"]
    lines += [f"| {c['parameter']} | {c['spearman']:+.2f} | {c['calls']} |" for c in cues[:12]]
    head = "| " + by + " | calls | median logit |" + (" at or above the threshold |" if threshold_logit is not None
                                                     else "")
    lines += ["", head, "|---|---|---|" + ("---|" if threshold_logit is not None else "")]
    for b in bins:
        span = f"{b['from']:.3g}" if b["from"] == b["to"] else f"{b['from']:.3g}-{b['to']:.3g}"
        row = f"| {span} | {b['calls']} | {b['median_logit']:.2f} |"
        if threshold_logit is not None:
            row += f" {b['above_threshold']:.2f} |"
        lines.append(row)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from evaluate_generalisation import default_shared, shared_missing

    from owlfinder.detect.model import ModelError, load_classifier
    from owlfinder.durable import atomic_write_text
    from owlfinder.evaluation.cues import binned, cue_table, logit, score_family_clips
    from owlfinder.evaluation.generalisation import read_manifest
    from owlfinder.synth import fieldclips
    from owlfinder.synth.families import FAMILIES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a model folder or Hub id (what scripts/detect.py takes)")
    p.add_argument("--family", required=True, choices=sorted(FAMILIES), help="the call generator")
    p.add_argument("--calls", type=int, default=400, help="calls to render and score")
    p.add_argument("--snr", type=float, default=6.0, help="band SNR of every call, dB")
    p.add_argument("--by", default=None, help="the parameter to show the logit along (default: the strongest cue)")
    p.add_argument("--shared", type=Path, default=default_shared(), help="the real recordings (MANIFEST.tsv)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "out", help="folder for cues-<family>.json/.md")
    args = p.parse_args(argv)
    if shared_missing(args.shared):
        return 2
    if args.calls < 30:
        print("error: --calls must be at least 30 (fewer cannot rank parameters)", file=sys.stderr)
        return 2
    try:
        clf = load_classifier(args.model, device="cpu")
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    files = read_manifest(args.shared)["calibration"]
    bgs = fieldclips.load_backgrounds([f["path"] for f in files], clf.sampling_rate, min_s=1.0,
                                      on_error=lambda m: print(f"skipped: {m}", file=sys.stderr))
    metas, logits = score_family_clips(
        clf.score, FAMILIES[args.family], bgs, clf.sampling_rate, args.calls, window_s=clf.window_s, snr_db=args.snr,
        seed=args.seed, progress=lambda i, n: print(f"scored {i}/{n} calls", flush=True) if i % 100 == 0 or i == n
        else None)
    cues = cue_table(metas, logits, min_count=max(30, args.calls // 2))  # most calls have it: a fair ranking
    if not cues:
        print("error: no parameter varies across the calls", file=sys.stderr)
        return 2
    by = args.by or cues[0]["parameter"]
    thr = float(logit(clf.threshold))
    try:
        bins = binned(metas, logits, by, threshold_logit=thr)
    except KeyError as e:
        print(f"error: {e.args[0]} (the parameters are the first column of the table; --by takes one)",
              file=sys.stderr)
        return 2
    result = {"model": args.model, "family": args.family, "calls": args.calls, "snr_db": args.snr,
              "threshold_logit": thr, "median_logit": float(sorted(logits)[len(logits) // 2]), "cues": cues,
              "by": by, "bins": bins}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / f"cues-{args.family}.json", json.dumps(result, indent=1))
    table = _table(args.family, args.model, cues, by, bins, thr, args.snr, args.calls)
    atomic_write_text(args.out / f"cues-{args.family}.md", table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
