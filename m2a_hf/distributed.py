"""Multi-process training (`torchrun`, `accelerate launch`): refusing a launch that would train independent copies,
and the main-process-only steps after training.

Every process runs the same training code; the `Trainer` syncs gradients and gathers evaluation outputs. What is
written once for the run — the final model, card, curves, `metrics.json`, stage 2's handoff files, a Hub push — is
written by the main process (`is_main_process`) after all processes reached the same point (`wait_for_everyone`).
The other processes return normally.
"""

from __future__ import annotations

import logging
import os

from transformers import TrainingArguments
from transformers.training_args import ParallelMode


logger = logging.getLogger(__name__)


def launched_world_size() -> int:
    """The number of processes the launcher started (`WORLD_SIZE`, set by `torchrun` / `accelerate launch`), else 1."""
    value = os.environ.get("WORLD_SIZE", "").strip()
    try:
        return max(int(value), 1) if value else 1
    except ValueError:
        return 1


def check_launch(args: TrainingArguments) -> None:
    """Refuse a multi-process launch in which `TrainingArguments` did not set up distributed training.

    `torchrun --nproc_per_node 2` on a machine without GPUs and without `--use_cpu True` gives every process its own
    non-distributed Trainer (`parallel_mode` "not_parallel", each process "main"): they would train independent copies
    of the model and write them into the same `output_dir`.

    Raises:
        ValueError: `WORLD_SIZE` > 1 but `args.parallel_mode` is not distributed (says to add `--use_cpu True`).
    """
    world_size = launched_world_size()
    _ = args.device  # sets up the devices and the distributed state, which `parallel_mode` reads
    if world_size <= 1 or args.parallel_mode == ParallelMode.DISTRIBUTED:
        return
    import torch

    raise ValueError(
        f"this process is one of WORLD_SIZE={world_size} launched processes (torchrun / accelerate launch), but "
        f"TrainingArguments set up no distributed training (parallel_mode={args.parallel_mode.value!r}, world_size="
        f"{args.world_size}; CUDA available: {torch.cuda.is_available()}): each process would train its own copy "
        "into the same output_dir. On CPUs add `--use_cpu True` (`use_cpu=True`) for distributed training with the "
        "gloo backend, or launch on GPUs (one process per GPU)."
    )


def is_main_process(args: TrainingArguments) -> bool:
    """Whether this is the process that writes the run's final outputs: global rank 0 (`args.process_index`)."""
    _ = args.device  # sets up the distributed state, which `process_index` reads
    return args.process_index == 0


def wait_for_everyone(args: TrainingArguments) -> None:
    """A barrier across the processes of the run (`PartialState.wait_for_everyone`); nothing in a single process."""
    _ = args.device  # sets up the distributed state
    if args.world_size > 1:
        args.distributed_state.wait_for_everyone()


__all__ = ["check_launch", "is_main_process", "launched_world_size", "wait_for_everyone"]
