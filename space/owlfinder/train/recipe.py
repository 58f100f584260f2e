"""The multi-family training recipe: a small audio classifier trained in memory on clips of several call
families, confusers and real negatives, with SpecAugment-style masking, background mixing and hard-negative
mining, saved as an ``AutoModelForAudioClassification`` folder the detection engine loads.

Rounds: the model trains for ``mine_after`` of the steps; it then scores every real-negative window and
confuser clip, and the highest-scoring ones (the sounds it confuses with owls) are drawn ``mine_weight``
times as often for the rest of training.

Example (a few steps on random data)::

    from owlfinder.train.recipe import RecipeConfig, train_recipe
    model, fe, log = train_recipe(pos, neg, RecipeConfig(steps=10, model="owl-whisper-micro"))
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from owlfinder.data.schema import LABELS
from owlfinder.detect.model import WhisperLogMel
from owlfinder.train.trainer import build_model

__all__ = ["RecipeConfig", "score_clips", "train_recipe"]

_OWL = LABELS.index("owl")


@dataclass
class RecipeConfig:
    """What :func:`train_recipe` does.

    Attributes:
        model: a name from :data:`owlfinder.train.trainer.NAMED_CONFIGS`.
        steps: optimiser steps; ``time_budget_s`` stops earlier.
        batch_size: clips per step, half owl and half not.
        lr, weight_decay: AdamW settings (cosine decay after a 3 % warm-up).
        p_mix: probability of adding a random real-negative window to a clip, ``mix_db`` dB (uniform) below
            an owl clip's RMS, or at any of ``mix_db_neg`` for a negative.
        p_roll: probability of a circular time shift.
        n_freq_masks, max_freq_bins, n_time_masks, max_time_frames: SpecAugment on the log-mel input
            (``p_specaug`` of the batches).
        mine_after: fraction of the steps before hard-negative mining (``None``: no mining).
        mine_top: fraction of the negatives that become hard negatives.
        mine_weight: how much more often a hard negative is drawn.
        seed: seeds everything.
        real_share: fraction of the negatives of each batch drawn from the real recordings (``real_mask``),
            each group mined on its own; ``None``: drawn from all negatives alike.
        cache_features: compute each clip's log-mel power once and augment there (mixing adds powers), instead
            of recomputing features from augmented audio every step (several times slower on a CPU).
        time_budget_s: wall-clock limit in s.
        init_from: a model folder (or Hub id) to start from instead of ``model``'s fresh weights (warm start:
            its architecture and feature extractor are kept). A leave-one-family-out fold is only fair when that
            model never saw the held-out family.
    """

    model: str = "owl-whisper-tiny"
    steps: int = 1500
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    p_mix: float = 0.5
    mix_db: tuple[float, float] = (6.0, 20.0)
    mix_db_neg: tuple[float, float] = (-10.0, 10.0)
    p_roll: float = 0.3
    p_specaug: float = 0.7
    n_freq_masks: int = 2
    max_freq_bins: int = 8
    n_time_masks: int = 2
    max_time_frames: int = 20
    mine_after: float | None = 0.5
    mine_top: float = 0.1
    mine_weight: float = 5.0
    seed: int = 0
    cache_features: bool = True
    real_share: float | None = None
    time_budget_s: float | None = None
    init_from: str | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _f32(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / np.float32(32767.0) if x.dtype == np.int16 else x.astype(np.float32, copy=False)


def _rms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=-1) + 1e-20).astype(np.float32)


def _features(logmel: WhisperLogMel | None, fe, batch: np.ndarray) -> torch.Tensor:
    if logmel is not None:
        return logmel(batch, torch.device("cpu"))
    return fe(list(batch), sampling_rate=fe.sampling_rate, return_tensors="pt")["input_features"]


def _specaugment(x: torch.Tensor, rng: np.random.Generator, c: RecipeConfig) -> torch.Tensor:
    """Mask random mel bands and time spans with each clip's mean (in place on a copy)."""
    x = x.clone()
    b, n_mel, n_t = x.shape
    fill = x.mean(dim=(1, 2))
    for i in range(b):
        for _ in range(c.n_freq_masks):
            w = int(rng.integers(0, c.max_freq_bins + 1))
            f0 = int(rng.integers(0, max(1, n_mel - w)))
            x[i, f0:f0 + w, :] = fill[i]
        for _ in range(c.n_time_masks):
            w = int(rng.integers(0, c.max_time_frames + 1))
            t0 = int(rng.integers(0, max(1, n_t - w)))
            x[i, :, t0:t0 + w] = fill[i]
    return x


def score_clips(model, fe, clips: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Owl probability of each clip (int16 or float ``[n, samples]``), no augmentation."""
    logmel = WhisperLogMel.for_extractor(fe, clips.shape[1])
    was = model.training
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(clips), batch_size):
            feats = _features(logmel, fe, _f32(clips[i:i + batch_size]))
            out.append(torch.softmax(model(input_features=feats).logits, -1)[:, _OWL].numpy())
    model.train(was)
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def log_mel_power(logmel: WhisperLogMel, clips: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """``log10`` mel power of each clip (before Whisper's per-window clamp and scaling), float16
    ``[n, mels, frames]``: computed once, so that training steps pay only for the model."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(clips), batch_size):
            x = torch.from_numpy(_f32(clips[i:i + batch_size]))
            spec = torch.stft(x, logmel.n_fft, logmel.hop_length, window=logmel._window, return_complex=True)
            power = spec[:, :, :-1].abs() ** 2  # the last frame is dropped, as Whisper does
            out.append(torch.matmul(logmel._mel_t, power).clamp_(min=1e-10).log10_().numpy().astype(np.float16))
    return np.concatenate(out)


def _normalise(log_power: np.ndarray) -> torch.Tensor:
    """Whisper's per-window clamp to ``max - 8`` and ``(x + 4) / 4`` (what the engine's extractor does)."""
    x = torch.from_numpy(np.asarray(log_power, dtype=np.float32))
    floor = x.amax(dim=(1, 2), keepdim=True) - 8.0
    return torch.maximum(x, floor).add_(4.0).div_(4.0)


def _score_power(model, log_power: np.ndarray, batch_size: int = 128) -> np.ndarray:
    model.eval()
    with torch.inference_mode():
        s = np.concatenate([torch.softmax(model(input_features=_normalise(log_power[i:i + batch_size])).logits,
                                          -1)[:, _OWL].numpy() for i in range(0, len(log_power), batch_size)])
    model.train()
    return s


def _augment_power(rng: np.random.Generator, lp: np.ndarray, is_owl: bool, real: np.ndarray, c: RecipeConfig
                   ) -> np.ndarray:
    """Time roll and background mixing on a log10 mel-power clip (powers add: phases are independent)."""
    lp = lp.astype(np.float32)
    if rng.random() < c.p_roll:
        lp = np.roll(lp, int(rng.integers(lp.shape[1])), axis=1)
    if len(real) and rng.random() < c.p_mix:
        other = real[int(rng.integers(len(real)))].astype(np.float32)
        a, b = 10.0 ** lp, 10.0 ** other
        db = rng.uniform(*(c.mix_db if is_owl else c.mix_db_neg))
        lp = np.log10(a + b * np.float32(a.mean() / b.mean() * 10.0 ** (-db / 10.0)) + 1e-10)
    return lp


def _augment(rng: np.random.Generator, y: np.ndarray, is_owl: bool, real: np.ndarray, c: RecipeConfig
             ) -> np.ndarray:
    if rng.random() < c.p_roll:
        y = np.roll(y, int(rng.integers(len(y))))
    if len(real) and rng.random() < c.p_mix:
        other = _f32(real[int(rng.integers(len(real)))])
        db = rng.uniform(*(c.mix_db if is_owl else c.mix_db_neg))
        y = y + other * np.float32(_rms(y) / _rms(other) * 10.0 ** (-db / 20.0))
    return y


def train_recipe(pos: np.ndarray, neg: np.ndarray, config: RecipeConfig | None = None, *,
                 real_mask: np.ndarray | None = None, sampling_rate: int = 16000, window_s: float = 5.0,
                 log=print):
    """Train a fresh classifier on owl clips ``pos`` and negative clips ``neg``.

    Args:
        pos, neg: int16 or float32 ``[n, window samples]`` clips at ``sampling_rate``.
        config: the recipe.
        real_mask: which of ``neg`` are real recordings (mixed into other clips as background); all when
            ``None``.
        log: progress lines go here.

    Returns:
        ``(model, feature_extractor, info)``: info has the steps run, final loss, wall time and mining summary.
    """
    c = config or RecipeConfig()
    torch.manual_seed(c.seed)
    rng = np.random.default_rng(c.seed)
    if c.init_from:
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        model = AutoModelForAudioClassification.from_pretrained(c.init_from)
        fe = AutoFeatureExtractor.from_pretrained(c.init_from)
        if model.config.label2id.get("owl") != _OWL:
            raise ValueError(f"{c.init_from}: warm start needs the owl label at index {_OWL}")
    else:
        model, fe, _ = build_model(from_config=c.model, sampling_rate=sampling_rate, window_s=window_s)
    logmel = WhisperLogMel.for_extractor(fe, pos.shape[1])
    cached = c.cache_features and logmel is not None
    if cached:  # features once; steps then mix and mask in the mel-power domain
        t_f = time.monotonic()
        pos_in, neg_in = log_mel_power(logmel, pos), log_mel_power(logmel, neg)
        log(f"features of {len(pos_in) + len(neg_in)} clips in {time.monotonic() - t_f:.0f} s")
    else:
        pos_in, neg_in = pos, neg
    real = neg_in[real_mask] if real_mask is not None else neg_in
    opt = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    warm = max(1, int(0.03 * c.steps))
    t0 = time.monotonic()

    def progress(s: int) -> float:  # of the steps or of the time budget, whichever runs out first
        done = s / c.steps
        if c.time_budget_s:
            done = max(done, (time.monotonic() - t0) / c.time_budget_s)
        return min(1.0, done)

    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * progress(s))))
    w_neg = np.ones(len(neg))
    half = c.batch_size // 2
    labels = torch.tensor([_OWL] * half + [1 - _OWL] * (c.batch_size - half))
    losses, mined, step = [], None, 0
    model.train()
    for step in range(c.steps):
        if c.time_budget_s is not None and time.monotonic() - t0 > c.time_budget_s:
            log(f"time budget reached after {step} steps")
            break
        if c.mine_after is not None and mined is None and progress(step) >= c.mine_after:
            s = _score_power(model, neg_in) if cached else score_clips(model, fe, neg)
            k = max(1, int(c.mine_top * len(neg)))
            if c.real_share is not None and real_mask is not None:  # mine real and synthetic negatives apart
                top = np.concatenate([idx[np.argsort(s[idx])[::-1][:max(1, int(c.mine_top * len(idx)))]]
                                      for idx in (np.flatnonzero(real_mask), np.flatnonzero(~real_mask)) if len(idx)])
                k = len(top)
            else:
                top = np.argsort(s)[::-1][:k]
            w_neg[top] *= c.mine_weight
            mined = {"at_step": step, "n": int(k), "min_score": float(s[top].min()), "max_score": float(s[top].max()),
                     "real": int(real_mask[top].sum()) if real_mask is not None else int(k)}
            log(f"mined {k} hard negatives at step {step} (scores {mined['min_score']:.3f}-{mined['max_score']:.3f}, "
                f"{mined['real']} real)")
        ip = rng.integers(0, len(pos), half)
        if c.real_share is not None and real_mask is not None:
            w = np.where(real_mask, c.real_share / max(1e-12, w_neg[real_mask].sum()),
                         (1 - c.real_share) / max(1e-12, w_neg[~real_mask].sum())) * w_neg
            ineg = rng.choice(len(neg), c.batch_size - half, p=w / w.sum())
        else:
            ineg = rng.choice(len(neg), c.batch_size - half, p=w_neg / w_neg.sum())
        if cached:
            feats = _normalise(np.stack([_augment_power(rng, pos_in[i], True, real, c) for i in ip]
                                        + [_augment_power(rng, neg_in[i], False, real, c) for i in ineg]))
        else:
            feats = _features(logmel, fe, np.stack([_augment(rng, _f32(pos[i]), True, real, c) for i in ip]
                                                   + [_augment(rng, _f32(neg[i]), False, real, c) for i in ineg]))
        if rng.random() < c.p_specaug:
            feats = _specaugment(feats, rng, c)
        loss = torch.nn.functional.cross_entropy(model(input_features=feats).logits, labels)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 100 == 0:
            log(f"step {step + 1}/{c.steps} loss {np.mean(losses[-100:]):.4f} "
                f"({time.monotonic() - t0:.0f} s)")
    model.eval()
    info = {"steps": step + 1 if c.steps else 0, "loss": float(np.mean(losses[-100:])) if losses else None,
            "wall_s": round(time.monotonic() - t0, 1), "mining": mined, "n_pos": int(len(pos)),
            "n_neg": int(len(neg)), "n_params": int(sum(p.numel() for p in model.parameters())),
            "recipe": c.to_dict()}
    return model, fe, info
