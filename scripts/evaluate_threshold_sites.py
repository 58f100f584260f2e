#!/usr/bin/env python
"""How does the calibrated threshold fare at sites it never saw? (leave one calibration site out)

    python scripts/evaluate_threshold_sites.py --models out/lofo/cglide/fold-*          # ~10 s a model
    python scripts/evaluate_threshold_sites.py --models space/models/powerful-owl-starter --margins 0.5 1 2

Scans the *calibration* sites' recordings with each model (the engine's defaults: second look and description
check), then holds out each site in turn: the threshold is calibrated on the other sites (<= 0.5 false events per
hour, raised by each ``--margins`` logit), and the held-out site's events at it are false positives. Pooled over
sites and models, that is the false-positive rate a user at a new site can expect from the calibrated threshold,
measured without the test sites. It also names the recording whose sound sets each model's threshold. Writes
``threshold-sites.json`` and ``.md`` to ``--out``. See owlfinder.evaluation.generalisation.site_held_out_false_positives.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))


def _table(pooled: list[dict], setters: list[dict], n_models: int) -> str:
    lines = [f"Leave one calibration site out, {n_models} model(s): the threshold calibrated on the other sites, "
             "false events at the held-out one", "",
             "| margin (logit) | false events | hours | FP/h (95 % upper) | sites that fired (events) |",
             "|---|---|---|---|---|"]
    for r in pooled:
        sites = ", ".join(f"{k} ({v})" for k, v in sorted(r["by_site"].items())) or "-"
        ub = r["fp_per_hour_upper95"]
        lines.append(f"| {r['margin_logit']:g} | {r['false_positives']} | {r['hours']:.2f} | "
                     f"{r['fp_per_hour']:.2f} ({ub:.1f}) | {sites} |")
    lines += ["", "| model | highest-scoring calibration event | at (s) | score | highest at the other sites |",
              "|---|---|---|---|---|"]
    lines += [f"| {s['model']} | {s['recording'] or '-'} | {s['start_s']:.1f} | {s['score']:.5f} | "
              f"{s['other_sites_score']:.5f} |" for s in setters]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from evaluate_generalisation import default_shared, shared_missing

    from owlfinder.durable import atomic_write_text
    from owlfinder.errors import OwlFinderError
    from owlfinder.evaluation.generalisation import read_manifest, site_held_out_false_positives
    from owlfinder.evaluation.lofo import detect_all
    from owlfinder.evaluation.report import fp_rate_upper_bound

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", required=True, help="model folders (what scripts/detect.py takes)")
    p.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 3.0],
                   help="headroom above the calibrated threshold, logits")
    p.add_argument("--target", type=float, default=0.5, help="false events per hour allowed on the other sites")
    p.add_argument("--shared", type=Path, default=default_shared(), help="the real recordings (MANIFEST.tsv)")
    p.add_argument("--out", type=Path, default=REPO / "out", help="folder for threshold-sites.json/.md")
    args = p.parse_args(argv)
    if shared_missing(args.shared):
        return 2
    files = read_manifest(args.shared)["calibration"]
    paths, sites = [f["path"] for f in files], [f["site"] for f in files]
    if len(set(sites)) < 2:
        print(f"error: {args.shared}: the calibration split has {len(set(sites))} site(s); two are needed",
              file=sys.stderr)
        return 2
    per_model, setters = [], []
    for i, model in enumerate(args.models, 1):
        try:
            dets = detect_all(model, paths)
        except (OwlFinderError, OSError) as e:  # a bad model folder, an unreadable recording
            print(f"error: {model}: {e}", file=sys.stderr)
            return 2
        per_model.append(site_held_out_false_positives(dets, sites, args.margins, args.target))
        best = max(((e.score, e.start_s, path, site) for d, path, site in zip(dets, paths, sites, strict=True)
                    for e in d.events), default=(0.0, 0.0, None, None))
        rel = str(Path(best[2]).relative_to(args.shared)) if best[2] else None
        others = max((e.score for d, site in zip(dets, sites, strict=True) if site != best[3] for e in d.events),
                     default=0.0)
        setters.append({"model": model, "recording": rel, "start_s": best[1], "score": best[0],
                        "other_sites_score": others})
        print(f"model {i}/{len(args.models)}: {model} (highest calibration event {best[0]:.5f} in {rel})", flush=True)
    pooled = []
    for k, margin in enumerate(args.margins):
        rows = [m[k] for m in per_model]
        fp, hours = sum(r["false_positives"] for r in rows), sum(r["hours"] for r in rows)
        by_site = sum((Counter(r["by_site"]) for r in rows), Counter())
        pooled.append({"margin_logit": margin, "false_positives": fp, "hours": round(hours, 4),
                       "fp_per_hour": fp / hours, "fp_per_hour_upper95": fp_rate_upper_bound(fp, hours),
                       "by_site": dict(by_site)})
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "threshold-sites.json", json.dumps(
        {"models": args.models, "target_fp_per_hour": args.target, "pooled": pooled, "per_model": per_model,
         "highest_events": setters}, indent=1))
    table = _table(pooled, setters, len(args.models))
    atomic_write_text(args.out / "threshold-sites.md", table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
