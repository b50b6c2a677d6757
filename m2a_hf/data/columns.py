"""The table every loader builds: columns ``id``, ``text``, ``label`` and one string column per attribute."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from datasets import Dataset, DatasetDict, Features, Value

from m2a_hf.values import normalize_attribute_value, to_integer


logger = logging.getLogger(__name__)


Columns = dict[str, list[Any]]
"""A table held as ``{column name: list of values}``."""

SPLITS: tuple[str, str, str] = ("train", "validation", "test")
"""The split names of every :class:`~datasets.DatasetDict` returned by the loaders."""


def parse_label(value: Any, *, low: int, high: int | None, where: str, what: str = "rating") -> int:
    """Parses an integral label in ``[low, high]`` and raises a ValueError naming ``where`` otherwise."""
    expected = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"
    number = to_integer(value)
    if number is None:
        raise ValueError(f"{where}: {what} {value!r} is not an integer; expected {expected}.")
    if number < low or (high is not None and number > high):
        raise ValueError(f"{where}: {what} {value!r} is out of range; expected {expected}.")
    return number


def join_text(*parts: Any, separator: str = ". ") -> str:
    """Joins the non-empty parts with ``separator`` (``". "``: title + body); missing parts are skipped."""
    pieces = []
    for part in parts:
        if part is None or (isinstance(part, float) and math.isnan(part)):
            continue
        text = str(part).strip()
        if text:
            pieces.append(text)
    return separator.join(pieces)


def empty_columns(attribute_names: Sequence[str]) -> Columns:
    """The empty table of a loader: ``id``, ``text``, ``label`` and one column per attribute."""
    return {"id": [], "text": [], "label": [], **{name: [] for name in attribute_names}}


def append_row(columns: Columns, row_id: str, text: str, label: int, attributes: Mapping[str, Any]) -> None:
    """Appends one row; attribute values are normalised by :func:`~m2a_hf.values.normalize_attribute_value`."""
    columns["id"].append(row_id)
    columns["text"].append(text)
    columns["label"].append(label)
    for name, value in attributes.items():
        columns[name].append(normalize_attribute_value(value))


def take_rows(columns: Columns, indices: Iterable[int]) -> Columns:
    """The rows at ``indices``, in that order."""
    indices = list(indices)
    return {name: [values[i] for i in indices] for name, values in columns.items()}


def num_rows(columns: Columns) -> int:
    """Number of rows of a table."""
    return len(next(iter(columns.values()))) if columns else 0


def to_dataset(columns: Columns, attribute_names: Sequence[str], label_dtype: str = "int64") -> Dataset:
    """A Dataset with the loaders' column types (``label`` int64, or ``label_dtype``; everything else string)."""
    features = Features(
        {
            "id": Value("string"),
            "text": Value("string"),
            "label": Value(label_dtype),
            **{name: Value("string") for name in attribute_names},
        }
    )
    return Dataset.from_dict({name: columns[name] for name in features}, features=features)


def build_dataset_dict(
    splits: Mapping[str, Columns], attribute_names: Sequence[str], source: str, label_dtype: str = "int64"
) -> DatasetDict:
    """Builds the loaders' DatasetDict (fixed split order and column types) and logs the split sizes."""
    result = DatasetDict({split: to_dataset(splits[split], attribute_names, label_dtype) for split in SPLITS})
    sizes = ", ".join(f"{split}={result[split].num_rows}" for split in SPLITS)
    logger.info("Loaded %s: %s; attributes %s.", source, sizes, list(attribute_names))
    return result


__all__ = [
    "SPLITS",
    "Columns",
    "append_row",
    "build_dataset_dict",
    "empty_columns",
    "join_text",
    "num_rows",
    "parse_label",
    "take_rows",
    "to_dataset",
]
