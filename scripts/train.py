#!/usr/bin/env python
"""Train a Powerful Owl detector (owl / not_owl audio classifier) and calibrate its threshold.

    # fine-tune a Hub model on a dataset store (local folder or Hub id)
    python scripts/train.py --model_name_or_path asapp/sew-d-tiny-100k-ft-ls100h \\
        --dataset ./owl_data/ds --output_dir runs/sewd
    # train a small model from scratch, offline, on labelled folders (owl/, not_owl/)
    python scripts/train.py --from_config owl-whisper-tiny --dataset clips/ --output_dir runs/tiny
    # several processes / a GPU
    accelerate launch scripts/train.py ...

Several ``--dataset`` values (e.g. the base Hub dataset and the Space's verdicts folder) are joined, each
keeping its own groups. Rows with an "unsure" verdict are left out. Each dataset without its own validation
split is split by ``group`` (recording/site), never by clip; one with fewer than ``--min_groups`` groups (a
single labelled recording) is split by contiguous time blocks within its recordings instead, with a gap so
that no two neighbouring clips land on both sides (``owlfinder.train.splits``). Not-owl clips labelled with a
reason (boobook, koala, ...) weigh ``--hard_negative_weight`` in the loss. The best checkpoint by validation F0.5 is
kept; its threshold is then calibrated on validation (the lowest reaching ``--target_precision``) and
written into the saved ``config.json`` as ``owl_threshold``, which detection uses by default. A model card
(README.md) is written beside it and pushed with ``--push_to_hub`` (``--hub_model_id``; token from
``--token``/``--hub_token``/``HF_TOKEN``, used for Hub calls only: never written to any file, card or log).
Groups (recordings) come from the data (see ``owlfinder.train.groups``); ``splits.json`` in the output
folder lists the groups of each split.

A non-empty ``--output_dir`` is refused unless ``--resume`` (continue from its last checkpoint) or
``--overwrite_output_dir`` (start afresh). ``--max_steps`` and ``--time_budget_min`` bound smoke runs.
Every ``TrainingArguments`` option works; defaults differ where noted in ``TRAINING_DEFAULTS``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field

import torch
import transformers
from transformers import HfArgumentParser, TrainingArguments, set_seed

from owlfinder.data.schema import SAMPLE_RATE
from owlfinder.evaluation.metrics import make_compute_metrics
from owlfinder.train.augment import Augmenter
from owlfinder.train.calibration import DEFAULT_TARGET_PRECISION
from owlfinder.train.clipsets import DataError
from owlfinder.train.groups import write_splits
from owlfinder.train.modelcard import (
    credits_for_groups,
    redact_secrets,
    render_model_card,
    reproduce_command,
    secrets_in_env,
)
from owlfinder.train.publish import PublishError, find_secrets, push_model
from owlfinder.train.sources import (
    DEFAULT_HARD_NEGATIVE_WEIGHT,
    apply_reason_weights,
    combine_sources,
    load_sources,
    parse_reason_weights,
)
from owlfinder.train.splits import DEFAULT_BLOCK_S, DEFAULT_GAP_S, DEFAULT_MIN_GROUPS
from owlfinder.train.trainer import (
    NAMED_CONFIGS,
    AudioCollator,
    ClipDataset,
    OwlTrainer,
    TimeBudgetCallback,
    TrainingError,
    build_model,
    check_output_dir,
    class_weights,
    default_augment,
    finalize,
    model_size,
)

logger = logging.getLogger("train")

#: ``TrainingArguments`` defaults used when the option is not on the command line.
TRAINING_DEFAULTS: dict[str, str] = {
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "load_best_model_at_end": "True",
    "metric_for_best_model": "f0.5",
    "greater_is_better": "True",
    "save_total_limit": "2",
    "remove_unused_columns": "False",
    "report_to": "none",
    "logging_steps": "20",
    "per_device_train_batch_size": "32",
    "per_device_eval_batch_size": "64",
    "num_train_epochs": "10",
    "warmup_steps": "0.05",
    "weight_decay": "0.01",
}
#: Learning rates when none is given: fine-tuning a pretrained model vs training from scratch.
LR_FINETUNE, LR_SCRATCH = "3e-5", "1e-3"


@dataclass
class ModelArguments:
    """Which model to train."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Hub id or local folder to fine-tune, e.g. asapp/sew-d-tiny-100k-ft-ls100h "
                          "(needs the Hub or a local copy)."},
    )
    from_config: str | None = field(
        default=None,
        metadata={"help": f"Train from scratch, offline: a named architecture ({', '.join(NAMED_CONFIGS)}), a "
                          "config JSON (model_type + keys, optional 'feature_extractor') or a folder with config.json."},
    )
    freeze_feature_encoder: bool = field(
        default=True, metadata={"help": "Freeze a wav2vec2-style convolutional front end when fine-tuning."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where Hub downloads are cached."})
    token: str | None = field(
        default=None, metadata={"help": "Hub token (default: $HF_TOKEN or the cached login)."}
    )


@dataclass
class DataTrainingArguments:
    """Which data, and how it is used."""

    dataset: list[str] = field(
        default=None,
        metadata={"help": "One or more datasets, each a dataset store (local folder with data/*.parquet, or a Hub "
                          "dataset id) or a folder with owl/ and not_owl/ subfolders; several are joined, each "
                          "keeping its own groups and splits."},
    )
    validation_fraction: float = field(
        default=0.2, metadata={"help": "Share of clips (whole groups) held out when the data has no validation split."}
    )
    window_s: float = field(default=5.0, metadata={"help": "Clip/window length in seconds."})
    balance: str = field(
        default="loss",
        metadata={"help": "Class imbalance: loss (class-weighted cross-entropy), sampler (balanced sampling) or none.",
                  "choices": ["loss", "sampler", "none"]},
    )
    no_augment: bool = field(default=False, metadata={"help": "Switch off on-the-fly augmentation."})
    target_precision: float = field(
        default=DEFAULT_TARGET_PRECISION,
        metadata={"help": "Calibrate the threshold to the lowest one reaching this validation precision."},
    )
    credits: str = field(
        default="auto",
        metadata={"help": "Model card credits: auto (credit ../shared/data when it was used), none, or a Markdown file."},
    )
    dataset_description: str | None = field(
        default=None, metadata={"help": "How the data was made, for the model card (default: the --dataset path)."}
    )
    synthetic_positives: bool = field(
        default=True, metadata={"help": "Say in the model card that the owl clips are synthetic."}
    )
    group_column: str | None = field(
        default=None, metadata={"help": "Split by this column (e.g. site) instead of the group/source column or "
                                        "the recording in <recording>_segment_<n> file names."}
    )
    group_regex: str | None = field(
        default=None, metadata={"help": "Regex narrowing each file name (or --group_column value) to its group: "
                                        "(?P<group>...), else the first group, else the whole match."}
    )
    min_groups: int = field(
        default=DEFAULT_MIN_GROUPS,
        metadata={"help": "A dataset without a validation split and with fewer recording groups than this is split "
                          "by contiguous time blocks within its recordings instead of by group."},
    )
    block_s: float = field(default=DEFAULT_BLOCK_S, metadata={"help": "Time-block length (s) for that split."})
    gap_s: float = field(
        default=DEFAULT_GAP_S, metadata={"help": "Least time (s) between training and held-out clips of one recording."}
    )
    hard_negative_weight: float = field(
        default=DEFAULT_HARD_NEGATIVE_WEIGHT,
        metadata={"help": "Loss weight of not-owl clips labelled with a reason (boobook, koala, ...): hard negatives."},
    )
    reason_weights: str | None = field(
        default=None, metadata={"help": "Per-reason weights overriding --hard_negative_weight, e.g. 'boobook=3,koala=2'."}
    )


@dataclass
class RunArguments:
    """How this run relates to earlier ones, and how long it may take."""

    resume: bool = field(default=False, metadata={"help": "Continue from the last checkpoint in --output_dir."})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Start afresh in a non-empty --output_dir (its checkpoints are deleted)."}
    )
    time_budget_min: float | None = field(
        default=None, metadata={"help": "Stop (after evaluating and saving) once this many minutes have passed."}
    )
    model_name: str | None = field(
        default=None, metadata={"help": "Name in the model card (default: --hub_model_id or the output folder's name)."}
    )
    model_path: str | None = field(
        default=None, metadata={"help": "What the card's usage examples load (default: --hub_model_id or the name)."}
    )
    reproduce: str | None = field(
        default=None, metadata={"help": "Commands shown in the card's Reproduce section (default: this command)."}
    )


def with_defaults(argv: list[str]) -> list[str]:
    """``argv`` plus :data:`TRAINING_DEFAULTS` for options it does not set (save follows a custom eval)."""
    given = {a.split("=", 1)[0].lstrip("-") for a in argv if a.startswith("--")}
    extra: list[str] = []
    defaults = dict(TRAINING_DEFAULTS)
    if "eval_strategy" in given and "save_strategy" not in given:
        i = next(k for k, a in enumerate(argv) if a.split("=", 1)[0] == "--eval_strategy")
        defaults["save_strategy"] = argv[i].split("=", 1)[1] if "=" in argv[i] else argv[i + 1]
    if "eval_steps" in given and "save_steps" not in given:
        i = next(k for k, a in enumerate(argv) if a.split("=", 1)[0] == "--eval_steps")
        defaults["save_steps"] = argv[i].split("=", 1)[1] if "=" in argv[i] else argv[i + 1]
    if "dataloader_pin_memory" not in given and not torch.cuda.is_available():
        defaults["dataloader_pin_memory"] = "False"  # pinning needs an accelerator; torch warns otherwise
    if "learning_rate" not in given:
        defaults["learning_rate"] = LR_SCRATCH if "from_config" in given else LR_FINETUNE
    for key, value in defaults.items():
        if key not in given:
            extra += [f"--{key}", value]
    return [*argv, *extra]


def parse(argv: list[str]) -> tuple[ModelArguments, DataTrainingArguments, RunArguments, TrainingArguments]:
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, RunArguments, TrainingArguments))
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    if not any(a.split("=", 1)[0] == "--output_dir" for a in argv) and not any(a in ("-h", "--help") for a in argv):
        parser.error("--output_dir is required")
    return parser.parse_args_into_dataclasses(args=with_defaults(argv))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    model_args, data_args, run_args, training_args = parse(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        level=logging.INFO if training_args.should_log else logging.WARNING)
    transformers.utils.logging.set_verbosity_warning()
    if not data_args.dataset:
        print("error: --dataset is required (a dataset store or a folder with owl/ and not_owl/)", file=sys.stderr)
        return 2
    token = model_args.token or training_args.hub_token or os.environ.get("HF_TOKEN")
    secrets = [model_args.token, training_args.hub_token, *secrets_in_env()]
    _redact_logs(secrets)
    # Trainer pickles its arguments into training_args.bin and pushes whole folders: keep the token out of
    # both (it is passed to the Hub calls only) and publish with push_model instead.
    training_args.hub_token = None
    want_push, training_args.push_to_hub = training_args.push_to_hub, False
    if want_push and not training_args.hub_model_id:
        print("error: --push_to_hub needs --hub_model_id owner/name", file=sys.stderr)
        return 2
    try:
        resume_ckpt = check_output_dir(training_args.output_dir, resume=run_args.resume,
                                       overwrite=run_args.overwrite_output_dir,
                                       resume_from_checkpoint=training_args.resume_from_checkpoint)
        if training_args.metric_for_best_model and training_args.metric_for_best_model.removeprefix("eval_") not in (
                "f0.5", "f1", "precision", "recall", "average_precision", "loss"):
            raise TrainingError(f"--metric_for_best_model {training_args.metric_for_best_model} is not computed; "
                                "use f0.5, f1, precision, recall, average_precision or loss")
        set_seed(training_args.seed)

        # Data: clips in memory, split by group.
        try:
            reason_weights = parse_reason_weights(data_args.reason_weights, data_args.hard_negative_weight)
        except ValueError as err:
            raise TrainingError(str(err)) from None
        sources = load_sources(data_args.dataset, sampling_rate=SAMPLE_RATE, clip_s=data_args.window_s, token=token,
                               progress=training_args.should_log,
                               group_column=data_args.group_column, group_regex=data_args.group_regex)
        train_set, val_set, split_how, test_sets = combine_sources(
            sources, validation_fraction=data_args.validation_fraction, seed=training_args.seed,
            min_groups=data_args.min_groups, block_s=data_args.block_s, gap_s=data_args.gap_s)
        hard = apply_reason_weights(train_set, reason_weights)
        if hard:
            logger.info("hard negatives weighted by reason: %s", ", ".join(
                f"{n} {r} (x{reason_weights[r]:g})" for r, n in sorted(hard.items())))
        logger.info("train: %s", train_set.describe())
        logger.info("validation: %s (%s)", val_set.describe(), split_how)
        if training_args.process_index == 0:
            write_splits(training_args.output_dir, {"train": train_set.groups, "validation": val_set.groups,
                                                    **({"test": [g for cs in test_sets.values() for g in cs.groups]} if test_sets else {})})
        if not train_set.is_owl.any() or train_set.is_owl.all():
            raise TrainingError(f"the training split needs both classes, has {train_set.counts()}")
        if not val_set.is_owl.any():
            raise TrainingError(f"the validation split has no owl clip ({val_set.counts()}); the threshold "
                                "cannot be calibrated")

        # Model and feature extractor.
        model, fe, base_desc = build_model(
            model_args.model_name_or_path, from_config=model_args.from_config, label_names=train_set.label_names,
            sampling_rate=SAMPLE_RATE, window_s=data_args.window_s, token=token,
            freeze_feature_encoder=model_args.freeze_feature_encoder, cache_dir=model_args.cache_dir)
    except (TrainingError, DataError) as err:
        print(f"error: {redact_secrets(str(err), secrets)}", file=sys.stderr)
        return 2

    aug_cfg = default_augment(data_args.no_augment)
    negatives = train_set.audio[~train_set.is_owl]
    augmenter = (Augmenter(aug_cfg, negatives, SAMPLE_RATE, seed=training_args.seed + training_args.process_index)
                 if aug_cfg else None)
    train_ds = ClipDataset(train_set, augmenter)
    val_ds = ClipDataset(val_set)
    weights = class_weights(train_set.labels, len(train_set.label_names)) if data_args.balance == "loss" else None
    if weights is not None:
        logger.info("class weights %s", dict(zip(train_set.label_names, weights.tolist(), strict=True)))

    card: dict = {}

    def write_card(folder: str) -> None:
        if card:
            with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as f:
                f.write(render_model_card(**card))

    trainer = OwlTrainer(
        model=model,
        args=training_args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        data_collator=AudioCollator.for_model(model, fe, SAMPLE_RATE),
        processing_class=fe,
        compute_metrics=make_compute_metrics(train_set.positive_index),
        balance=data_args.balance,
        class_weights=weights,
        card_writer=write_card,
    )
    if run_args.time_budget_min:
        trainer.add_callback(TimeBudgetCallback(run_args.time_budget_min * 60.0))

    result = trainer.train(resume_from_checkpoint=resume_ckpt)
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()

    # Calibrate on validation with the best model, store the threshold in its config, save.
    fin = finalize(trainer.model, fe, val_set, training_args.output_dir, target_precision=data_args.target_precision,
                   window_s=data_args.window_s, save=trainer.save_model, progress=training_args.should_log)
    if not trainer.is_world_process_zero():
        return 0
    print(("" if fin.calibration.reached else "warning: ") + fin.calibration.message, file=sys.stderr)
    eval_metrics = {f"eval_{k}": v for k, v in fin.metrics.items()}
    eval_metrics["eval_threshold"] = fin.calibration.threshold
    trainer.save_metrics("eval", eval_metrics)

    n_params, size_mb = model_size(trainer.model, training_args.output_dir)
    if data_args.credits == "auto":
        credits = credits_for_groups([*train_set.groups, *val_set.groups], [*train_set.names[:2000]])
    elif data_args.credits == "none":
        credits = None
    else:
        with open(data_args.credits, encoding="utf-8") as f:
            credits = f.read()
    split_counts = {name: {**s.counts(), "groups": len(set(s.groups))} for name, s in
                    (("train", train_set), ("validation", val_set),
                     *((f"test ({k})" if len(test_sets) > 1 else "test", v) for k, v in test_sets.items()))}
    state = trainer.state
    card.update(
        model_name=(run_args.model_name or training_args.hub_model_id
                    or os.path.basename(os.path.abspath(training_args.output_dir))),
        model_path=run_args.model_path,
        base_model=base_desc,
        architecture=type(trainer.model).__name__,
        n_parameters=n_params,
        size_mb=size_mb,
        sampling_rate=SAMPLE_RATE,
        window_s=data_args.window_s,
        label_names=train_set.label_names,
        data_source=data_args.dataset_description or ", ".join(f"`{d}`" for d in data_args.dataset),
        split_how=split_how,
        split_counts=split_counts,
        calibration=fin.calibration.to_dict(),
        validation_metrics=fin.metrics,
        training={
            "steps": state.global_step,
            "epochs": round(float(state.epoch or 0), 2),
            "best checkpoint": os.path.basename(state.best_model_checkpoint or "-"),
            "best validation F0.5 (at 0.5)": state.best_metric,
            "learning rate": training_args.learning_rate,
            "batch size": training_args.per_device_train_batch_size * max(1, training_args.world_size),
            "weight decay": training_args.weight_decay,
            "seed": training_args.seed,
            "train runtime (s)": round(result.metrics.get("train_runtime", 0.0), 1),
        },
        augmentation=aug_cfg.to_dict() if aug_cfg else None,
        balance={"loss": "class-weighted cross-entropy", "sampler": "balanced sampler",
                 "none": "none"}[data_args.balance],
        credits=credits,
        synthetic_positives=data_args.synthetic_positives,
        reproduce=redact_secrets(run_args.reproduce, secrets) if run_args.reproduce else reproduce_command(argv, secrets),
        hub_model_id=training_args.hub_model_id,
    )
    write_card(training_args.output_dir)
    summary = {"threshold": fin.calibration.threshold, "calibration": fin.calibration.message,
               "validation": fin.metrics, "output_dir": training_args.output_dir}
    print(json.dumps(summary, indent=1, default=str))
    leaks = find_secrets([training_args.output_dir], secrets)
    if leaks:  # a last check: nothing written may hold the token, pushed or not
        print(f"error: {leaks[0]} holds a Hub token; not pushing", file=sys.stderr)
        return 1
    if want_push:
        try:
            pushed = push_model(training_args.output_dir, training_args.hub_model_id, token=token,
                                private=training_args.hub_private_repo, secrets=secrets)
        except PublishError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"pushed {', '.join(pushed)} to {training_args.hub_model_id}", file=sys.stderr)
    return 0


class _RedactFilter(logging.Filter):
    """Masks Hub tokens in every log record (a library may log a URL or an argument holding one)."""

    def __init__(self, secrets: list[str | None]):
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact_secrets(msg, self.secrets)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


def _redact_logs(secrets: list[str | None]) -> None:
    roots = (logging.getLogger(), transformers.utils.logging.get_logger())  # transformers has its own handler
    for handler in [h for lg in roots for h in lg.handlers]:
        handler.addFilter(_RedactFilter(secrets))


if __name__ == "__main__":
    sys.exit(main())
