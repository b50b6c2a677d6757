"""Evaluating a trained M2A model in both views (attribute-aware and attribute-free), split by seen / unseen values."""

from __future__ import annotations

from typing import Any

import numpy as np
from datasets import Dataset
from transformers import Trainer, TrainingArguments

from m2a_hf.metrics import metrics_by_seen, seen_mask_from_attribute_ids


VIEWS = ("fine", "coarse")
"""Evaluation views: `fine` = per-sample routing with the attributes (M2A), `coarse` = attributes dropped (M2A†)."""


def drop_attributes(dataset: Dataset) -> Dataset:
    """The same samples with every attribute value unknown (-1): the attribute-free view."""
    return dataset.map(
        lambda batch: {"attribute_ids": [[-1] * len(ids) for ids in batch["attribute_ids"]]},
        batched=True,
        desc="dropping attributes",
    )


def _seen_mask(dataset: Dataset, attribute_names: list[str], seen_attribute: str | None) -> np.ndarray:
    """True for the rows whose value of `seen_attribute` (default: every attribute) occurred in training."""
    index = None if seen_attribute is None else attribute_names.index(seen_attribute)
    return seen_mask_from_attribute_ids(np.asarray(dataset["attribute_ids"]), index)


def evaluate_views(
    trainer: Trainer,
    dataset: Dataset,
    attribute_names: list[str],
    seen_attribute: str | None = None,
    prefix: str = "test",
    views: tuple[str, ...] = VIEWS,
    predictions: dict[str, np.ndarray] | None = None,
    seen: np.ndarray | None = None,
) -> dict[str, Any]:
    """Accuracy / macro-F1 / RMSE of each view, overall and split into samples whose attribute values were seen in
    training and those that were not. `fine`: the attributes as given; `coarse`: attributes dropped (M2A†).

    If `predictions` is a dict, the class predictions of each view (in dataset order) are stored in it. `seen` (a
    boolean mask in dataset order) overrides the split computed from `dataset`'s attribute ids."""
    _check_sequential_evaluation(trainer.args)
    if seen is None:
        seen = _seen_mask(dataset, attribute_names, seen_attribute)
    results: dict[str, Any] = {}
    for view in views:
        data = dataset if view == "fine" else drop_attributes(dataset)
        prediction = trainer.predict(data, metric_key_prefix=f"{prefix}_{view}")
        predicted, labels = _logits_and_labels(prediction)
        results[view] = metrics_by_seen(predicted, labels, seen)
        if predictions is not None:
            predictions[view] = predicted
    return results


def _check_sequential_evaluation(args: TrainingArguments) -> None:
    """Seen/unseen masks follow dataset order; a length-grouped sampler would reorder evaluation batches."""
    if getattr(args, "train_sampling_strategy", None) == "group_by_length" or getattr(args, "group_by_length", False):
        raise ValueError(
            "`train_sampling_strategy='group_by_length'` also reorders evaluation batches, which would misalign the "
            "seen/unseen split of the metrics; use the default sampling strategy for M2A evaluation."
        )


def _logits_and_labels(prediction) -> tuple[np.ndarray, np.ndarray]:
    """Class predictions and labels of a `Trainer.predict` output (extra outputs / label tensors dropped)."""
    logits, labels = prediction.predictions, prediction.label_ids
    logits = logits[0] if isinstance(logits, tuple) else logits
    labels = labels[0] if isinstance(labels, tuple) else labels
    return np.argmax(logits, -1), labels
