"""Shared by the training reliability tests: a tiny random BERT backbone and a small synthetic data slice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from datasets import DatasetDict
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, TrainerCallback

from m2a_hf.backbones import default_backbone


def make_tiny_backbone(folder: Path) -> str:
    """A 2-layer, 32-wide random BERT with a masked-LM head and the MiniLM tokenizer, saved to `folder`."""
    tokenizer = AutoTokenizer.from_pretrained(default_backbone())
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def synthetic_slice(train: int = 48, dev: int = 16, test: int = 16) -> DatasetDict:
    """The first rows of the synthetic reviews (labels 0..4, attributes `user` and `item`)."""
    from m2a_hf.synthetic import make_synthetic_reviews

    data = make_synthetic_reviews(seed=0)
    sizes = {"train": train, "validation": dev, "test": test}
    return DatasetDict({split: data[split].select(range(n)) for split, n in sizes.items()})


class Killed(RuntimeError):
    """The simulated kill."""


class KillAfterSave(TrainerCallback):
    """Raises `Killed` right after the checkpoint of `step` is saved, in the Trainer whose output_dir ends with
    `folder_suffix` (the run dies with that checkpoint on disk)."""

    def __init__(self, step: int, folder_suffix: str = "") -> None:
        self.step = step
        self.folder_suffix = folder_suffix

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step and str(args.output_dir).endswith(self.folder_suffix):
            raise Killed(f"killed after saving step {self.step} in {args.output_dir}")


class StepCounter(TrainerCallback):
    """Counts the optimizer steps a Trainer runs in this process."""

    def __init__(self) -> None:
        self.steps = 0

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.steps += 1
