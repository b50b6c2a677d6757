"""Classification metrics for M2A (numpy only, no Hub access).

``evaluate.load("accuracy")`` fetches its script from the Hub and fails offline, so the metrics the paper reports
are computed here: accuracy, RMSE between the predicted and true ratings (labels are ``rating - 1``, so the offset
cancels) and macro-F1. :func:`compute_metrics` plugs into ``Trainer(compute_metrics=...)``;
:func:`metrics_by_seen` reports the same metrics separately for samples whose attribute values were / were not seen
in training.

Example:
    >>> classification_metrics([0, 1, 2, 2], [0, 1, 1, 2])
    {'accuracy': 0.75, 'macro_f1': 0.7777777777777777, 'rmse': 0.5}
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np


logger = logging.getLogger(__name__)

ArrayLike = Sequence[Any] | np.ndarray


def _to_numpy(values: Any) -> np.ndarray:
    """Converts lists, numpy arrays and (CPU or GPU) torch tensors to a numpy array."""
    if hasattr(values, "detach"):  # torch.Tensor, without importing torch
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _as_predictions(preds: Any, name: str = "preds") -> np.ndarray:
    """Class ids from ids ``(n,)`` or from logits ``(n, num_classes)`` (argmax over the last axis)."""
    array = _to_numpy(preds)
    if array.ndim == 2:
        return array.argmax(axis=-1)
    if array.ndim != 1:
        raise ValueError(f"{name} must be class ids (n,) or logits (n, num_classes), got shape {array.shape}.")
    return array


def _check_pair(preds: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    predictions = _as_predictions(preds)
    targets = _to_numpy(labels)
    if targets.ndim != 1:
        raise ValueError(f"labels must be a 1-D array of class ids, got shape {targets.shape}.")
    if predictions.shape[0] != targets.shape[0]:
        raise ValueError(f"preds has {predictions.shape[0]} samples but labels has {targets.shape[0]}.")
    if targets.shape[0] == 0:
        raise ValueError("cannot compute a metric on zero samples.")
    return predictions, targets


def accuracy(preds: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of exact matches.

    Args:
        preds: Predicted class ids ``(n,)`` or logits ``(n, num_classes)``.
        labels: True class ids ``(n,)``.

    Returns:
        Accuracy in ``[0, 1]``.

    Raises:
        ValueError: On mismatched lengths, bad shapes or no samples.
    """
    predictions, targets = _check_pair(preds, labels)
    return float(np.mean(predictions == targets))


def rmse(preds: ArrayLike, labels: ArrayLike) -> float:
    """Root mean squared error between predicted and true ratings.

    Class ids are treated as ordinal ratings; since labels are ``rating - 1`` the offset cancels. (The reference
    code logs the MSE; the paper reports this RMSE.)

    Args:
        preds: Predicted class ids ``(n,)`` or logits ``(n, num_classes)``.
        labels: True class ids ``(n,)``.

    Returns:
        The RMSE.

    Raises:
        ValueError: On mismatched lengths, bad shapes or no samples.
    """
    predictions, targets = _check_pair(preds, labels)
    diff = predictions.astype(np.float64) - targets.astype(np.float64)
    return float(np.sqrt(np.mean(diff * diff)))


def macro_f1(preds: ArrayLike, labels: ArrayLike, num_labels: int | None = None) -> float:
    """Unweighted mean of the per-class F1 scores.

    The classes are ``0..num_labels-1`` when ``num_labels`` is given (a class absent from both ``preds`` and
    ``labels`` then scores 0, as sklearn's ``f1_score(labels=range(num_labels), average="macro")``), else the
    classes present in ``preds`` or ``labels`` (sklearn's default). A class with no true and no predicted sample, or
    with zero precision and recall, scores 0.

    Args:
        preds: Predicted class ids ``(n,)`` or logits ``(n, num_classes)``.
        labels: True class ids ``(n,)``.
        num_labels: Number of classes, if known.

    Returns:
        Macro-F1 in ``[0, 1]``.

    Raises:
        ValueError: On mismatched lengths, bad shapes, no samples or a bad ``num_labels``.
    """
    predictions, targets = _check_pair(preds, labels)
    if num_labels is None:
        classes = np.union1d(np.unique(predictions), np.unique(targets))
    else:
        if isinstance(num_labels, bool) or not isinstance(num_labels, int | np.integer) or num_labels < 1:
            raise ValueError(f"num_labels must be a positive integer, got {num_labels!r}.")
        classes = np.arange(int(num_labels))
    # one-vs-rest counts for every class at once: (num_classes, n) comparisons
    is_pred = predictions[None, :] == classes[:, None]
    is_true = targets[None, :] == classes[:, None]
    true_pos = np.sum(is_pred & is_true, axis=1).astype(np.float64)
    denominator = is_pred.sum(axis=1) + is_true.sum(axis=1)  # 2TP + FP + FN
    f1 = np.divide(2.0 * true_pos, denominator, out=np.zeros_like(true_pos), where=denominator > 0)
    return float(np.mean(f1))


def classification_metrics(preds: ArrayLike, labels: ArrayLike, num_labels: int | None = None) -> dict[str, float]:
    """Accuracy, macro-F1 and RMSE in one dict.

    Args:
        preds: Predicted class ids ``(n,)`` or logits ``(n, num_classes)``.
        labels: True class ids ``(n,)``.
        num_labels: Number of classes for :func:`macro_f1`.

    Returns:
        ``{"accuracy": ..., "macro_f1": ..., "rmse": ...}``.
    """
    return {
        "accuracy": accuracy(preds, labels),
        "macro_f1": macro_f1(preds, labels, num_labels=num_labels),
        "rmse": rmse(preds, labels),
    }


def compute_metrics(eval_pred: Any) -> dict[str, float]:
    """``Trainer(compute_metrics=compute_metrics)``: :func:`classification_metrics` of the argmax of the logits.

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
    return classification_metrics(predictions, label_ids)


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
    predictions, targets = _check_pair(preds, labels)
    mask = _to_numpy(seen_mask)
    if mask.ndim != 1 or mask.shape[0] != targets.shape[0]:
        raise ValueError(f"seen_mask must have shape ({targets.shape[0]},), got {mask.shape}.")
    mask = mask.astype(bool)
    result: dict[str, float | int | None] = {
        f"{prefix}{key}": value for key, value in classification_metrics(predictions, targets).items()
    }
    for group, selector in (("seen", mask), ("unseen", ~mask)):
        count = int(selector.sum())
        if count:
            group_metrics: dict[str, float | None] = classification_metrics(predictions[selector], targets[selector])
        else:
            group_metrics = dict.fromkeys(("accuracy", "macro_f1", "rmse"))
        for key, value in group_metrics.items():
            result[f"{prefix}{group}_{key}"] = value
        result[f"{prefix}{group}_count"] = count
    return result


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
    ids = _to_numpy(attribute_ids)
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
    "accuracy",
    "classification_metrics",
    "compute_metrics",
    "macro_f1",
    "metrics_by_seen",
    "rmse",
    "seen_mask_from_attribute_ids",
]
