"""Helpers shared by the tests (imported as `helpers`: tests/ is on `sys.path`, like `hub_stand_in`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch


if TYPE_CHECKING:
    from transformers import TrainingArguments


TINY_BACKBONE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
"""The shape of the `tiny_backbone` fixture (a BERT with MiniLM's vocabulary)."""


def perturb(model: torch.nn.Module, scale: float = 0.05, seed: int = 0) -> None:
    """Give every adapter (and the zero-initialised B matrices and value embeddings) non-zero values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".m2a_" in name or "value_embeddings" in name:
                param.add_(torch.randn(param.shape, generator=gen, dtype=param.dtype) * scale)


def thread_env() -> dict[str, str]:
    """The parent's thread settings, for a child process whose numbers are compared with the parent's.

    Float results depend on the intra-op thread count (a child started with another count differs by ~1e-7), so the
    child's `OMP_NUM_THREADS` and `MKL_NUM_THREADS` are the parent's `torch.get_num_threads()` at the time of the call
    (a test may have changed it since start-up); torch in the child starts with that many threads.
    """
    threads = str(torch.get_num_threads())
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


# The first lines of a child process that proves a checkpoint loads without the library: `import m2a_hf` fails.
BLOCK_M2A_HF = """\
import sys
class _BlockM2AHF:
    def find_spec(self, name, *args):
        if name.split(".")[0] == "m2a_hf":
            raise ImportError("m2a_hf is blocked in this process")
sys.meta_path.insert(0, _BlockM2AHF())
"""


def one_step_args(out: Path, **overrides: Any) -> TrainingArguments:
    """M2A's training arguments for a single step into `out`: no evaluation, no checkpoints, no progress bar."""
    from m2a_hf.training import training_arguments

    return training_arguments(
        output_dir=str(out),
        max_steps=1,
        per_device_train_batch_size=8,
        eval_strategy="no",
        save_strategy="no",
        load_best_model_at_end=False,
        disable_tqdm=True,
        dataloader_pin_memory=False,
        **overrides,
    )
