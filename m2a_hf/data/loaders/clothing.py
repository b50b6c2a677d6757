"""The Women's E-Commerce Clothing Reviews (Kaggle): ratings with item, department, class and age attributes."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from datasets import DatasetDict

from m2a_hf.data.columns import append_row, build_dataset_dict, empty_columns, join_text, parse_label
from m2a_hf.data.paths import find_file
from m2a_hf.data.splits import split_columns
from m2a_hf.values import check_attribute_names, to_integer


logger = logging.getLogger(__name__)


CLOTHING_ATTRIBUTES: dict[str, str] = {
    "item": "Clothing ID",
    "department": "Department Name",
    "class": "Class Name",
    "division": "Division Name",
    "age": "Age",
}
"""Attribute name -> CSV column of the Women's E-Commerce Clothing Reviews file."""

CLOTHING_FILE = "Womens Clothing E-Commerce Reviews.csv"
"""The file name in the Kaggle download (a ``.gz`` of it is read too)."""
CLOTHING_DIR = "womens-clothing-reviews"
"""The folder of the data dir holding :data:`CLOTHING_FILE`."""

_AGE_BUCKETS: tuple[tuple[int, str], ...] = ((25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54"), (65, "55-64"))


def _age_bucket(value: Any) -> str | None:
    age = to_integer(value)
    if age is None:
        return None
    if age < 18:
        return "<18"
    for upper, bucket in _AGE_BUCKETS:
        if age < upper:
            return bucket
    return "65+"


def load_clothing_reviews(
    path: str | os.PathLike[str] | None = None,
    *,
    attributes: Sequence[str] = ("item", "department", "class", "age"),
    seed: int = 42,
) -> DatasetDict:
    """Loads the Women's E-Commerce Clothing Reviews (Kaggle, 23,486 reviews, 5 rating classes).

    * text: ``Title`` and ``Review Text`` joined with ``". "`` (just the one that is present when the other is
      empty); rows where both are empty are dropped (844 in the staged file; the number is logged). The text is
      otherwise as in the file (its few HTML entities and ``\\r\\n`` inside reviews are kept);
    * label: ``Rating - 1`` (0..4);
    * attributes, chosen by ``attributes`` (in that order): ``item`` = Clothing ID, ``department`` = Department Name,
      ``class`` = Class Name, ``division`` = Division Name, ``age`` = an age bucket ``"18-24"``, ``"25-34"``,
      ``"35-44"``, ``"45-54"``, ``"55-64"``, ``"65+"`` (``"<18"`` would be used below 18; the file has none);
    * ``id``: the first, unnamed column (the row index 0..23485).

    Split recipe (no official split exists): the kept rows are ordered by ascending row index, then
    :func:`split_indices` with ``seed`` and fractions 0.8/0.1/0.1, i.e. ``numpy.random.default_rng(seed)
    .permutation(n)``, the first ``round(0.8 n)`` positions are train, the next ``round(0.9 n) - round(0.8 n)``
    validation and the rest test; each split is in row-index order. With ``seed=42``: 18,114 / 2,264 / 2,264 rows.

    Args:
        path: The ``.csv``/``.csv.gz`` file, the folder holding it, or the data dir holding
            ``womens-clothing-reviews/``. ``None`` uses :func:`resolve_data_dir`.
        attributes: Attribute names to produce (any of ``item``, ``department``, ``class``, ``division``, ``age``).
        seed: Seed of the split.

    Returns:
        A DatasetDict with ``train``/``validation``/``test`` and the columns ``id``, ``text``, ``label`` and one per
        attribute.

    Raises:
        FileNotFoundError: If the file cannot be found.
        ValueError: On an unknown attribute name, a missing column, or a rating that is not an integer 1..5.
    """
    attribute_names = check_attribute_names(attributes)
    unknown = [name for name in attribute_names if name not in CLOTHING_ATTRIBUTES]
    if unknown:
        raise ValueError(f"unknown clothing attribute(s) {unknown}; expected any of {list(CLOTHING_ATTRIBUTES)}.")
    file = find_file(path, CLOTHING_DIR, (CLOTHING_FILE + ".gz", CLOTHING_FILE), "Clothing reviews CSV")
    frame = pd.read_csv(file, dtype=str, keep_default_na=False, compression="infer", encoding="utf-8")
    required = ["Title", "Review Text", "Rating", *(CLOTHING_ATTRIBUTES[name] for name in attribute_names)]
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise ValueError(f"{file}: missing column(s) {missing}; the file has {list(frame.columns)}.")
    id_column = frame.columns[0]
    row_ids = [to_integer(value) for value in frame[id_column]]
    if any(row_id is None for row_id in row_ids):
        bad = next(i for i, row_id in enumerate(row_ids) if row_id is None)
        raise ValueError(f"{file}: record {bad}: row index {frame[id_column].iloc[bad]!r} is not an integer.")
    order = np.argsort(np.asarray(row_ids, dtype=np.int64), kind="stable")

    columns = empty_columns(attribute_names)
    dropped = 0
    titles, bodies, ratings = frame["Title"].tolist(), frame["Review Text"].tolist(), frame["Rating"].tolist()
    attribute_values = {name: frame[CLOTHING_ATTRIBUTES[name]].tolist() for name in attribute_names}
    for position in order:
        text = join_text(titles[position], bodies[position])
        row_id = row_ids[position]
        if not text:
            dropped += 1
            continue
        label = parse_label(ratings[position], low=1, high=5, where=f"{file.name}: row {row_id}") - 1
        values = {}
        for name in attribute_names:
            raw = attribute_values[name][position]
            values[name] = _age_bucket(raw) if name == "age" else raw
        append_row(columns, str(row_id), text, label, values)
    logger.info(
        "%s: dropped %d of %d rows whose Title and Review Text are both empty.", file.name, dropped, len(frame)
    )
    return build_dataset_dict(split_columns(columns, seed=seed), attribute_names, "clothing reviews")


__all__ = ["CLOTHING_ATTRIBUTES", "CLOTHING_DIR", "CLOTHING_FILE", "load_clothing_reviews"]
