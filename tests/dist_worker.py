"""Run by ``torchrun --nproc_per_node 2`` from tests/test_finetune.py: two CPU processes (gloo) check that
the balanced sampler is sharded by accelerate and that the time budget is decided by process 0 for all.

    torchrun --standalone --nproc_per_node 2 tests/dist_worker.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from accelerate import PartialState
from accelerate.data_loader import prepare_data_loader
from transformers import TrainerControl, TrainerState

from owlfinder.train.distributed import BalancedSampler, TimeBudgetCallback

#: 10 owl clips (label 0) among 100.
LABELS = np.array([0] * 10 + [1] * 90)


def steps_until_stop(budget_s: float, rank: int, steps: int = 3) -> int | None:
    """The step after which the callback stopped training (``None``: it did not)."""
    cb = TimeBudgetCallback(budget_s)
    args = SimpleNamespace(process_index=rank, device=torch.device("cpu"), eval_strategy="no")
    cb.on_train_begin(args, TrainerState(), TrainerControl())
    for step in range(1, steps + 1):
        control = TrainerControl()
        cb.on_step_end(args, TrainerState(global_step=step), control)
        if control.should_training_stop:
            return step
    return None


def main() -> None:
    state = PartialState(cpu=True)  # gloo, from torchrun's environment
    rank, world = state.process_index, state.num_processes
    loader = torch.utils.data.DataLoader(range(len(LABELS)), batch_size=5, sampler=BalancedSampler(LABELS, seed=4))
    loader = prepare_data_loader(loader, num_processes=world, process_index=rank, put_on_device=False)
    epochs = [[[int(i) for i in batch] for batch in loader] for _ in range(2)]
    result = {
        "rank": rank,
        "world": world,
        "epochs": epochs,
        # Only process 0's clock counts: process 1 past its budget alone stops nobody...
        "stop_when_rank1_over": steps_until_stop(0.0 if rank == 1 else 1e9, rank),
        # ...and process 0 past its budget stops everybody after the same step.
        "stop_when_rank0_over": steps_until_stop(0.0 if rank == 0 else 1e9, rank),
    }
    Path(sys.argv[1], f"rank{rank}.json").write_text(json.dumps(result))
    state.wait_for_everyone()
    state.destroy_process_group()


if __name__ == "__main__":
    main()
