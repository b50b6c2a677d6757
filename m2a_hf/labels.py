"""Class labels of a training run, as transformers' `run_classification.py` chooses them.

The classes are the sorted distinct labels of the **training** split: numbers by value (`"10"` after `"9"`; `5`,
`5.0`, `"5.0"` and `"05"` are one label `"5"`), then any other strings in alphabetical order. The label column of every
split becomes a `datasets.ClassLabel` whose names are the original values, so `id2label` reads `"1".."5"` or
`"neg"`/`"pos"`. A validation or test label that does not occur in training is an error naming the split and row, as
are an empty split and a training split with fewer than two labels.

`--label_map` (the classes, in order) and `--label_offset` (integer labels, class = value - offset) override the
choice; the named datasets keep their own integer classes and readable names (`m2a_hf.training.label_names`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from datasets import ClassLabel, Dataset, DatasetDict, Value

from m2a_hf.values import normalize_attribute_value, to_integer


LABEL_COLUMN = "label"
_SHOWN = 20


def canonical_label(value: Any) -> str | None:
    """The string a label value is known by, or `None` when it is missing.

    Integral numbers give their decimal integer (`5`, `5.0`, `"5.0"` and `"05"` are `"5"`); anything else is normalised
    like an attribute value (`normalize_attribute_value`: stripped, `"1.50"` -> `"1.5"`, `"NaN"`/blank -> missing).
    """
    number = to_integer(value)
    if number is not None:
        return str(number)
    return normalize_attribute_value(value)


def label_sort_key(label: str) -> tuple[int, float, str]:
    """Sort key of a canonical label: numbers first, by value; then other strings alphabetically."""
    try:
        number = float(label)
    except ValueError:
        return (1, 0.0, label)
    return (0, number, label) if math.isfinite(number) else (1, 0.0, label)


def _shown(labels: Sequence[str]) -> list[str]:
    return list(labels) if len(labels) <= _SHOWN else [*labels[:_SHOWN], "..."]


def _where(source: str, split: str, dataset: Dataset, row: int) -> str:
    row_id = dataset[row]["id"] if "id" in dataset.column_names else None
    return f"{source}: {split} split, row {row}" + (f" (id {row_id!r})" if row_id is not None else "")


def check_splits(data: DatasetDict, source: str, splits: Iterable[str] = ("train", "validation", "test")) -> None:
    """Raise a ValueError naming the split when one of `splits` is missing or empty."""
    sizes = {split: len(data[split]) for split in data}
    for split in splits:
        if split not in data:
            raise ValueError(f"{source}: no {split!r} split (splits: {sorted(data)}).")
        if len(data[split]) == 0:
            raise ValueError(
                f"{source}: the {split} split is empty (split sizes: {sizes}); training needs rows in each of "
                "train, validation and test: give more rows (a table without splits is split 80/10/10 by row) or "
                "non-empty splits."
            )


def _canonical_column(dataset: Dataset, split: str, source: str) -> list[str]:
    values = dataset[LABEL_COLUMN]
    feature = dataset.features.get(LABEL_COLUMN)
    if isinstance(feature, ClassLabel):  # read a ClassLabel through its names
        values = [feature.int2str(int(value)) for value in values]
    labels = []
    for row, value in enumerate(values):
        label = canonical_label(value)
        if label is None:
            raise ValueError(f"{_where(source, split, dataset, row)}: the label is missing ({value!r}).")
        labels.append(label)
    return labels


def _class_names(
    train: list[str], label_map: Sequence[Any] | None, label_offset: int | None, source: str, dataset: Dataset
) -> list[str]:
    if label_map is not None and label_offset is not None:
        raise ValueError(f"give either label_map ({list(label_map)!r}) or label_offset ({label_offset!r}), not both.")
    if label_map is not None:
        names = [canonical_label(value) for value in label_map]
        if any(name is None for name in names):
            raise ValueError(f"label_map {list(label_map)!r} lists a missing value.")
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"label_map {list(label_map)!r} lists {repeated} more than once.")
        return names  # type: ignore[return-value]
    if label_offset is not None:
        if isinstance(label_offset, bool) or not isinstance(label_offset, int):
            raise ValueError(f"label_offset must be an integer, got {label_offset!r}.")
        classes = []
        for row, label in enumerate(train):
            number = to_integer(label)
            if number is None or number < label_offset:
                raise ValueError(
                    f"{_where(source, 'train', dataset, row)}: label {label!r} is not an integer >= label_offset "
                    f"({label_offset})."
                )
            classes.append(number - label_offset)
        return [str(index + label_offset) for index in range(max(classes) + 1)]
    return sorted(set(train), key=label_sort_key)


def resolve_labels(
    data: DatasetDict,
    *,
    source: str = "data",
    label_map: Sequence[Any] | None = None,
    label_offset: int | None = None,
) -> DatasetDict:
    """The same data with each split's `label` column as a `ClassLabel` over the training split's labels.

    Args:
        data: `train`, `validation` and `test` splits with a `label` column of any type (strings, numbers).
        source: What the data is (a file name), for error messages.
        label_map: The classes in order (class `i` is `label_map[i]`); labels outside it are an error.
        label_offset: Integer labels; class = value - `label_offset`, classes `0..max` of the training split.

    Returns:
        A DatasetDict whose `label` features are one `ClassLabel` (names: the canonical label strings).

    Raises:
        ValueError: On an empty split, a missing label, a training split with fewer than two labels, or a
            validation/test label that is not a class (the split, row and row id are named).
    """
    check_splits(data, source)
    canonical = {split: _canonical_column(data[split], split, source) for split in data}
    names = _class_names(canonical["train"], label_map, label_offset, source, data["train"])
    if len(names) < 2 or len(set(canonical["train"])) < 2:
        found = sorted(set(canonical["train"]), key=label_sort_key)
        raise ValueError(
            f"{source}: the training split has {len(found)} distinct label(s) {_shown(found)}; a classifier needs at "
            "least 2."
        )
    index = {name: i for i, name in enumerate(names)}
    feature = ClassLabel(names=names)
    result = {}
    for split, dataset in data.items():
        ids = []
        for row, label in enumerate(canonical[split]):
            if label not in index:
                known = "the label_map" if label_map is not None else "the training split"
                raise ValueError(
                    f"{_where(source, split, dataset, row)}: label {label!r} does not occur in {known}; classes: "
                    f"{_shown(names)}."
                )
            ids.append(index[label])
        result[split] = _with_labels(dataset, ids, feature)
    return DatasetDict(result)


def class_indices_labels(data: DatasetDict, source: str = "data") -> int:
    """Check integer class indices (what the named datasets produce) and return the number of classes.

    The number of classes is the largest index over all splits + 1 (a named dataset defines its label space).

    Raises:
        ValueError: On an empty split, a label that is not a non-negative integer, or fewer than two training labels.
    """
    check_splits(data, source)
    largest = -1
    for split, dataset in data.items():
        for row, value in enumerate(dataset[LABEL_COLUMN]):
            number = to_integer(value)
            if number is None or number < 0:
                raise ValueError(
                    f"{_where(source, split, dataset, row)}: label {value!r} is not a class index (integer >= 0)."
                )
            largest = max(largest, number)
    found = sorted({int(value) for value in data["train"][LABEL_COLUMN]})
    if len(found) < 2:
        raise ValueError(f"{source}: the training split has {len(found)} distinct label(s) {found}; need at least 2.")
    return largest + 1


def is_class_label(dataset: Dataset) -> bool:
    """Whether the `label` column is a `ClassLabel` (labels resolved by `resolve_labels`)."""
    return isinstance(dataset.features.get(LABEL_COLUMN), ClassLabel)


def is_integer_label(dataset: Dataset) -> bool:
    """Whether the `label` column holds integers (a `ClassLabel` or an integer `Value`)."""
    feature = dataset.features.get(LABEL_COLUMN)
    return isinstance(feature, ClassLabel) or (
        isinstance(feature, Value) and feature.dtype.startswith(("int", "uint"))
    )


def encode_with_classes(dataset: Dataset, names: Sequence[str], split: str, source: str) -> Dataset:
    """`dataset` with its labels as indices into `names` (a model's `id2label` values), e.g. for evaluation.

    A `ClassLabel` column is read through its names; other columns through `canonical_label`.

    Raises:
        ValueError: On a label that is not one of `names` (split, row and id named).
    """
    feature = dataset.features.get(LABEL_COLUMN)
    values = dataset[LABEL_COLUMN]
    if isinstance(feature, ClassLabel):
        values = [feature.int2str(int(v)) for v in values]
    index = {canonical_label(name): i for i, name in enumerate(names)}
    ids = []
    for row, value in enumerate(values):
        label = canonical_label(value)
        if label not in index:
            raise ValueError(
                f"{_where(source, split, dataset, row)}: label {value!r} is not a class of the model; classes: "
                f"{_shown(list(names))}."
            )
        ids.append(index[label])
    return _with_labels(dataset, ids, ClassLabel(names=[str(n) for n in names]))


__all__ = [
    "canonical_label",
    "check_splits",
    "class_indices_labels",
    "encode_with_classes",
    "is_class_label",
    "is_integer_label",
    "label_sort_key",
    "resolve_labels",
]


def _with_labels(dataset: Dataset, ids: list[int], feature: ClassLabel) -> Dataset:
    """`dataset` with its label column replaced by `ids` typed as `feature`, columns in their order (no `cast`, which
    rewrites every column behind a progress bar)."""
    order = dataset.column_names
    return dataset.remove_columns(LABEL_COLUMN).add_column(LABEL_COLUMN, ids, feature=feature).select_columns(order)
