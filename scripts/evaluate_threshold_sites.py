#!/usr/bin/env python
"""How does the calibrated threshold fare at sites it never saw? (leave one site out)

    python scripts/evaluate_threshold_sites.py --models out/lofo/cglide/fold-*            # ~10 s a model
    python scripts/evaluate_threshold_sites.py --models space/models/powerful-owl-starter --margins 0.5 1 2
    python scripts/evaluate_threshold_sites.py --models out/lofo/cglide/fold-additive \
        --splits calibration test --unseen-calls                                          # ~1 min a model

Scans the *calibration* sites' recordings with each model (the engine's defaults: second look and description
check), then holds out each site in turn: the threshold is calibrated on the other sites (<= 0.5 false events per
hour, raised by each ``--margins`` logit), and the held-out site's events at it are false positives. Pooled over
sites and models, that is the false-positive rate a user at a new site can expect from the calibrated threshold,
measured without the test sites. It also names the recording whose sound sets each model's threshold.

``--splits calibration test`` pools both held-out site groups (20 sites, 50 minutes): what a threshold calibrated
on that much audio does at a new site. A model whose training negatives include a split's sites is refused.
``--unseen-calls`` also inserts the calls of every family a model never trained on into copies of the recordings
(those of ``scripts/evaluate_generalisation.py``, cached in ``--work``) and counts them at each site's held-out
threshold: the recall that goes with that false-positive rate. Writes ``threshold-sites.json`` and ``.md`` to
``--out``. See owlfinder.evaluation.generalisation.site_held_out_false_positives.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _table(pooled: list[dict], setters: list[dict], per_model: list[list[dict]], models: list[str],
           splits: list[str]) -> str:
    with_calls = "recall" in pooled[0]
    lines = [f"Leave one site out ({' + '.join(splits)} sites), {len(models)} model(s): the threshold calibrated "
             "on the other sites, false events at the held-out one"
             + (" and recall of the calls of families the model never trained on there" if with_calls else ""), "",
             "| margin (logit) | false events | hours | FP/h (95 % upper) |" + (" recall (calls) |" if with_calls else "")
             + " sites that fired (events) |",
             "|---|---|---|---|---|" + ("---|" if with_calls else "")]
    for r in pooled:
        sites = ", ".join(f"{k} ({v})" for k, v in sorted(r["by_site"].items())) or "-"
        ub = r["fp_per_hour_upper95"]
        rec = f" {_num(r['recall'], '.3f')} ({r['calls']}) |" if with_calls else ""
        lines.append(f"| {r['margin_logit']:g} | {r['false_positives']} | {r['hours']:.2f} | "
                     f"{r['fp_per_hour']:.2f} ({ub:.1f}) |{rec} {sites} |")
    if with_calls:
        margins = [r["margin_logit"] for r in pooled]
        lines += ["", "| model | " + " | ".join(f"margin {m:g}: FP, recall" for m in margins) + " |",
                  "|---|" + "---|" * len(margins)]
        lines += [f"| {model} | " + " | ".join(f"{r['false_positives']}, {_num(r['recall'], '.2f')}" for r in rows) + " |"
                  for model, rows in zip(models, per_model, strict=True)]
    lines += ["", "| model | highest-scoring event | at (s) | score | highest at the other sites |",
              "|---|---|---|---|---|"]
    lines += [f"| {s['model']} | {s['recording'] or '-'} | {s['start_s']:.1f} | {s['score']:.5f} | "
              f"{s['other_sites_score']:.5f} |" for s in setters]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from evaluate_generalisation import default_shared, shared_missing

    from owlfinder.durable import atomic_write_text
    from owlfinder.errors import OwlFinderError
    from owlfinder.evaluation.generalisation import read_manifest, site_held_out_false_positives
    from owlfinder.evaluation.lofo import Material, detect_all, inserted_call_detections, training_record
    from owlfinder.evaluation.report import fp_rate_upper_bound
    from owlfinder.synth.families import FAMILIES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", required=True, help="model folders (what scripts/detect.py takes)")
    p.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 3.0],
                   help="headroom above the calibrated threshold, logits")
    p.add_argument("--target", type=float, default=0.5, help="false events per hour allowed on the other sites")
    p.add_argument("--shared", type=Path, default=default_shared(), help="the real recordings (MANIFEST.tsv)")
    p.add_argument("--out", type=Path, default=REPO / "out", help="folder for threshold-sites.json/.md")
    p.add_argument("--splits", nargs="+", choices=["calibration", "test"], default=["calibration"],
                   help="the site groups pooled (the test sites only for models that never trained on them)")
    p.add_argument("--unseen-calls", action="store_true",
                   help="also count the calls of the families each model never trained on, at each site's threshold")
    p.add_argument("--work", type=Path, default=REPO / "out" / "lofo" / "cache",
                   help="where the copies with calls are cached (evaluate_generalisation.py's cache)")
    args = p.parse_args(argv)
    if shared_missing(args.shared):
        return 2
    splits = list(dict.fromkeys(args.splits))
    manifest = read_manifest(args.shared)
    files = [f for s in splits for f in manifest[s]]
    paths, sites = [f["path"] for f in files], [f["site"] for f in files]
    if len(set(sites)) < 2:
        print(f"error: {args.shared}: the {' + '.join(splits)} split has {len(set(sites))} site(s); two are needed",
              file=sys.stderr)
        return 2
    trained = []
    for model in args.models:
        try:
            trained.append(training_record(model))
        except (OSError, ValueError) as e:  # no folder, no config.json, a broken record
            print(f"error: {model}: not a model folder ({e})", file=sys.stderr)
            return 2
        negatives = trained[-1]["background_splits"]
        if "test" in splits and (negatives is None or "test" in negatives):
            why = "trained on the test sites" if negatives else "does not record which sites it trained on"
            print(f"error: {model}: {why}, so they cannot be held out for it (leave out --splits test)",
                  file=sys.stderr)
            return 2
    mat = Material(args.shared, args.work, log=lambda m: print(m, flush=True)) if args.unseen_calls else None
    per_model, setters = [], []
    for i, model in enumerate(args.models, 1):
        unseen = [f for f in FAMILIES if f not in trained[i - 1]["families"]]
        try:
            dets = detect_all(model, paths)
            calls = inserted_call_detections(mat, model, splits, unseen) if mat else None
        except (OwlFinderError, OSError) as e:  # a bad model folder, an unreadable recording
            print(f"error: {model}: {e}", file=sys.stderr)
            return 2
        per_model.append(site_held_out_false_positives(dets, sites, args.margins, args.target, calls=calls))
        if mat:
            print(f"model {i}/{len(args.models)}: calls of {', '.join(unseen)} inserted ({len(calls)} copies)",
                  flush=True)
        best = max(((e.score, e.start_s, path, site) for d, path, site in zip(dets, paths, sites, strict=True)
                    for e in d.events), default=(0.0, 0.0, None, None))
        rel = str(Path(best[2]).relative_to(args.shared)) if best[2] else None
        others = max((e.score for d, site in zip(dets, sites, strict=True) if site != best[3] for e in d.events),
                     default=0.0)
        setters.append({"model": model, "recording": rel, "start_s": best[1], "score": best[0],
                        "other_sites_score": others})
        print(f"model {i}/{len(args.models)}: {model} (highest event {best[0]:.5f} in {rel})", flush=True)
    pooled = []
    for k, margin in enumerate(args.margins):
        rows = [m[k] for m in per_model]
        fp, hours = sum(r["false_positives"] for r in rows), sum(r["hours"] for r in rows)
        by_site = sum((Counter(r["by_site"]) for r in rows), Counter())
        row = {"margin_logit": margin, "false_positives": fp, "hours": round(hours, 4),
               "fp_per_hour": fp / hours, "fp_per_hour_upper95": fp_rate_upper_bound(fp, hours),
               "by_site": dict(by_site)}
        if args.unseen_calls:
            n = sum(r["calls"] for r in rows)
            row.update(calls=n, recall=sum(r["recall"] * r["calls"] for r in rows if r["calls"]) / n if n else None)
        pooled.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "threshold-sites.json", json.dumps(
        {"models": args.models, "splits": splits, "target_fp_per_hour": args.target, "pooled": pooled,
         "per_model": per_model, "highest_events": setters}, indent=1))
    table = _table(pooled, setters, per_model, args.models, splits)
    atomic_write_text(args.out / "threshold-sites.md", table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
