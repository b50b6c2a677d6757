"""Classification metrics for M2A, computed by the `m2a_classification` evaluate metric shipped with the package.

The formulas (accuracy, RMSE between the predicted and true ratings, macro-F1, and the split by seen / unseen
attribute values) live in one place, the self-contained metric module
`m2a_hf/evaluate_metrics/m2a_classification/m2a_classification.py`, which `evaluate.load(M2A_CLASSIFICATION_PATH)`
loads offline and which can be pushed to the Hub as a metric Space. This module imports it (on first use: `evaluate`
is a heavy import) and adds what the Trainer needs: :func:`compute_metrics` plugs into
``Trainer(compute_metrics=...)`` and computes through the metric's ``compute``; :func:`metrics_by_seen` reports the
same metrics separately for samples whose attribute values were / were not seen in training;
:func:`seen_mask_from_attribute_ids` says which those are.

Example:
    >>> classification_metrics([0, 1, 2, 2], [0, 1, 1, 2])
    {'accuracy': 0.75, 'macro_f1': 0.7777777777777777, 'rmse': 0.5}
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from m2a_hf.evaluate_metrics import M2A_CLASSIFICATION_PATH


logger = logging.getLogger(__name__)

ArrayLike = Sequence[Any] | np.ndarray


@functools.cache
def metric_module() -> ModuleType:
    """The `m2a_classification` metric module (the formulas), imported once."""
    return importlib.import_module("m2a_hf.evaluate_metrics.m2a_classification.m2a_classification")


@functools.cache
def load_metric() -> Any:
    """The `m2a_classification` `evaluate.Metric`, kept in memory (no cache files, so processes never share one)."""
    return metric_module().M2aClassification(keep_in_memory=True)


def accuracy(preds: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of exact matches (`preds`: class ids `(n,)` or logits `(n, num_classes)`; `labels`: class ids).

    Raises:
        ValueError: On mismatched lengths, bad shapes or no samples.
    """
    return metric_module().accuracy(preds, labels)


def rmse(preds: ArrayLike, labels: ArrayLike) -> float:
    """Root mean squared error between predicted and true ratings (class ids; labels are `rating - 1`, so the offset
    cancels). The reference code logs the MSE; the paper reports this RMSE.

    Raises:
        ValueError: On mismatched lengths, bad shapes or no samples.
    """
    return metric_module().rmse(preds, labels)


def macro_f1(preds: ArrayLike, labels: ArrayLike, num_labels: int | None = None) -> float:
    """Unweighted mean of the per-class F1 scores; with ``num_labels`` over the classes ``0..num_labels-1`` (as
    sklearn's ``f1_score(labels=range(num_labels), average="macro")``), else over the classes present.

    Raises:
        ValueError: On mismatched lengths, bad shapes, no samples or a bad ``num_labels``.
    """
    return metric_module().macro_f1(preds, labels, num_labels=num_labels)


def classification_metrics(preds: ArrayLike, labels: ArrayLike, num_labels: int | None = None) -> dict[str, float]:
    """``{"accuracy", "macro_f1", "rmse"}`` of ``preds`` (class ids or logits) against ``labels``."""
    return metric_module().classification_metrics(preds, labels, num_labels=num_labels)


def compute_metrics(eval_pred: Any) -> dict[str, float]:
    """``Trainer(compute_metrics=compute_metrics)``: the `m2a_classification` metric of the argmax of the logits.

    Args:
        eval_pred: An ``EvalPrediction`` or a ``(predictions, label_ids)`` pair. ``predictions`` may be a tuple (the
            first element, the classification logits, is used) and may be logits ``(n, num_classes)`` or class ids
            ``(n,)``; ``label_ids`` may be a tuple too (first element used).

    Returns:
        ``{"accuracy", "macro_f1", "rmse"}`` (the Trainer prefixes them with ``eval_``).
    """
    if hasattr(eval_pred, "predictions") and hasattr(eval_pred, "label_ids"):
        predictions, label_ids = eval_pred.predictions, eval_pred.label_ids
    else:
        try:
            predictions, label_ids = eval_pred
        except (TypeError, ValueError):
            raise ValueError(
                f"eval_pred must be an EvalPrediction or a (predictions, label_ids) pair, got {type(eval_pred).__name__}."
            ) from None
    if isinstance(predictions, tuple):
        predictions = predictions[0]
    if isinstance(label_ids, tuple):
        label_ids = label_ids[0]
    if label_ids is None:
        raise ValueError("compute_metrics got no label_ids; the evaluation data must have 'labels'.")
    predictions, label_ids = metric_module().check_pair(predictions, label_ids)  # this module's errors, not evaluate's
    return load_metric().compute(predictions=predictions, references=label_ids)


def metrics_by_seen(
    preds: ArrayLike, labels: ArrayLike, seen_mask: ArrayLike, prefix: str = ""
) -> dict[str, float | int | None]:
    """Metrics over all samples and separately over "seen" and "unseen" ones.

    Args:
        preds: Predicted class ids ``(n,)`` or logits ``(n, num_classes)``.
        labels: True class ids ``(n,)``.
        seen_mask: Boolean ``(n,)``: True where the sample's attribute values were seen in training (see
            :func:`seen_mask_from_attribute_ids`).
        prefix: Put before every key (e.g. ``"test_"``).

    Returns:
        ``accuracy``, ``macro_f1``, ``rmse`` over everything; ``seen_accuracy`` ... and ``unseen_accuracy`` ...
        over each group (``None`` for a group with no sample); ``seen_count`` and ``unseen_count``.

    Raises:
        ValueError: If the lengths differ or ``seen_mask`` is not 1-D.
    """
    return metric_module().metrics_by_seen(preds, labels, seen_mask, prefix=prefix)


def seen_mask_from_attribute_ids(
    attribute_ids: ArrayLike, attribute_index: int | Sequence[int] | None = None
) -> np.ndarray:
    """Which samples count as "seen": their attribute id is known (``!= -1``).

    Args:
        attribute_ids: ``(n, num_attributes)`` ids as produced by :class:`~m2a_hf.data.AttributeVocab` (a 1-D
            ``(n,)`` array is taken as one attribute).
        attribute_index: The attribute column to look at, or several. ``None`` (default) means **all**
            attributes: a sample is seen only when every attribute value is known. Pass ``0`` to look at the first
            attribute only (e.g. the user).

    Returns:
        Boolean array ``(n,)``.

    Raises:
        ValueError: On a bad shape or an index out of range.
    """
    ids = metric_module().to_numpy(attribute_ids)
    if ids.ndim == 1:
        ids = ids[:, None]
    if ids.ndim != 2:
        raise ValueError(f"attribute_ids must have shape (n, num_attributes), got {ids.shape}.")
    num_attributes = ids.shape[1]
    if attribute_index is None:
        columns = list(range(num_attributes))
    elif isinstance(attribute_index, int | np.integer) and not isinstance(attribute_index, bool):
        columns = [int(attribute_index)]
    else:
        columns = [int(index) for index in attribute_index]
    for index in columns:
        if not -num_attributes <= index < num_attributes:
            raise ValueError(f"attribute_index {index} out of range for {num_attributes} attribute(s).")
    if not columns:
        raise ValueError("attribute_index selects no attribute.")
    return np.all(ids[:, columns] != -1, axis=1)


__all__ = [
    "M2A_CLASSIFICATION_PATH",
    "accuracy",
    "classification_metrics",
    "compute_metrics",
    "load_metric",
    "macro_f1",
    "metric_module",
    "metrics_by_seen",
    "rmse",
    "seen_mask_from_attribute_ids",
]
