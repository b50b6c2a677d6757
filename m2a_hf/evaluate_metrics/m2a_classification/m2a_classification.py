"""M2A's attribute-aware classification metrics as an `evaluate` metric module.

Self-contained (numpy, `datasets` and `evaluate` only; no m2a_hf import), so that the folder holding this file can be
loaded offline with `evaluate.load("<folder>")` and pushed to the Hub as a metric Space. It is also the one place
the formulas live: `m2a_hf.metrics` (what `Trainer(compute_metrics=...)` uses) computes through it.

- accuracy; RMSE between the predicted and true class ids read as ordinal ratings (labels are `rating - 1`, so the
  offset cancels); macro-F1 (sklearn's `f1_score(average="macro")`);
- with `seen=`, the same three over the samples whose attribute values were seen in training and over the others
  (`seen_accuracy`, ..., `unseen_rmse`; None for a group without samples), plus `seen_count` and `unseen_count`.

Example:
    >>> metric = evaluate.load("m2a_hf/evaluate_metrics/m2a_classification")  # doctest: +SKIP
    >>> metric.compute(predictions=[0, 1, 2, 2], references=[0, 1, 1, 2])  # doctest: +SKIP
    {'accuracy': 0.75, 'macro_f1': 0.7777777777777777, 'rmse': 0.5}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import datasets
import evaluate
import numpy as np


_CITATION = """\
@inproceedings{zhang2025m2a,
  title     = {Multi-Attribute Multi-Grained Adaptation of Pre-Trained Language Models for Text Understanding from Bayesian Perspective},
  author    = {Zhang, You and Wang, Jin and Yu, Liang-Chih and Xu, Dan and Zhang, Xuejie},
  booktitle = {Proceedings of the AAAI Conference on Artificial Intelligence},
  year      = {2025},
  eprint    = {2503.06085},
  archivePrefix = {arXiv}
}
"""

_DESCRIPTION = """\
The metrics of M2A (multi-attribute multi-grained adaptation): accuracy, macro-F1 and RMSE (class ids read as
ordinal ratings), over all samples and, given `seen`, separately over the samples whose attribute values (user,
item, ...) were seen in training and those whose values were not.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): Predicted class ids.
    references (`list` of `int`): True class ids.
    seen (`list` of `bool`, *optional*): Per sample, whether its attribute values were seen in training. Adds
        `seen_*` / `unseen_*` metrics and the two counts.
    num_labels (`int`, *optional*): Number of classes for macro-F1: a class absent from both predictions and
        references then scores 0 (default: the classes present in either).
Returns:
    accuracy (`float`), macro_f1 (`float`), rmse (`float`); with `seen`: seen_accuracy, seen_macro_f1, seen_rmse,
    unseen_accuracy, unseen_macro_f1, unseen_rmse (`float`, None for an empty group), seen_count and unseen_count
    (`int`).
Examples:
    >>> metric = evaluate.load("m2a_classification")
    >>> metric.compute(predictions=[0, 1, 2, 2], references=[0, 1, 1, 2], seen=[True, True, False, False])
    {'accuracy': 0.75, 'macro_f1': 0.7777777777777777, 'rmse': 0.5, 'seen_accuracy': 1.0, 'seen_macro_f1': 1.0, 'seen_rmse': 0.0, 'seen_count': 2, 'unseen_accuracy': 0.5, 'unseen_macro_f1': 0.3333333333333333, 'unseen_rmse': 0.7071067811865476, 'unseen_count': 2}
"""

ArrayLike = Sequence[Any] | np.ndarray
METRIC_NAMES = ("accuracy", "macro_f1", "rmse")
GROUPS = ("seen", "unseen")


def to_numpy(values: Any) -> np.ndarray:
    """Converts lists, numpy arrays and (CPU or GPU) torch tensors to a numpy array."""
    if hasattr(values, "detach"):  # torch.Tensor, without importing torch
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def as_predictions(preds: Any, name: str = "preds") -> np.ndarray:
    """Class ids from ids `(n,)` or from logits `(n, num_classes)` (argmax over the last axis)."""
    array = to_numpy(preds)
    if array.ndim == 2:
        return array.argmax(axis=-1)
    if array.ndim != 1:
        raise ValueError(f"{name} must be class ids (n,) or logits (n, num_classes), got shape {array.shape}.")
    return array


def check_pair(preds: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """`preds` as class ids and `labels`, checked: 1-D, the same length, not empty."""
    predictions = as_predictions(preds)
    targets = to_numpy(labels)
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
        preds: Predicted class ids `(n,)` or logits `(n, num_classes)`.
        labels: True class ids `(n,)`.

    Raises:
        ValueError: On mismatched lengths, bad shapes or no samples.
    """
    predictions, targets = check_pair(preds, labels)
    return float(np.mean(predictions == targets))


def rmse(preds: ArrayLike, labels: ArrayLike) -> float:
    """Root mean squared error between predicted and true ratings.

    Class ids are treated as ordinal ratings; since labels are `rating - 1` the offset cancels. (The reference
    code logs the MSE; the paper reports this RMSE.)

    Raises:
        ValueError: On mismatched lengths, bad shapes or no samples.
    """
    predictions, targets = check_pair(preds, labels)
    diff = predictions.astype(np.float64) - targets.astype(np.float64)
    return float(np.sqrt(np.mean(diff * diff)))


def macro_f1(preds: ArrayLike, labels: ArrayLike, num_labels: int | None = None) -> float:
    """Unweighted mean of the per-class F1 scores.

    The classes are `0..num_labels-1` when `num_labels` is given (a class absent from both `preds` and `labels`
    then scores 0, as sklearn's `f1_score(labels=range(num_labels), average="macro")`), else the classes present in
    `preds` or `labels` (sklearn's default). A class with no true and no predicted sample, or with zero precision
    and recall, scores 0.

    Raises:
        ValueError: On mismatched lengths, bad shapes, no samples or a bad `num_labels`.
    """
    predictions, targets = check_pair(preds, labels)
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
    """`{"accuracy", "macro_f1", "rmse"}` of `preds` (class ids or logits) against `labels`."""
    return {
        "accuracy": accuracy(preds, labels),
        "macro_f1": macro_f1(preds, labels, num_labels=num_labels),
        "rmse": rmse(preds, labels),
    }


def metrics_by_seen(
    preds: ArrayLike, labels: ArrayLike, seen_mask: ArrayLike, prefix: str = "", num_labels: int | None = None
) -> dict[str, float | int | None]:
    """`classification_metrics` over all samples, then over the "seen" and the "unseen" ones.

    Args:
        preds: Predicted class ids `(n,)` or logits `(n, num_classes)`.
        labels: True class ids `(n,)`.
        seen_mask: Boolean `(n,)`: True where the sample's attribute values were seen in training.
        prefix: Put before every key (e.g. `"test_"`).
        num_labels: For macro-F1 (see `macro_f1`).

    Returns:
        `accuracy`, `macro_f1`, `rmse`; then, per group, `seen_accuracy` ... (None for a group with no sample) and
        `seen_count`, and the same for `unseen`.

    Raises:
        ValueError: If the lengths differ or `seen_mask` is not 1-D.
    """
    predictions, targets = check_pair(preds, labels)
    mask = to_numpy(seen_mask)
    if mask.ndim != 1 or mask.shape[0] != targets.shape[0]:
        raise ValueError(f"seen_mask must have shape ({targets.shape[0]},), got {mask.shape}.")
    mask = mask.astype(bool)
    overall = classification_metrics(predictions, targets, num_labels=num_labels)
    result: dict[str, float | int | None] = {f"{prefix}{key}": value for key, value in overall.items()}
    for group, selector in zip(GROUPS, (mask, ~mask), strict=True):
        count = int(selector.sum())
        if count:
            values: dict[str, float | None] = classification_metrics(
                predictions[selector], targets[selector], num_labels=num_labels
            )
        else:
            values = dict.fromkeys(METRIC_NAMES)
        for key, value in values.items():
            result[f"{prefix}{group}_{key}"] = value
        result[f"{prefix}{group}_count"] = count
    return result


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class M2aClassification(evaluate.Metric):  # evaluate names it m2a_classification (snake case)
    """Accuracy, macro-F1 and RMSE, split by seen / unseen attribute values when `seen` is given."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://arxiv.org/abs/2503.06085"],
        )

    def _compute(
        self,
        predictions: ArrayLike,
        references: ArrayLike,
        seen: ArrayLike | None = None,
        num_labels: int | None = None,
    ) -> dict[str, float | int | None]:
        if seen is None:
            return classification_metrics(predictions, references, num_labels=num_labels)
        return metrics_by_seen(predictions, references, seen, num_labels=num_labels)
