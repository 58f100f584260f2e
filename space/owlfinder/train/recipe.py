"""The recipe that trains the bundled detector: OwlNet from scratch on a :class:`~owlfinder.train.bandmix.BandBank`.

Each step draws a fresh batch from the bank (:func:`~owlfinder.train.bandmix.mix_batch`: half owl calls on real
backgrounds at -5..20 dB band SNR, half negatives: real background alone, two backgrounds, or a confuser on
one), so the model rarely sees the same example twice. At fractions ``mine_at`` of the run a hard-negative
round scores every real background window of the bank and a few thousand fresh confuser mixes, and the
highest-scoring ``mine_top`` of them make up ``hard_share`` of every later batch's negatives: the sounds the
model confuses with owls are shown to it again and again. The result is an
``AutoModelForAudioClassification`` (:class:`~owlfinder.owlnet.OwlNetForAudioClassification`) and its feature
extractor, ready for ``save_pretrained``.

Example (a few steps)::

    from owlfinder.train.recipe import RecipeConfig, train_recipe
    model, fe, info = train_recipe(bank, RecipeConfig(steps=10))
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from owlfinder.data.schema import LABELS
from owlfinder.machine import cpu_name
from owlfinder.owlnet import OwlNetConfig, OwlNetFeatureExtractor, OwlNetForAudioClassification
from owlfinder.train.bandmix import BandBank, MixConfig, mix_batch

__all__ = ["PRECISIONS", "RecipeConfig", "average_from_arg", "average_models", "bf16_kernels", "machine_record",
           "mine_at_arg", "score_features", "train_recipe"]

_OWL = LABELS.index("owl")
#: Training precisions (:attr:`RecipeConfig.precision`).
PRECISIONS = ("fp32", "bf16")


@dataclass
class RecipeConfig:
    """What :func:`train_recipe` does.

    Attributes:
        steps: optimiser steps (``time_budget_s`` may stop earlier; the learning-rate schedule follows
            whichever runs out first).
        batch_size: examples per step, half owl and half not.
        lr, weight_decay, warmup_steps: AdamW with linear warm-up, then cosine decay.
        mine_at: fractions of the run at which a hard-negative round runs (empty: none).
        mine_top: fraction of the scored candidates kept as hard negatives.
        mine_candidates: fresh synthetic negatives scored in each round, besides every real window.
        mine_hop_frames: hop between the real background windows scored (frames).
        hard_share: fraction of each batch's negatives drawn from the hard negatives once there are any.
        mix: how examples are mixed (:class:`~owlfinder.train.bandmix.MixConfig`).
        model: :class:`~owlfinder.owlnet.OwlNetConfig` settings (e.g. ``{"channels": [16, 32, 48]}``).
        label_smoothing: of the cross-entropy.
        seed: seeds everything.
        time_budget_s: wall-clock limit in s.
        threads: torch intra-op threads while training (``None``: torch's default).
        init_from: a model folder to start from (warm start; its extractor must match the bank).
        members: models trained apart (seeds ``seed``, ``seed + 1``, ...) and joined into one OwlNet ensemble
            that averages their logits (:meth:`~owlfinder.owlnet.OwlNetForAudioClassification.from_members`):
            ``members`` times the training and the model's compute.
        average_from: from this fraction of the run on, keep the running mean of the weights after every step
            and return that mean (dense weight averaging, as SWAD does for domain generalisation: a flatter
            optimum that moves less with the seed), its batch-norm statistics measured again on fresh batches.
            ``None``: the last weights. Costs nothing at inference. Kept because, against the same run's last
            weights, it found more of the held-out family's calls on the calibration sites in three folds of
            five, as many in one and fewer in one (mean +2.8 points; docs/generalisation.md).
        precision: ``"fp32"``, or ``"bf16"``: each training step's forward pass under bfloat16 autocast (the
            loss, the optimiser, mining, the batch-norm refresh and the saved weights stay float32). 2.2x faster
            steps on a CPU with AVX512-BF16 (measured: 0.21 s against 0.46 s a step of 64), far slower on one
            without it. A recipe of its own: its draws differ from fp32's (docs/generalisation.md).
    """

    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    mine_at: tuple[float, ...] = (0.4, 0.7)
    mine_top: float = 0.1
    mine_candidates: int = 3000
    mine_hop_frames: int = 25
    hard_share: float = 0.25
    mix: MixConfig = field(default_factory=MixConfig)
    model: dict = field(default_factory=dict)
    label_smoothing: float = 0.0
    seed: int = 0
    time_budget_s: float | None = None
    threads: int | None = None
    init_from: str | None = None
    members: int = 1
    average_from: float | None = 0.5
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")

    def to_dict(self) -> dict:
        d = asdict(self)
        # recipes recorded before these existed compare equal (train_or_reuse)
        if d["average_from"] is None:
            del d["average_from"]
        if d["precision"] == "fp32":
            del d["precision"]
        if not d["mix"]["p_flatten"]:
            del d["mix"]["p_flatten"]
        if not d["mix"]["p_glide_confuser"]:
            for k in ("p_glide_confuser", "confuser_glide_bands", "confuser_glide_frames"):
                del d["mix"][k]
        if not d["mix"]["p_shorten"]:
            for k in ("p_shorten", "shorten_min_frames"):
                del d["mix"][k]
        return d


def average_from_arg(value: str) -> float | None:
    """``--average-from`` of the recipe scripts: a fraction of the run in [0, 1), or ``none`` (the last weights)."""
    if value.strip().lower() == "none":
        return None
    fraction = float(value)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"{value} is not a fraction of the run in [0, 1)")
    return fraction


def mine_at_arg(value: str) -> float:
    """One value of ``--mine-at``: a fraction of the run in (0, 1) at which a hard-negative round runs."""
    fraction = float(value)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"{value} is not a fraction of the run in (0, 1)")
    return fraction


def score_features(model: torch.nn.Module, feats: np.ndarray | list, batch_size: int = 256) -> np.ndarray:
    """Owl probability of each dB feature array ``[bands, frames]`` (eval mode, no augmentation)."""
    was = model.training
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(feats), batch_size):
            x = torch.from_numpy(np.stack([np.asarray(f, dtype=np.float32) for f in feats[i:i + batch_size]]))
            out.append(torch.softmax(model(input_features=x).logits, -1)[:, _OWL].numpy())
    model.train(was)
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _build(bank: BandBank, c: RecipeConfig) -> tuple[OwlNetForAudioClassification, OwlNetFeatureExtractor]:
    if c.init_from:
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        model = AutoModelForAudioClassification.from_pretrained(c.init_from)
        fe = AutoFeatureExtractor.from_pretrained(c.init_from)
        if model.config.label2id.get("owl") != _OWL:
            raise ValueError(f"{c.init_from}: warm start needs the owl label at index {_OWL}")
        if not isinstance(fe, OwlNetFeatureExtractor) or fe.feature_size != bank.n_bands:
            raise ValueError(f"{c.init_from}: warm start needs an OwlNet model with the bank's {bank.n_bands} bands")
        return model, fe
    fe = bank.feature_extractor()
    cfg = OwlNetConfig(n_bins=fe.feature_size, id2label=dict(enumerate(LABELS)),
                       label2id={name: i for i, name in enumerate(LABELS)}, **c.model)
    return OwlNetForAudioClassification(cfg), fe


def _mine(rng: np.random.Generator, model, bank: BandBank, c: RecipeConfig,
          aug_rng: np.random.Generator | None = None) -> tuple[list[np.ndarray], dict]:
    """The hard negatives: the top ``mine_top`` of every real window and ``mine_candidates`` fresh mixes."""
    n = bank.window_frames
    real = [(10.0 * b[:, i:i + n].astype(np.float32)) for b in bank.backgrounds
            for i in range(0, max(1, b.shape[1] - n + 1), c.mine_hop_frames)]
    quiet = MixConfig(**{**asdict(c.mix), "p_time_mask": 0.0, "p_band_mask": 0.0, "p_confuser_neg": 0.8})
    synth, _ = (mix_batch(rng, bank, 0, c.mine_candidates, quiet, aug_rng=aug_rng) if c.mine_candidates
                else (np.zeros((0,)), None))
    cand = real + list(synth)
    s = score_features(model, cand)
    top = np.argsort(s)[::-1][: max(1, int(c.mine_top * len(cand)))]
    info = {"candidates": len(cand), "kept": int(len(top)), "real": int((top < len(real)).sum()),
            "min_score": float(s[top].min()), "max_score": float(s[top].max())}
    return [cand[i].astype(np.float16) for i in top], info


def _training_batch(rng: np.random.Generator, bank: BandBank, c: RecipeConfig, hard: list,
                    aug_rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One training batch ``(x, y)``: half owl calls, half negatives, ``hard_share`` of them hard ones once mined."""
    half = c.batch_size // 2
    n_neg = c.batch_size - half
    return mix_batch(rng, bank, half, n_neg, c.mix, hard=hard, n_hard=int(round(c.hard_share * n_neg)) if hard else 0,
                     aug_rng=aug_rng)


def _refresh_batch_norm(rng: np.random.Generator, model, bank: BandBank, c: RecipeConfig, hard: list,
                        batches: int = 40, aug_rng: np.random.Generator | None = None) -> None:
    """Measure every batch norm's running statistics again, as the plain mean over ``batches`` fresh training
    batches: averaged weights need statistics of their own (the averaged statistics belong to other weights)."""
    norms = [m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative mean
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(input_features=torch.from_numpy(_training_batch(rng, bank, c, hard, aug_rng)[0]))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.eval()


def train_recipe(bank: BandBank, config: RecipeConfig | None = None, *, log: Callable[[str], None] = print,
                 on_last: Callable[[OwlNetForAudioClassification], None] | None = None):
    """Train OwlNet on ``bank`` (its calls are the positives, everything else the negatives).

    ``on_last``, with ``config.average_from`` set, is called with the model holding its last weights before
    they are replaced by their average (to compare the two from one run).

    Returns:
        ``(model, feature_extractor, info)``; info has the steps run, the last losses, wall time, the mining
        rounds, the parameter count and the recipe (and ``members``, each one's own info, for an ensemble).
    """
    c = config or RecipeConfig()
    if not bank.calls or not bank.backgrounds:
        raise ValueError("the bank needs owl calls and real backgrounds")
    if c.members > 1:
        from dataclasses import replace

        trained = []
        for k in range(c.members):
            log(f"member {k + 1} of {c.members} (seed {c.seed + k})")
            trained.append(train_recipe(bank, replace(c, members=1, seed=c.seed + k), log=log))
        model = OwlNetForAudioClassification.from_members([m for m, _, _ in trained])
        infos = [i for _, _, i in trained]
        info = {"steps": sum(i["steps"] for i in infos), "wall_s": round(sum(i["wall_s"] for i in infos), 1),
                "n_params": int(sum(p.numel() for p in model.parameters())), "members": infos,
                "recipe": c.to_dict(), "machine": infos[0]["machine"],
                **{k: infos[0][k] for k in ("n_calls", "n_confusers", "n_backgrounds")}}
        return model, trained[0][1], info
    torch.manual_seed(c.seed)
    rng = np.random.default_rng(c.seed)
    aug_rng = np.random.default_rng([c.seed, 1])  # augmentations added later draw apart (mix_batch's aug_rng)
    prev_threads = torch.get_num_threads()
    if c.threads:
        torch.set_num_threads(c.threads)
    machine = machine_record()  # with the threads this run uses
    if c.precision == "bf16" and not bf16_kernels():
        log("warning: this CPU has no native bfloat16 kernels, so --precision bf16 trains slower than fp32")
    model, fe = _build(bank, c)
    model.to(memory_format=torch.channels_last)  # 1.4x faster steps on a CPU; saved weights are the same
    averaged: torch.optim.swa_utils.AveragedModel | None = None
    opt = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    t0 = time.monotonic()

    def progress(step: int) -> float:
        done = step / max(1, c.steps)
        if c.time_budget_s:
            done = max(done, (time.monotonic() - t0) / c.time_budget_s)
        return min(1.0, done)

    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, c.warmup_steps)) * 0.5 * (1 + math.cos(math.pi * progress(s))))
    hard: list[np.ndarray] = []
    rounds, losses = [], []
    pending = sorted(c.mine_at)
    step = 0
    model.train()
    try:
        for step in range(c.steps):
            p = progress(step)
            if c.time_budget_s is not None and p >= 1.0:
                log(f"time budget reached after {step} steps")
                break
            if pending and p >= pending[0]:
                pending.pop(0)
                hard, info = _mine(rng, model, bank, c, aug_rng)
                rounds.append({"at_step": step, **info})
                log(f"hard negatives at step {step}: kept {info['kept']} of {info['candidates']} "
                    f"(scores {info['min_score']:.3f}-{info['max_score']:.3f}, {info['real']} real)")
            x, y = _training_batch(rng, bank, c, hard, aug_rng)
            target = torch.from_numpy(np.where(y == 1, _OWL, 1 - _OWL))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=c.precision == "bf16"):
                out = model(input_features=torch.from_numpy(x))
            each = out.hidden_states if out.hidden_states is not None else out.logits[None]  # members learn apart
            loss = torch.stack([torch.nn.functional.cross_entropy(m.float(), target, label_smoothing=c.label_smoothing)
                                for m in each]).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if c.average_from is not None and progress(step + 1) > c.average_from:
                if averaged is None:
                    averaged = torch.optim.swa_utils.AveragedModel(model)
                    log(f"averaging the weights from step {step + 1}")
                averaged.update_parameters(model)
            if (step + 1) % 50 == 0:
                el = time.monotonic() - t0
                left = el / max(1e-9, progress(step + 1)) - el
                log(f"step {step + 1}/{c.steps} loss {np.mean(losses[-50:]):.4f} ({el:.0f} s, ~{left:.0f} s left)")
        else:
            step = c.steps
    finally:
        torch.set_num_threads(prev_threads)
    model.eval()
    averaged_steps = 0
    if averaged is not None:
        averaged_steps = int(averaged.n_averaged)
        if on_last is not None:
            on_last(model)
        model.load_state_dict(averaged.module.state_dict())
        _refresh_batch_norm(rng, model, bank, c, hard, aug_rng=aug_rng)
        log(f"weights averaged over the last {averaged_steps} steps; batch norms measured again")
    info = {"steps": step, "loss": float(np.mean(losses[-100:])) if losses else None,
            "averaged_steps": averaged_steps,
            "wall_s": round(time.monotonic() - t0, 1), "mining": rounds,
            "n_calls": len(bank.calls), "n_confusers": len(bank.confusers), "n_backgrounds": len(bank.backgrounds),
            "n_params": int(sum(p.numel() for p in model.parameters())), "recipe": c.to_dict(), "machine": machine}
    return model, fe, info


def bf16_kernels() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (AVX512-BF16 or AMX), where ``precision="bf16"`` pays."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def machine_record() -> dict:
    """What decides whether a seed repeats: a run repeats bit for bit only with the same torch, CPU kernels and
    thread count (measured: the same seed trained with 1 thread and with 2 gives other weights), so a seed names one
    draw only on one kind of machine.

    Returns:
        ``{"torch", "cpu_capability", "threads", "cpu"}``.
    """
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(), "cpu": cpu_name()}


def average_models(models: list[OwlNetForAudioClassification], bank: BandBank, config: RecipeConfig | None = None,
                   *, batches: int = 20, seed: int = 7) -> OwlNetForAudioClassification:
    """One network whose weights are the mean of ``models``' (a "model soup"), its batch norms measured again on
    ``batches`` fresh training batches of ``bank`` (no hard negatives). Only meaningful for runs that stayed in
    one basin, e.g. the same seed with different augmentations: check the loss midway before trusting it.
    Unlike :meth:`~owlfinder.owlnet.OwlNetForAudioClassification.from_members`, it costs one network at
    inference.

    Raises:
        ValueError: no models, or models whose architectures or parameter names differ.
    """
    if not models:
        raise ValueError("no models to average")
    states = [m.state_dict() for m in models]
    first = states[0]
    for s in states[1:]:
        if s.keys() != first.keys() or any(s[k].shape != first[k].shape for k in first):
            raise ValueError("the models differ in architecture; only their weights may differ")
    out = OwlNetForAudioClassification(models[0].config.__class__.from_dict(models[0].config.to_dict()))
    out.load_state_dict({k: torch.stack([s[k] for s in states]).mean(0) if first[k].is_floating_point() else first[k]
                         for k in first})
    _refresh_batch_norm(np.random.default_rng(seed), out, bank, config or RecipeConfig(), [], batches=batches)
    return out
