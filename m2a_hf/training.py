"""Training M2A with the stock `transformers.Trainer`: stage 1 (joint), stage 2 (the unknown LoRAs only),
evaluation of the attribute-aware and attribute-free views, and the plain-LoRA baseline for comparison.

Everything here is a thin layer over `Trainer`/`TrainingArguments`: no Trainer subclass, no custom loop. The model
computes its own loss (the configured view policy) in `forward`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import DatasetDict
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    Trainer,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint

from m2a_hf.adapters import baseline_modules_to_save, num_parameters_by_group
from m2a_hf.arguments import (  # noqa: F401 (re-exported)
    DataArguments,
    ModelArguments,
    ProcedureArguments,
    overwrite_requested,
    training_arguments,
    training_defaults,
)
from m2a_hf.backbones import default_backbone
from m2a_hf.callbacks import AttributeVocabCallback
from m2a_hf.data import (
    DATASET_NAMES,
    AttributeVocab,
    M2ADataCollator,
    class_label_names,
    load_hf_dataset,
    load_named_dataset,
    load_table,
    prepare_dataset,
)
from m2a_hf.distributed import check_launch, is_main_process, wait_for_everyone
from m2a_hf.evaluation import (  # noqa: F401 (re-exported)
    VIEWS,
    _check_sequential_evaluation,
    _logits_and_labels,
    _seen_mask,
    drop_attributes,
    evaluate_views,
)
from m2a_hf.hub import hub_repo_id, push_final_model, save_for_hub
from m2a_hf.io_utils import write_json_atomic
from m2a_hf.labels import (
    class_indices_labels,
    encode_with_classes,
    is_class_label,
    is_integer_label,
    resolve_labels,
)
from m2a_hf.metrics import compute_metrics, metrics_by_seen
from m2a_hf.modeling import M2AForSequenceClassification
from m2a_hf.output_dir import (
    STAGE1_MODULES,
    STAGE1_RESULT,
    STAGE2_DIR,
    is_truthy_resume,
    prepare_output_dir,
    resolve_resume_checkpoint,
    staged_final_save,
)


logger = logging.getLogger(__name__)


def is_named_dataset(name: str | None) -> bool:
    """Whether `name` is `synthetic` or a named dataset (`DATASET_NAMES`), whose labels are class indices already."""
    if name is None:  # files or a `datasets` dataset (DataArguments.dataset_name)
        return False
    key = str(name).strip().lower()
    return key == "synthetic" or key in DATASET_NAMES


def _maps_labels(data: DatasetDict, data_args: DataArguments) -> bool:
    """Whether the labels become classes by `resolve_labels`: explicit `label_map`/`label_offset`, or any data but
    the named datasets' integer class indices (a `ClassLabel` column is already resolved)."""
    if data_args.label_map or data_args.label_offset is not None:
        return True
    train = data["train"] if "train" in data else None
    if train is None or is_class_label(train):
        return False
    return not (is_named_dataset(data_args.dataset) and is_integer_label(train))


def load_data(data_args: DataArguments, seed: int = 42, map_labels: bool = True) -> DatasetDict:
    """Load the configured dataset as a `DatasetDict` (train/validation/test) with text, label and attributes.

    Sources: a named dataset or one table file (`dataset`), one file per split (`train_file`, `validation_file`,
    `test_file`) or a `datasets` dataset (`dataset_name`: a `save_to_disk` folder or a `load_dataset` name). All but
    the named datasets are read by `m2a_hf.data.load_table` (its row checks, value normalisation and splits:
    `split_column`, else the given splits, else a seeded 80/10/10).

    The named datasets give integer class indices. Other labels become classes as transformers'
    `run_classification.py` chooses them (`m2a_hf.labels.resolve_labels`): the sorted distinct labels of the training
    split (after `max_train_samples`), the names of a `datasets` `ClassLabel` in their order, or `label_map` /
    `label_offset`, as a `ClassLabel` column whose names are the original values. `map_labels=False` keeps the label
    strings (to match them with a trained model's classes).

    Raises:
        ValueError: On an empty split, fewer than two training labels, or a validation/test label unseen in training.
    """
    named = is_named_dataset(data_args.dataset)
    class_names = None  # the class order of a `datasets` ClassLabel label column
    if data_args.dataset is None:  # files, or a `datasets` dataset
        source: Any = data_args.data_files()
        if not source:
            source = load_hf_dataset(data_args.dataset_name, data_args.dataset_config_name)
            class_names = class_label_names(source, data_args.label_column or "label")
        data = load_table(source, seed=seed, raw_labels=True, **_table_columns(data_args))
    elif data_args.dataset == "synthetic":
        from m2a_hf.synthetic import make_synthetic_reviews

        data = make_synthetic_reviews(seed=seed)
    else:
        kwargs: dict[str, Any] = {}
        if named and data_args.text_column:
            kwargs.update(
                text_column=data_args.text_column,
                label_column=data_args.label_column or "label",
                attribute_columns=data_args.attribute_list() or [],
                skip_bad_rows=data_args.skip_bad_rows,
            )
        elif not named:  # a table file: labels are kept as strings and mapped to classes below
            kwargs.update(_table_columns(data_args) if data_args.text_column else {}, raw_labels=True)
        data = load_named_dataset(data_args.dataset, data_dir=data_args.data_dir, **kwargs)
    if data_args.shuffle_train_dataset:
        data["train"] = data["train"].shuffle(seed=data_args.shuffle_seed).flatten_indices()
    limits = {
        "train": data_args.max_train_samples,
        "validation": data_args.max_eval_samples,
        "test": data_args.max_predict_samples or data_args.max_eval_samples,
    }
    for split, limit in limits.items():
        if limit:
            data[split] = data[split].select(range(min(limit, len(data[split]))))
    if map_labels and _maps_labels(data, data_args):
        data = _resolve_labels(data, data_args, class_names)
    return data


def _table_columns(data_args: DataArguments) -> dict[str, Any]:
    """`load_table`'s column arguments from the data flags (several text columns are joined with a space, as in
    `run_classification.py`)."""
    return {
        "text_column": data_args.text_column_list(),
        "label_column": data_args.label_column or "label",
        "attribute_columns": data_args.attribute_list() or [],
        "split_column": data_args.split_column,
        "skip_bad_rows": data_args.skip_bad_rows,
        "text_separator": " ",
    }


def _resolve_labels(data: DatasetDict, data_args: DataArguments, class_names: list[str] | None = None) -> DatasetDict:
    """Labels to classes (`resolve_labels`): `--label_map`/`--label_offset`, else a ClassLabel's `class_names`, else
    the sorted labels of the training split."""
    label_map = data_args.label_map_list()
    if label_map is None and data_args.label_offset is None:
        label_map = class_names
    return resolve_labels(data, source=data_args.source(), label_map=label_map, label_offset=data_args.label_offset)


def attribute_columns(data: DatasetDict, data_args: DataArguments) -> list[str]:
    """The attribute columns to use: the requested ones, else every column besides id/text/label."""
    requested = data_args.attribute_list()
    available = [c for c in data["train"].column_names if c not in ("id", "text", "label")]
    if requested is None:
        return available
    missing = [c for c in requested if c not in available]
    if missing:
        raise ValueError(f"attribute column(s) {missing} are not in the data; available: {available}.")
    return requested


def evaluate_checkpoint(
    model_path: str,
    data_args: DataArguments,
    split: str = "test",
    batch_size: int = 64,
    data: DatasetDict | None = None,
    predictions: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Evaluate a saved M2A checkpoint (with its tokenizer and `attribute_vocab.json`) on a split of the data, in the
    attribute-aware and attribute-free views, split by seen / unseen values. `data`: already loaded (`load_data`).
    `predictions`: a dict that receives each view's class predictions, in the split's order."""
    model = M2AForSequenceClassification.from_pretrained(model_path).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    vocab = AttributeVocab.load(model_path)
    data = data if data is not None else load_data(data_args, map_labels=False)
    if split not in data:
        raise ValueError(f"split {split!r} is not in the data; available: {list(data)}.")
    dataset = data[split]
    if _maps_labels(data, data_args) or is_class_label(dataset):  # label values: matched with the model's classes
        classes = [model.config.id2label[i] for i in range(model.config.num_labels)]
        dataset = encode_with_classes(dataset, classes, split, data_args.source())
    features = prepare_dataset(DatasetDict({split: dataset}), tokenizer, vocab, max_length=data_args.max_length)
    args = training_arguments(
        output_dir=str(Path(model_path) / "eval") if Path(model_path).is_dir() else "outputs/eval",
        per_device_eval_batch_size=batch_size,
        eval_strategy="no",
        save_strategy="no",
        load_best_model_at_end=False,
    )
    trainer = Trainer(model=model, args=args, data_collator=M2ADataCollator(tokenizer, mlm_probability=0.0))
    return evaluate_views(
        trainer, features[split], vocab.names, data_args.seen_attribute, prefix=split, predictions=predictions
    )


@dataclass
class TrainingResult:
    """What `train_m2a` / `train_baseline` return: the metrics (also written to `metrics.json`) and paths."""

    metrics: dict[str, Any]
    output_dir: str
    model: Any = None
    tokenizer: Any = None
    vocab: AttributeVocab | None = None
    log_history: list[dict[str, Any]] = field(default_factory=list)
    test_predictions: dict[str, np.ndarray] = field(default_factory=dict)
    """Class predictions of the final model on the test split, per view (`fine`/`coarse`, or `iid`), in test order."""


def _trainer(model, args, train, dev, tokenizer, collator, patience: int, extra_callbacks=()) -> Trainer:
    callbacks = [EarlyStoppingCallback(early_stopping_patience=patience)] if args.load_best_model_at_end else []
    callbacks += list(extra_callbacks)
    return Trainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=dev,
        data_collator=collator,
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        callbacks=callbacks,
    )


def _prepare(model_args, data_args, training_args, data: DatasetDict | None):
    """Shared by M2A and the baseline: backbone path, attribute names, vocabulary (train split only), tokenizer,
    tokenised features, the number of labels and `id2label` (None: the config's default `LABEL_i`)."""
    backbone = model_args.resolved_backbone()
    data = data if data is not None else load_data(data_args, seed=training_args.seed)
    if _maps_labels(data, data_args):  # data passed in with label values (strings, ratings)
        data = _resolve_labels(data, data_args)
    num_labels = class_indices_labels(data, source=data_args.source())
    if is_class_label(data["train"]):
        label_list = data["train"].features["label"].names
        num_labels, id2label = len(label_list), dict(enumerate(label_list))
    else:
        id2label = label_names(data_args.dataset, num_labels)
    names = attribute_columns(data, data_args)
    vocab = AttributeVocab.build(data["train"], names)
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    features = prepare_dataset(data, tokenizer, vocab, max_length=data_args.max_length)
    return backbone, names, vocab, tokenizer, features, num_labels, id2label


def label_names(dataset: str, num_labels: int) -> dict[int, str] | None:
    """Readable labels for the named datasets (ratings are stored as rating − 1); None for other data."""
    dataset = DATASET_NAMES.get(str(dataset).strip().lower(), dataset)  # aliases such as "womens-clothing-reviews"
    if dataset in ("synthetic", "clothing"):
        return {i: f"{i + 1} star{'s' if i else ''}" for i in range(num_labels)}
    if dataset == "fdu-mtl" and num_labels == 2:
        return {0: "negative", 1: "positive"}
    return None


def train_m2a(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: TrainingArguments,
    procedure: ProcedureArguments | None = None,
    data: DatasetDict | None = None,
) -> TrainingResult:
    """Train M2A end to end and save a Hub-ready checkpoint in `training_args.output_dir`.

    Stage 1 trains NN and NN† jointly (or by the configured view policy) with early stopping on dev accuracy of the
    attribute-aware view; stage 2 trains only the unknown LoRAs on the coarse view with early stopping on
    dev accuracy of the attribute-free view, and (as in the reference) is kept only if it beats the stage-1 model's
    attribute-free dev accuracy, else the stage-1 modules are restored (`train_stage2`,
    `metrics["stage2_dev_accuracy"]`). The test split is evaluated in both views after each stage. The output
    directory gets the model (weights, config, remote code), tokenizer, `attribute_vocab.json`, `metrics.json`, a
    model card (`README.md`) and `training_curves.png`, published atomically (`m2a_hf.output_dir`: `config.json`
    last); every Trainer checkpoint carries the vocabulary (`m2a_hf.callbacks`). Under `torchrun` / `accelerate
    launch` every process trains and evaluates, and the main process alone writes the folder (`m2a_hf.distributed`);
    a multi-process launch that set up no distributed training (no `--use_cpu True` without GPUs) is refused. With `push_to_hub`, that
    complete folder is then pushed to `hub_model_id` as one commit (`m2a_hf.hub.push_final_model`, main process).

    An `output_dir` that already holds a run is refused unless `--overwrite_output_dir` or
    `training_args.resume_from_checkpoint` is given. A stage-1 checkpoint (`<output_dir>/checkpoint-*`) resumes stage
    1, then stage 2 runs as usual; a stage-2 checkpoint (`<output_dir>/stage2/checkpoint-*`, which holds the full
    model) skips stage 1 and takes its results (metrics, log history, test predictions, and the attribute-free dev
    accuracy and unknown-value modules the keep-or-revert rule needs) from `stage2/stage1_result.json` and
    `stage2/stage1_modules.safetensors`, written when stage 2 started; `True` takes the last checkpoint, stage 2's
    first.
    """
    procedure = procedure or ProcedureArguments()
    start = time.time()
    check_launch(training_args)
    out = Path(training_args.output_dir)
    resume, resume_stage = resolve_resume_checkpoint(training_args.resume_from_checkpoint, out)
    if resume_stage == 2 and not procedure.stage2:
        raise ValueError(f"--resume_from_checkpoint {resume!r} is a stage-2 checkpoint, but stage 2 is disabled.")
    _prepare_output_dir(training_args, procedure, resume=resume is not None)
    set_seed(training_args.seed)  # the adapters and heads are initialised before the Trainer seeds anything
    prepared = _prepare(model_args, data_args, training_args, data)
    backbone, names, vocab, tokenizer, features, num_labels, id2label = prepared
    overrides = model_args.config_overrides()
    model = M2AForSequenceClassification.from_backbone(
        backbone,
        attributes=vocab.config_attributes(),
        num_labels=num_labels,
        id2label=id2label,
        **overrides,
    )
    if resume_stage == 2 and not model.config.num_attributes:
        raise ValueError(
            f"--resume_from_checkpoint {resume!r} is a stage-2 checkpoint, but the data has no attributes."
        )
    # seen / unseen describes the data, not the routing: taken before the no-fine ablation drops the attributes
    test_seen = _seen_mask(features["test"], names, data_args.seen_attribute)
    if not model_args.use_fine_view:  # ablation: every value unknown, so only the coarse modules ever run
        features = DatasetDict({k: drop_attributes(v) for k, v in features.items()})
    logger.info("M2A trainable parameters: %s", num_parameters_by_group(model))
    collator = M2ADataCollator(tokenizer, mlm_probability=data_args.mlm_probability)
    callbacks = [AttributeVocabCallback(vocab)]  # every checkpoint gets the vocabulary
    patience = procedure.early_stopping_patience
    predictions: dict[str, np.ndarray] = {}
    stage1: dict[str, Any] = {}
    if resume_stage == 2:  # stage 1 finished in the run being resumed: its results were saved when stage 2 began
        stage1 = _load_stage1_result(Path(resume).parent)
        metrics, history = stage1["metrics"], stage1["history"]
        predictions.update(stage1["predictions"])
    else:
        trainer = _trainer(
            model, training_args, features["train"], features["validation"], tokenizer, collator, patience, callbacks
        )
        trainer.train(resume_from_checkpoint=resume)
        metrics = {
            "attributes": dict(zip(vocab.names, vocab.sizes, strict=True)),
            "num_parameters": num_parameters_by_group(model),
            "stage1": evaluate_views(
                trainer, features["test"], names, data_args.seen_attribute, predictions=predictions, seen=test_seen
            ),
        }
        history = list(trainer.state.log_history)

    if procedure.stage2 and model.config.num_attributes:
        model.set_stage(2)
        stage2_args = dataclasses.replace(
            training_args,
            output_dir=os.path.join(training_args.output_dir, STAGE2_DIR),
            num_train_epochs=procedure.stage2_epochs or training_args.num_train_epochs,
            learning_rate=procedure.stage2_learning_rate or training_args.learning_rate,
        )
        dev = drop_attributes(features["validation"])  # stage 2 is judged on the attribute-free view
        trainer = _trainer(model, stage2_args, features["train"], dev, tokenizer, collator, patience, callbacks)
        if resume_stage == 2:
            snapshot = stage1["snapshot"]
        else:
            snapshot = stage1_snapshot(trainer)
            if is_main_process(training_args):
                _save_stage1_result(Path(stage2_args.output_dir), snapshot, metrics, history, predictions)
            wait_for_everyone(training_args)  # the stale stage-2 checkpoints are gone before any process saves one
        metrics["stage2_dev_accuracy"] = train_stage2(
            trainer, resume_from_checkpoint=resume if resume_stage == 2 else None, snapshot=snapshot
        )
        kept = metrics["stage2_dev_accuracy"]["kept"]
        model.set_stage(1)
        history += [{**entry, "stage": 2} for entry in trainer.state.log_history]
        # stage 2 trains only the unknown LoRAs: if it was not kept nothing changed; if every test row has
        # every value known the fine view cannot have changed. Such results are reused instead of identical passes.
        all_known = bool((np.asarray(features["test"]["attribute_ids"]) >= 0).all())
        views = () if not kept else ("coarse",) if all_known else VIEWS
        stage2 = evaluate_views(
            trainer,
            features["test"],
            names,
            data_args.seen_attribute,
            views=views,
            predictions=predictions,
            seen=test_seen,
        )
        metrics["stage2"] = {view: stage2.get(view, metrics["stage1"][view]) for view in VIEWS}
    metrics["train_seconds"] = round(time.time() - start, 1)
    final = metrics.get("stage2", metrics["stage1"])
    metrics["test"] = {view: final[view] for view in VIEWS}

    wait_for_everyone(training_args)  # every process has finished training and evaluation
    if is_main_process(training_args):  # main process only: the other processes return the same result unsaved
        with staged_final_save(out) as folder:  # complete in a staging folder, then published with config.json last
            save_for_hub(
                model,
                folder,
                tokenizer=tokenizer,
                attribute_vocab=vocab,
                metrics=metrics["test"],
                training_args=training_args,
                dataset_name=data_args.dataset or data_args.dataset_name,
                base_model=backbone,
                repo_id=hub_repo_id(training_args),
                stage2=metrics.get("stage2_dev_accuracy", False),
            )
            _write_json(folder / "metrics.json", metrics)
            _write_json(folder / "log_history.json", history)
            _plot(history, metrics, folder / "training_curves.png")
        push_final_model(out, training_args)  # with --push_to_hub: the complete, published folder as one commit
    return TrainingResult(metrics, str(out), model, tokenizer, vocab, history, predictions)


@dataclass
class Stage1Snapshot:
    """What stage 2's keep-or-revert rule needs from stage 1: the attribute-free dev accuracy (`before`) and the
    stage-1 values of the parameters stage 2 trains (`state`)."""

    before: float
    state: dict[str, torch.Tensor]


def stage1_snapshot(trainer: Trainer) -> Stage1Snapshot:
    """Evaluate the stage-1 model on the stage-2 trainer's (attribute-free) dev set and copy its trainable modules.

    Args:
        trainer: The stage-2 `Trainer` (model in stage 2), before it trains.
    """
    before = trainer.evaluate()["eval_accuracy"]
    state = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    return Stage1Snapshot(before, state)


def _save_stage1_result(
    folder: Path,
    snapshot: Stage1Snapshot,
    metrics: dict[str, Any],
    history: list[dict[str, Any]],
    predictions: dict[str, np.ndarray],
) -> None:
    """`<stage2>/stage1_modules.safetensors`, then `stage1_result.json` (its presence marks a complete pair): what a
    run resumed from a stage-2 checkpoint needs from stage 1. Stale stage-2 checkpoints of an earlier attempt go."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("checkpoint-*"):
        shutil.rmtree(stale, ignore_errors=True)
    (folder / STAGE1_RESULT).unlink(missing_ok=True)
    tmp = folder / f".{STAGE1_MODULES}.tmp"
    save_file({k: v.detach().cpu().contiguous() for k, v in snapshot.state.items()}, str(tmp))
    os.replace(tmp, folder / STAGE1_MODULES)
    payload = {
        "before": snapshot.before,
        "metrics": metrics,
        "history": history,
        "predictions": {view: np.asarray(p).tolist() for view, p in predictions.items()},
    }
    _write_json(folder / STAGE1_RESULT, payload)


def _load_stage1_result(folder: Path) -> dict[str, Any]:
    """Inverse of `_save_stage1_result`: metrics, history, predictions and the `Stage1Snapshot`."""
    from safetensors.torch import load_file

    result, modules = folder / STAGE1_RESULT, folder / STAGE1_MODULES
    if not (result.is_file() and modules.is_file()):
        raise FileNotFoundError(
            f"cannot resume stage 2 from {folder}: {STAGE1_RESULT} or {STAGE1_MODULES} (written when stage 2 starts) "
            "is missing; resume from a stage-1 checkpoint instead."
        )
    payload = json.loads(result.read_text(encoding="utf-8"))
    return {
        "metrics": payload["metrics"],
        "history": payload["history"],
        "predictions": {view: np.asarray(p, dtype=np.int64) for view, p in payload["predictions"].items()},
        "snapshot": Stage1Snapshot(payload["before"], load_file(str(modules))),
    }


def train_stage2(
    trainer: Trainer, resume_from_checkpoint: str | None = None, snapshot: Stage1Snapshot | None = None
) -> dict[str, Any]:
    """Stage 2 with the reference's keep-or-revert rule: train, and keep the result only if it beats the stage-1
    model's attribute-free dev accuracy; otherwise the trained modules get their stage-1 values back.

    Args:
        trainer: A `Trainer` on the model in stage 2 (`model.set_stage(2)`: only the unknown LoRAs train)
            whose evaluation dataset is the attribute-free dev split (`drop_attributes`).
        resume_from_checkpoint: A stage-2 checkpoint to continue from (passed to `trainer.train`).
        snapshot: The stage-1 accuracy and modules (`stage1_snapshot`); needed with `resume_from_checkpoint`, since
            the model then is no longer the stage-1 one. Default: taken from the model now.

    Returns:
        `{"before", "after", "kept"}`: the attribute-free dev accuracy before and after stage 2 (after: the best
        evaluation when the Trainer keeps the best model by accuracy) and whether stage 2 was kept.
    """
    model = trainer.model
    if snapshot is None:
        if resume_from_checkpoint is not None:
            raise ValueError("resuming stage 2 needs the stage-1 `snapshot` (accuracy and modules).")
        snapshot = stage1_snapshot(trainer)
    before, stage1_state = snapshot.before, snapshot.state
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    args = trainer.args
    after = trainer.state.best_metric
    if not (args.load_best_model_at_end and args.metric_for_best_model == "accuracy" and after):
        after = trainer.evaluate()["eval_accuracy"]
    kept = after > before
    if not kept:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name in stage1_state:
                    param.copy_(stage1_state[name])
    outcome = "kept" if kept else "no gain, the stage-1 unknown LoRAs are restored"
    logger.info("Stage 2: attribute-free dev accuracy %.4f -> %.4f; %s.", before, after, outcome)
    return {"before": before, "after": after, "kept": kept}


def train_baseline(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: TrainingArguments,
    procedure: ProcedureArguments | None = None,
    data: DatasetDict | None = None,
) -> TrainingResult:
    """The IID baseline: peft LoRA on the same backbone with M2A's placement (Q, V, attention output, intermediate)
    and rank, no attributes, same data and schedule. Reports the same metrics, split by seen / unseen values."""
    from peft import LoraConfig, TaskType, get_peft_model

    from m2a_hf.modeling import M2AConfig

    procedure = procedure or ProcedureArguments()
    start = time.time()
    check_launch(training_args)
    out = Path(training_args.output_dir)
    resume = _baseline_resume(training_args.resume_from_checkpoint, out)
    resuming = resume is not None or is_truthy_resume(training_args.resume_from_checkpoint)
    _prepare_output_dir(training_args, procedure, resume=resuming)
    set_seed(training_args.seed)  # the adapters and heads are initialised before the Trainer seeds anything
    prepared = _prepare(model_args, data_args, training_args, data)
    backbone, names, vocab, tokenizer, features, num_labels, id2label = prepared
    reference = M2AConfig(**model_args.config_overrides())
    label_kwargs = {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}} if id2label else {}
    base = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=num_labels, **label_kwargs)
    if model_args.full_finetune:
        model = base
    else:
        m2a_targets, lora_targets = reference.resolved_target_modules(base.config.model_type)
        if m2a_targets is None or lora_targets is None:
            raise ValueError(
                f"the backbone family {base.config.model_type!r} has no default adapter placement: pass "
                "`m2a_target_modules` and `lora_target_modules` (suffixes of its linear layers)."
            )
        lora = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=reference.lora_rank,
            lora_alpha=reference.lora_alpha,
            lora_dropout=reference.lora_dropout,
            target_modules=m2a_targets + lora_targets,
            modules_to_save=baseline_modules_to_save(base, reference.train_layer_norms),
        )
        model = get_peft_model(base, lora)
    collator = DataCollatorWithPadding(tokenizer)
    train = features["train"].remove_columns(["attribute_ids"])
    dev = features["validation"].remove_columns(["attribute_ids"])
    trainer = _trainer(model, training_args, train, dev, tokenizer, collator, procedure.early_stopping_patience)
    trainer.train(resume_from_checkpoint=resume)
    test = features["test"]
    _check_sequential_evaluation(trainer.args)
    seen = _seen_mask(test, names, data_args.seen_attribute)
    prediction = trainer.predict(test.remove_columns(["attribute_ids"]), metric_key_prefix="test")
    predicted, labels = _logits_and_labels(prediction)
    result = metrics_by_seen(predicted, labels, seen)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    metrics = {
        "test": {"iid": result},
        "trainable_parameters": trainable,
        "train_seconds": round(time.time() - start, 1),
    }
    wait_for_everyone(training_args)
    if is_main_process(training_args):  # main process only, after the barrier
        with staged_final_save(out) as folder:  # complete in a staging folder, then published with the config last
            trainer.save_model(str(folder))  # no collective for DDP or ZeRO-1/2 (ZeRO-3 would need every process)
            _write_json(folder / "metrics.json", metrics)
    return TrainingResult(
        metrics, str(out), model, tokenizer, vocab, list(trainer.state.log_history), {"iid": predicted}
    )


def _prepare_output_dir(training_args: TrainingArguments, procedure: ProcedureArguments, resume: bool) -> Path:
    """`prepare_output_dir` in the main process first (which may replace an earlier run), then in the others (which
    then find the folder ready, or raise the same error)."""
    with training_args.main_process_first(local=False, desc="preparing the output folder"):
        return prepare_output_dir(
            training_args.output_dir, overwrite=overwrite_requested(training_args, procedure), resume=resume
        )


def _baseline_resume(value: Any, out: Path) -> str | None:
    """The baseline's checkpoint to resume from: its own last one for `True` (None when it has none yet: the M2A run
    of the same command may have been the one interrupted); a path outside its folder (an M2A checkpoint passed down
    by `m2a-hf train --baseline`) is ignored."""
    if is_truthy_resume(value):
        return get_last_checkpoint(str(out)) if out.is_dir() else None
    path, _ = resolve_resume_checkpoint(value, out)
    if path is not None and Path(path).resolve().parent != out.resolve():
        logger.warning("Baseline: %s is not a checkpoint of %s; the baseline starts from scratch.", path, out)
        return None
    return path


def _write_json(path: Path, payload: Any) -> None:
    write_json_atomic(path, payload, indent=2, default=float)


def _plot(history: list[dict[str, Any]], metrics: dict[str, Any], path: Path) -> None:
    """Training curves (loss, dev accuracy per stage) and test accuracy per view, seen vs unseen."""
    try:
        from matplotlib.figure import Figure  # a Figure of its own: no pyplot, no global backend
    except ImportError:
        logger.warning("matplotlib is not installed (pip install 'm2a-hf[plot]'): no %s", path.name)
        return
    fig = Figure(figsize=(15, 4))
    axes = fig.subplots(1, 3)
    for stage in (1, 2):
        rows = [h for h in history if h.get("stage", 1) == stage]
        loss = [(h["step"], h["loss"]) for h in rows if "loss" in h]
        dev = [(h["step"], h["eval_accuracy"]) for h in rows if "eval_accuracy" in h]
        if loss:
            axes[0].plot(*zip(*loss, strict=True), label=f"stage {stage}")
        if dev:
            axes[1].plot(*zip(*dev, strict=True), marker="o", label=f"stage {stage}")
    axes[0].set(title="training loss", xlabel="step")
    axes[1].set(title="dev accuracy", xlabel="step")
    groups = ("", "seen_", "unseen_")
    width = 0.35
    for i, view in enumerate(VIEWS):
        values = [(metrics["test"][view].get(f"{g}accuracy") or 0.0) for g in groups]
        axes[2].bar(np.arange(3) + i * width, values, width, label=f"{view} view")
    axes[2].set_xticks(np.arange(3) + width / 2, ["all", "seen", "unseen"])
    axes[2].set(title="test accuracy", ylim=(0, 1))
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


__all__ = [
    "DataArguments",
    "ModelArguments",
    "ProcedureArguments",
    "Stage1Snapshot",
    "TrainingResult",
    "baseline_modules_to_save",
    "default_backbone",
    "drop_attributes",
    "evaluate_checkpoint",
    "evaluate_views",
    "is_named_dataset",
    "label_names",
    "load_data",
    "overwrite_requested",
    "stage1_snapshot",
    "train_baseline",
    "train_m2a",
    "train_stage2",
    "training_arguments",
    "training_defaults",
]
