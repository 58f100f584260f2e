#!/usr/bin/env python
"""Join saved OwlNet models into one: an ensemble (logits averaged) or a model soup (weights averaged).

    python scripts/combine_models.py --how ensemble --out out/lofo/ens/fold-fm out/lofo/cglide/fold-fm out/lofo/short/fold-fm
    python scripts/combine_models.py --how soup --families additive sourcefilter contours \\
        --out out/lofo/soup/fold-fm out/lofo/cglide/fold-fm out/lofo/short/fold-fm

Then ``python scripts/evaluate_generalisation.py --tag ens --reuse-models`` calibrates and evaluates each fold's
joined model like a trained one. ``ensemble`` keeps every network
(:meth:`~owlfinder.owlnet.OwlNetForAudioClassification.from_members`: as many times the model's compute);
``soup`` averages them into one (:func:`owlfinder.train.recipe.average_models`; its batch norms are measured again
on the band bank of ``--families``, the families the models trained on, rendered in ``--work``). Both were tried
on the ``cglide`` and ``short`` fold models and not kept (docs/generalisation.md). ``--out`` gets the model (without
the first model's threshold, which was not set for it), its feature extractor and a ``training.json`` that names the
models it came from.
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
    from owlfinder.synth.families import FAMILIES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", help="two or more OwlNet model folders of one architecture")
    p.add_argument("--how", choices=("ensemble", "soup"), required=True)
    p.add_argument("--out", type=Path, required=True, help="folder for the joined model (must not hold a model)")
    p.add_argument("--families", nargs="+", choices=list(FAMILIES), help="soup: the families the models trained on")
    p.add_argument("--shared", type=Path, default=default_shared(), help="soup: the real recordings (MANIFEST.tsv)")
    p.add_argument("--work", type=Path, default=REPO / "out" / "lofo", help="soup: the cache folder's parent")
    args = p.parse_args(argv)
    if len(args.models) < 2:
        print("error: give two or more models to join", file=sys.stderr)
        return 2
    if (args.out / "model.safetensors").exists():
        print(f"error: {args.out} already holds a model; give another --out", file=sys.stderr)
        return 2
    if args.how == "soup" and not args.families:
        print("error: --how soup needs --families (its batch norms are measured on their calls)", file=sys.stderr)
        return 2

    from transformers.utils import logging as hf_logging

    from owlfinder.evaluation.lofo import training_record
    from owlfinder.owlnet import OwlNetFeatureExtractor, OwlNetForAudioClassification

    hf_logging.disable_progress_bar()
    models = []
    for m in args.models:
        if not (Path(m) / "config.json").is_file():
            print(f"error: {m}: not a model folder (no config.json)", file=sys.stderr)
            return 2
        try:
            models.append(OwlNetForAudioClassification.from_pretrained(m))
        except (OSError, ValueError, KeyError) as e:  # not a folder, not an OwlNet, unreadable weights
            print(f"error: {m}: not an OwlNet model folder ({str(e).splitlines()[0]})", file=sys.stderr)
            return 2
    try:
        if args.how == "ensemble":
            joined = OwlNetForAudioClassification.from_members(models)
        else:
            if shared_missing(args.shared):
                return 2
            from owlfinder.evaluation.lofo import Material
            from owlfinder.train.recipe import average_models

            bank = Material(args.shared, args.work / "cache").bank(args.families)
            joined = average_models(models, bank)
    except ValueError as e:
        print(f"error: {', '.join(args.models)}: {e}", file=sys.stderr)
        return 2
    # The config is the first model's (its window too); its threshold was set for that model alone.
    for key in ("owl_threshold", "owl_calibration"):
        if hasattr(joined.config, key):
            delattr(joined.config, key)
    joined.save_pretrained(args.out)
    OwlNetFeatureExtractor.from_pretrained(args.models[0]).save_pretrained(args.out)
    # each member's training.json, or a fold folder's lofo.json record
    sources = [{"model": str(m), **training_record(m)} for m in args.models]
    families = args.families or sources[0]["families"]
    training = {"combined": args.how, "from": sources}
    if all(src["background_splits"] is not None for src in sources):  # the sites any member trained on
        training["background_splits"] = sorted({s for src in sources for s in src["background_splits"]})
    atomic_write_text(args.out / "training.json", json.dumps({"families": families, "training": training}, indent=1))
    print(f"{args.out}: {args.how} of {len(models)} models ({joined.config.n_members} network(s)); not calibrated "
          "yet: evaluate_generalisation.py --reuse-models sets its threshold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
