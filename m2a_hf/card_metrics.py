"""Evaluation metrics as a model card reads them: the accepted `metrics=` shapes (nested per view and subset, or flat
`Trainer` keys such as `eval_coarse_accuracy`) flattened into (view, subset, metric, value) rows, without sample
counts and Trainer bookkeeping, and their human-readable labels."""

from __future__ import annotations

import dataclasses
import logging
import numbers
from collections.abc import Mapping
from typing import Any


logger = logging.getLogger(__name__)

VIEW_LABELS = {
    "fine": "fine (attribute-aware)",
    "coarse": "coarse (attribute-free)",
    "iid": "IID (shared LoRA only)",
}
SUBSET_LABELS = {"seen": "seen values", "unseen": "unseen values", "all": "all"}
METRIC_LABELS = {
    "accuracy": "Accuracy",
    "acc": "Accuracy",
    "f1": "F1",
    "macro_f1": "Macro-F1",
    "f1_macro": "Macro-F1",
    "micro_f1": "Micro-F1",
    "rmse": "RMSE",
    "mse": "MSE",
    "mae": "MAE",
    "precision": "Precision",
    "recall": "Recall",
}
# Trainer bookkeeping that is not a quality metric.
_NOT_METRICS = {
    "loss",
    "runtime",
    "samples_per_second",
    "steps_per_second",
    "epoch",
    "model_preparation_time",
    "jit_compilation_time",
    "total_flos",
}
_METRIC_PREFIXES = ("eval_", "test_", "predict_")


@dataclasses.dataclass(frozen=True)
class MetricRow:
    """One number of a model card's results: `metric` of `view` on `subset` (None: the whole evaluation set)."""

    view: str
    subset: str | None
    metric: str
    value: float


def is_number(value: Any) -> bool:
    """A real number that is not a bool (Trainer metrics mix floats, ints and flags)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_count(metric: str) -> bool:
    """Sample counts (`seen_count`, `num_samples`, ...) describe the evaluation data; they are not quality metrics."""
    return metric == "count" or metric.endswith("_count") or metric.startswith("num_")


def _split_subset(key: str) -> tuple[str | None, str]:
    for name in SUBSET_LABELS:
        if key.startswith(name + "_"):
            return name, key[len(name) + 1 :]
    return None, key


def _parse_flat_key(key: str, default_view: str) -> tuple[str, str | None, str] | None:
    for prefix in _METRIC_PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix) :]
            break
    view = default_view
    for name in VIEW_LABELS:
        if key.startswith(name + "_"):
            view, key = name, key[len(name) + 1 :]
            break
    subset, key = _split_subset(key)
    if not key or key in _NOT_METRICS or _is_count(key):
        return None
    return view, subset, key


def normalise_metrics(metrics: Mapping[str, Any] | None, default_view: str = "fine") -> list[MetricRow]:
    """Flatten the accepted `metrics` shapes (see the module docstring) into (view, subset, metric, value) rows.

    Sample counts (`seen_count`, `unseen_count`, any `*_count`) and Trainer bookkeeping (`eval_runtime`, ...) are not
    metrics and give no row; `seen_`/`unseen_` prefixes become the subset in both shapes."""
    if not metrics:
        return []
    if not isinstance(metrics, Mapping):
        raise TypeError(f"`metrics` must be a mapping, got {type(metrics).__name__}.")
    rows: list[MetricRow] = []
    for key, value in metrics.items():
        if is_number(value):
            parsed = _parse_flat_key(str(key), default_view)
            if parsed is not None:
                rows.append(MetricRow(*parsed, float(value)))
        elif isinstance(value, Mapping):
            view = str(key)
            for inner_key, inner in value.items():
                if is_number(inner):  # `metrics_by_seen`'s keys: `accuracy`, `seen_accuracy`, `seen_count`, ...
                    subset, metric = _split_subset(str(inner_key))
                    if metric and metric not in _NOT_METRICS and not _is_count(metric):
                        rows.append(MetricRow(view, subset, metric, float(inner)))
                elif isinstance(inner, Mapping):
                    for metric, number in inner.items():
                        if is_number(number) and not _is_count(str(metric)):
                            rows.append(MetricRow(view, str(inner_key), str(metric), float(number)))
        else:
            logger.debug("metric %r ignored on the model card (value %r is not a number)", key, value)
    order = {name: i for i, name in enumerate(VIEW_LABELS)}
    return sorted(rows, key=lambda r: (order.get(r.view, len(order)), r.view, r.subset or "", r.metric))


def metric_label(metric: str) -> str:
    """The label a card shows for a metric key (`macro_f1` -> "Macro-F1"; unknown keys capitalised)."""
    return METRIC_LABELS.get(metric.lower(), metric.replace("_", " ").capitalize())


def describe_row(row: MetricRow) -> str:
    """The row's name in the card's model-index, e.g. "Accuracy (fine view, seen values)"."""
    subset = f", {SUBSET_LABELS.get(row.subset, row.subset)}" if row.subset else ""
    return f"{metric_label(row.metric)} ({row.view} view{subset})"


__all__ = [
    "METRIC_LABELS",
    "SUBSET_LABELS",
    "VIEW_LABELS",
    "MetricRow",
    "describe_row",
    "is_number",
    "metric_label",
    "normalise_metrics",
]
