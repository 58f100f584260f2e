#!/usr/bin/env python
"""One labelling round, one command: from the Space's verdicts to a better model, compared and promoted.

    # the Space's dataset folder alone
    python scripts/retrain.py --model space/models/powerful-owl-starter --verdicts owl_data/dataset \\
        --output_dir runs/round-1
    # with the base dataset the model was trained on beside it (a Hub id or a folder), pushed when promoted
    HF_TOKEN=hf_... python scripts/retrain.py --model me/owl-detector --verdicts me/owl-verdicts \\
        --base me/owl-clips --output_dir runs/round-1 --push_to me/owl-detector

Steps (each logged, and written to ``OUTPUT/report.json`` and ``OUTPUT/report.md``):

1. read the new verdicts (``--verdicts``: the Space's ``OWL_DATA_DIR/dataset`` folder or its Hub dataset) and
   any ``--base`` datasets, conformed to one schema, each keeping its own groups;
2. measure the **current** model (``--model``) on all the new verdicts first, overall and per site;
3. split the verdicts: whole recordings when there are enough, else contiguous time blocks minutes apart
   (``owlfinder.train.splits``); the held-out part is used only to compare models. Fine-tune the current
   model on the base training clips plus the round's training part (not-owl clips with a reason weigh
   ``--hard_negative_weight``), pick the checkpoint and calibrate its threshold on the base validation split
   plus a slice of the round (or on ``--candidate``, an already trained model, skip training);
4. compare candidate and current on the round's held-out part and on each base validation/test split;
   **promote only when the candidate is at least as good at the target precision** on each
   (``owlfinder.train.retrain.decide``). Per-site thresholds are calibrated from each site's verified
   clips the candidate was not trained on and stored in its ``config.json`` (``owl_site_thresholds``).
   The before/after table goes into the candidate's model card. A promoted candidate is moved to
   ``OUTPUT/model`` and, with ``--push_to REPO``, uploaded as a new revision (token from ``HF_TOKEN``).

A refused candidate stays in ``OUTPUT/candidate`` for inspection. Exit status 0 either way (the decision is
in the last line and in ``report.json``), 2 on bad input.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import HfArgumentParser, TrainingArguments, set_seed

from owlfinder.data.schema import SAMPLE_RATE
from owlfinder.detect.model import ModelError, load_classifier
from owlfinder.durable import atomic_write_text
from owlfinder.evaluation.metrics import make_compute_metrics
from owlfinder.train.augment import Augmenter
from owlfinder.train.calibration import MIN_SITE_CLIPS, site_thresholds, write_site_thresholds
from owlfinder.train.clipsets import ClipSet, DataError
from owlfinder.train.modelcard import credits_for_groups, render_model_card, reproduce_command
from owlfinder.train.retrain import decide, measure, promote, push_model, round_markdown, site_of_clips
from owlfinder.train.sources import (
    DEFAULT_HARD_NEGATIVE_WEIGHT,
    apply_reason_weights,
    combine_sources,
    load_sources,
    parse_reason_weights,
)
from owlfinder.train.splits import DEFAULT_BLOCK_S, DEFAULT_GAP_S, DEFAULT_MIN_GROUPS, split_source
from owlfinder.train.trainer import (
    CHECKPOINT_PREFIX,
    AudioCollator,
    ClipDataset,
    OwlTrainer,
    TrainingError,
    build_model,
    class_weights,
    default_augment,
    finalize,
    model_size,
    predict_scores,
)

logger = logging.getLogger("retrain")
ROUND_BEGIN, ROUND_END = "<!-- owlfinder:round:begin -->", "<!-- owlfinder:round:end -->"
HELD_OUT = "round held-out"


@dataclass
class RetrainArguments:
    """What to retrain, on what, and when to promote."""

    model: str = field(default=None, metadata={"help": "The current model: a Hub id or a local folder."})
    verdicts: str = field(default=None, metadata={"help": "The new verdicts: the Space's dataset folder "
                                                          "(OWL_DATA_DIR/dataset) or its Hub dataset id."})
    base: list[str] = field(default_factory=list, metadata={
        "help": "Base datasets the model was trained on (Hub ids or folders); their validation splits are "
                "used for calibration and comparison."})
    candidate: str | None = field(default=None, metadata={
        "help": "Compare this already trained model instead of fine-tuning one."})
    holdout_fraction: float = field(default=0.3, metadata={"help": "Share of the round held out for comparison."})
    validation_fraction: float = field(default=0.25, metadata={
        "help": "Share of the round's remaining clips used for checkpoint choice and calibration."})
    target_precision: float | None = field(default=None, metadata={
        "help": "Target precision (default: the current model's owl_target_precision, else 0.95)."})
    min_gain: float = field(default=0.0, metadata={
        "help": "Least gain in recall at the target precision on the round's held-out clips to promote."})
    min_groups: int = field(default=DEFAULT_MIN_GROUPS, metadata={
        "help": "Fewer recording groups than this and a dataset is split by time blocks."})
    block_s: float = field(default=DEFAULT_BLOCK_S, metadata={"help": "Time-block length, s."})
    gap_s: float = field(default=DEFAULT_GAP_S, metadata={"help": "Least time between split sides, s."})
    hard_negative_weight: float = field(default=DEFAULT_HARD_NEGATIVE_WEIGHT, metadata={
        "help": "Loss weight of not-owl clips labelled with a reason (boobook, koala, frog/insect, ...)."})
    reason_weights: str | None = field(default=None, metadata={"help": "Per-reason weights, e.g. 'boobook=3'."})
    site_min_clips: int = field(default=MIN_SITE_CLIPS, metadata={
        "help": "Least owl and least not-owl clips a site needs for its own threshold."})
    balance: str = field(default="loss", metadata={"choices": ["loss", "sampler", "none"],
                                                   "help": "Class imbalance handling."})
    no_augment: bool = field(default=False, metadata={"help": "Switch off on-the-fly augmentation."})
    push_to: str | None = field(default=None, metadata={
        "help": "Hub model repo to upload a promoted model to as a new revision (token from HF_TOKEN)."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Start afresh in a non-empty --output_dir."})


def _train_defaults():
    spec = importlib.util.spec_from_file_location("owl_train_script", Path(__file__).with_name("train.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod.with_defaults


def parse(argv: list[str]) -> tuple[RetrainArguments, TrainingArguments]:
    parser = HfArgumentParser((RetrainArguments, TrainingArguments))
    if not any(a.split("=", 1)[0] == "--output_dir" for a in argv) and not any(a in ("-h", "--help") for a in argv):
        parser.error("--output_dir is required")
    argv = _train_defaults()(argv)
    if "--save_total_limit" in argv:  # the best checkpoint plus the last are enough here
        argv[argv.index("--save_total_limit") + 1] = "1"
    return parser.parse_args_into_dataclasses(args=argv)


class RetrainError(Exception):
    """Bad input for a round; ``str(err)`` is one line."""


def _scores(clf, clips: ClipSet) -> np.ndarray:
    if not len(clips):
        return np.zeros(0)
    return predict_scores(clf.model, clf.feature_extractor, clips, device=clf.device, progress=False)


def _concat(sets: list[ClipSet | None]) -> ClipSet | None:
    sets = [s for s in sets if s is not None and len(s)]
    return ClipSet.concat(sets) if sets else None


def _prepare_output(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise RetrainError(f"output folder {out} is a file")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise RetrainError(f"output folder {out} is not empty; pass --overwrite_output_dir to start afresh")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _fit(args: RetrainArguments, targs: TrainingArguments, train_set: ClipSet, val_set: ClipSet, target: float,
         window_s: float, token: str | None) -> dict:
    """Fine-tune the current model, keep the best checkpoint, calibrate, save; returns card facts."""
    model, fe, base_desc = build_model(args.model, label_names=train_set.label_names, sampling_rate=SAMPLE_RATE,
                                       window_s=window_s, token=token, freeze_feature_encoder=True)
    aug_cfg = default_augment(args.no_augment)
    augmenter = (Augmenter(aug_cfg, train_set.audio[~train_set.is_owl], SAMPLE_RATE, seed=targs.seed)
                 if aug_cfg else None)
    weights = class_weights(train_set.labels, len(train_set.label_names)) if args.balance == "loss" else None
    trainer = OwlTrainer(model=model, args=targs, train_dataset=ClipDataset(train_set, augmenter),
                         eval_dataset=ClipDataset(val_set), data_collator=AudioCollator.for_model(model, fe, SAMPLE_RATE),
                         processing_class=fe, compute_metrics=make_compute_metrics(train_set.positive_index),
                         balance=args.balance, class_weights=weights, card_writer=lambda folder: None)
    result = trainer.train()
    fin = finalize(trainer.model, fe, val_set, targs.output_dir, target_precision=target, window_s=window_s,
                   save=trainer.save_model, progress=False)
    for p in Path(targs.output_dir).glob(f"{CHECKPOINT_PREFIX}*"):  # the saved folder is the model to ship
        shutil.rmtree(p, ignore_errors=True)
    n_params, size_mb = model_size(trainer.model, targs.output_dir)
    st = trainer.state
    return dict(base_model=base_desc, architecture=type(trainer.model).__name__, n_parameters=n_params,
                size_mb=size_mb, calibration=fin.calibration.to_dict(), validation_metrics=fin.metrics,
                augmentation=aug_cfg.to_dict() if aug_cfg else None,
                training={"steps": st.global_step, "epochs": round(float(st.epoch or 0), 2),
                          "learning rate": targs.learning_rate, "seed": targs.seed,
                          "train runtime (s)": round(result.metrics.get("train_runtime", 0.0), 1)})


def _reproduce(argv: list[str]) -> str | None:
    """This command for the card, every token masked (:func:`owlfinder.train.modelcard.reproduce_command`)."""
    return reproduce_command(argv, script="python scripts/retrain.py") if argv else None


def _put_round_section(card: Path, md: str) -> None:
    block = f"{ROUND_BEGIN}\n## This labelling round: before and after\n\n{md.strip()}\n{ROUND_END}\n"
    text = card.read_text(encoding="utf-8") if card.is_file() else ""
    i, j = text.find(ROUND_BEGIN), text.find(ROUND_END)
    if i >= 0 and j > i:
        text = text[:i] + block + text[j + len(ROUND_END) + 1:]
    else:
        text = (text.rstrip() + "\n\n" if text else "") + block
    atomic_write_text(card, text)


def run(args: RetrainArguments, targs: TrainingArguments, *, api=None) -> dict:
    """The round; returns the report (also written to ``OUTPUT/report.json``)."""
    out = Path(targs.output_dir)
    cand_dir = out / "candidate"
    targs.output_dir = str(cand_dir)
    targs.push_to_hub = False  # never push before the decision
    token = os.environ.get("HF_TOKEN") or None
    device = "cuda" if torch.cuda.is_available() and not targs.use_cpu else "cpu"
    cur = load_classifier(args.model, device=device, token=token)
    target = float(args.target_precision or getattr(cur.model.config, "owl_target_precision", None) or 0.95)
    weights = parse_reason_weights(args.reason_weights, args.hard_negative_weight)

    # 1. Gather.
    sources = load_sources([args.verdicts, *args.base], sampling_rate=SAMPLE_RATE, clip_s=cur.window_s,
                           token=token, progress=False)
    rnd = ClipSet.concat(list(sources[0].sets.values()))
    logger.info("new verdicts (%s): %s", args.verdicts, rnd.describe())

    # 2. The current model on all the new verdicts, first.
    before = measure(_scores(cur, rnd), rnd, lambda n: cur.threshold_for(n)[0], target)
    logger.info("current model on the new verdicts: precision %.3f, recall %.3f at its threshold; by site %s",
                before.precision, before.recall, before.by_site)

    # 3. Split the round; join the base; fine-tune.
    split = dict(min_groups=args.min_groups, block_s=args.block_s, gap_s=args.gap_s, seed=targs.seed)
    sp = split_source(rnd, fraction=args.holdout_fraction, name="round", **split)
    logger.info("round split: %s", sp.how)
    rest, held = rnd.subset(sp.train), rnd.subset(sp.held)
    base_train = base_val = None
    base_how, base_tests = "", {}
    if len(sources) > 1:
        base_train, base_val, base_how, base_tests = combine_sources(
            sources[1:], validation_fraction=0.2, **split)
        logger.info("base: %s", base_how)
    try:
        sv = split_source(rest, fraction=args.validation_fraction, name="round (calibration)", **split)
        round_train, round_val, val_how = rest.subset(sv.train), rest.subset(sv.held), sv.how
    except DataError:
        if base_val is None:
            raise
        round_train, round_val, val_how = rest, None, "round: no calibration slice (too few clips)"
    train_set, val_set = _concat([base_train, round_train]), _concat([base_val, round_val])
    if train_set is None or not train_set.is_owl.any() or train_set.is_owl.all():
        raise RetrainError(f"the training clips need both owl and not-owl clips, have "
                           f"{train_set.counts() if train_set is not None else 'none'}")
    if val_set is None or not val_set.is_owl.any():
        raise RetrainError("no owl clip to calibrate the threshold on; label more owls or give --base")
    hard = apply_reason_weights(train_set, weights)
    logger.info("training on %s; calibrating on %s; hard negatives %s", train_set.describe(), val_set.describe(),
                hard or "none")
    card_facts: dict | None = None
    if args.candidate:
        shutil.copytree(args.candidate, cand_dir)
    else:
        set_seed(targs.seed)
        card_facts = _fit(args, targs, train_set, val_set, target, cur.window_s, token)
    write_site_thresholds(cand_dir, {})  # none inherited from the current model: recomputed below
    cand = load_classifier(cand_dir, device=device)

    # 4. Compare on held-out clips, decide, per-site thresholds, card, promote, push.
    sets = {HELD_OUT: held, **({"base validation": base_val} if base_val is not None else {}),
            **{f"base test ({k})" if len(base_tests) > 1 else "base test": v for k, v in base_tests.items()}}
    pairs, compared = {}, {}
    for name, cs in sets.items():
        m_cur = measure(_scores(cur, cs), cs, lambda n: cur.threshold_for(n)[0], target)
        m_cand = measure(_scores(cand, cs), cs, lambda n: cand.threshold_for(n)[0], target)
        pairs[name] = (m_cur, m_cand)
        compared[name] = {"current": m_cur.to_dict(), "candidate": m_cand.to_dict(),
                          "current_threshold": cur.threshold, "candidate_threshold": cand.threshold}
    decision = decide(pairs, target, min_gain=args.min_gain, primary=HELD_OUT)
    for line in decision.reasons:
        logger.info("compare: %s", line)
    unseen = _concat([round_val, held])
    entries, notes = ({}, ["no round clips outside training to calibrate per-site thresholds on"])
    if unseen is not None:
        entries, notes = site_thresholds(site_of_clips(unseen), unseen.is_owl, _scores(cand, unseen), target,
                                         min_clips=args.site_min_clips)
    write_site_thresholds(cand_dir, entries)
    for note in notes:
        logger.info("site thresholds: %s", note)
    report = {
        "current_model": args.model, "candidate": args.candidate or str(cand_dir), "target_precision": target,
        "round": {"location": args.verdicts, "n_clips": len(rnd), "n_owl": int(rnd.is_owl.sum()),
                  "n_not_owl": int((~rnd.is_owl).sum()), "split": f"{sp.how}; {val_how}",
                  "hard_negatives": hard},
        "base": list(args.base), "base_split": base_how, "before": before.to_dict(), "compared": compared,
        "promoted": decision.promote, "reasons": decision.reasons, "site_thresholds": entries,
        "site_notes": notes, "model_dir": None, "candidate_dir": str(cand_dir), "pushed_revision": None,
    }
    md = round_markdown(report)
    card = cand_dir / "README.md"
    if card_facts is not None:
        split_counts = {n: {**s.counts(), "groups": len(set(s.groups))}
                        for n, s in (("train", train_set), ("validation", val_set), (HELD_OUT, held))}
        atomic_write_text(card, render_model_card(
            model_name=args.push_to or out.name, model_path=args.push_to, sampling_rate=SAMPLE_RATE,
            window_s=cur.window_s, label_names=train_set.label_names,
            data_source=(f"verdicts given by people in the Space on flagged clips, `{args.verdicts}`"
                         + "".join(f", base dataset `{d}`" for d in args.base)),
            synthetic_positives=False,  # the round's owl clips are people's verdicts on real audio
            split_how="; ".join(x for x in (sp.how, val_how, base_how) if x), split_counts=split_counts,
            balance=args.balance, credits=credits_for_groups([*train_set.groups, *val_set.groups]),
            reproduce=_reproduce(sys.argv[1:]),
            **card_facts))
    _put_round_section(card, md)
    if decision.promote:
        report["model_dir"] = str(promote(cand_dir, out / "model"))
        if args.push_to:
            report["pushed_revision"] = push_model(out / "model", args.push_to, token=token, api=api,
                                                   message=f"owlfinder: retrained on {len(rnd)} new verdicts")
    atomic_write_text(out / "report.json", json.dumps(report, indent=1, default=str) + "\n")
    atomic_write_text(out / "report.md", md)
    return report


def main(argv: list[str] | None = None, *, api=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, targs = parse(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        level=logging.INFO)
    transformers.utils.logging.set_verbosity_warning()
    if not args.model or not args.verdicts:
        print("error: --model and --verdicts are required", file=sys.stderr)
        return 2
    try:
        _prepare_output(Path(targs.output_dir), args.overwrite_output_dir)
        report = run(args, targs, api=api)
    except (RetrainError, DataError, TrainingError, ModelError, ValueError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    if report["promoted"]:
        where = report["model_dir"] + (f"; pushed to {args.push_to} revision {report['pushed_revision']}"
                                       if report["pushed_revision"] else "")
        print(f"promoted: the candidate is at least as good at precision {report['target_precision']:.2f}; "
              f"model in {where}")
    else:
        print(f"not promoted: {'; '.join(report['reasons'])}; the candidate stays in {report['candidate_dir']} "
              f"and {args.model} remains the model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
