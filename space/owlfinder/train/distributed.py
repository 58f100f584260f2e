"""Training in several processes: a balanced sampler every process agrees on, and one shared time budget.

Under ``accelerate launch`` / ``torchrun`` every process builds the same training sampler and accelerate
shards its batches (each process takes every ``world_size``-th batch), so a sampler must yield the same
sequence in every process. A stop decision must be taken by one process and followed by all: a process
that stops alone leaves the others waiting in their next gradient all-reduce for ever.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from transformers import TrainerCallback

__all__ = ["BalancedSampler", "TimeBudgetCallback", "broadcast_flag"]


def _dist_ready() -> bool:
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized()


class BalancedSampler(torch.utils.data.Sampler):
    """Draws ``len(labels)`` clip indices with replacement, every class equally likely.

    The draw depends only on ``seed`` and the epoch, never on the process, so every process of a
    distributed run makes the same sequence and accelerate's batch sharding hands each process a disjoint
    share of it (torch's ``WeightedRandomSampler`` would do the same only while every process happened to
    advance its generator identically). The epoch advances after each full pass, or by :meth:`set_epoch`.
    """

    def __init__(self, labels: Sequence[int] | np.ndarray, *, seed: int = 0, num_samples: int | None = None):
        labels = np.asarray(labels, dtype=np.int64)
        counts = np.bincount(labels)
        self.weights = torch.as_tensor(1.0 / counts[labels], dtype=torch.double)
        self.num_samples = int(num_samples or len(labels))
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        gen = torch.Generator()
        gen.manual_seed(self.seed * 1_000_003 + self.epoch)
        idx = torch.multinomial(self.weights, self.num_samples, replacement=True, generator=gen)
        self.epoch += 1
        yield from idx.tolist()


def broadcast_flag(flag: bool, device: torch.device | str | None = None) -> bool:
    """Process 0's ``flag`` in every process of an initialised ``torch.distributed`` group (else ``flag``)."""
    dist = torch.distributed
    if not _dist_ready() or dist.get_world_size() < 2:
        return bool(flag)
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device or "cpu")
    dist.broadcast(t, src=0)
    return bool(t.item())


class TimeBudgetCallback(TrainerCallback):
    """Stops training once ``budget_s`` seconds of this run have passed, evaluating and saving first.

    Only process 0's clock counts: after every step its decision is broadcast (:func:`broadcast_flag`, or
    ``sync``), so all processes stop after the same step. Clocks that disagree would otherwise stop one
    process while the others wait for it in the next collective, for ever.
    """

    def __init__(self, budget_s: float, sync: Callable[[bool, object], bool] | None = None):
        self.budget_s = float(budget_s)
        self.t0: float | None = None
        self.fired = False
        self.sync = sync

    def on_train_begin(self, args, state, control, **kwargs):
        self.t0 = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.fired:
            return control
        over = (self.t0 is not None and time.monotonic() - self.t0 >= self.budget_s
                and int(getattr(args, "process_index", 0)) == 0)
        device = getattr(args, "device", None) if _dist_ready() else None
        if (self.sync or broadcast_flag)(over, device):
            self.fired = True
            control.should_training_stop = True
            control.should_save = True
            if str(getattr(args.eval_strategy, "value", args.eval_strategy)) != "no":
                control.should_evaluate = True
        return control
