"""Any table (CSV / TSV / JSON / JSON lines / Parquet, DataFrame, Dataset, DatasetDict) as a loader's DatasetDict."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from datasets import ClassLabel, Dataset, DatasetDict

from m2a_hf.data.columns import (
    SPLITS,
    Columns,
    append_row,
    build_dataset_dict,
    empty_columns,
    join_text,
    num_rows,
    parse_label,
)
from m2a_hf.data.io import columns_from_frame, read_table_with_lines
from m2a_hf.data.splits import complete_splits, split_columns
from m2a_hf.labels import canonical_label
from m2a_hf.values import check_attribute_names, normalize_attribute_value, to_integer


logger = logging.getLogger(__name__)


_SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
}


def _canonical_split(name: Any) -> str | None:
    """``train``, ``validation`` or ``test`` for a split name or alias (case-insensitive), else ``None``."""
    return _SPLIT_ALIASES.get(str(name).strip().lower())


def _label_converter(
    label_offset: int,
    label_map: Sequence[Any] | Mapping[Any, int] | None,
    num_labels: int | None,
    raw_labels: bool = False,
) -> Callable[[Any, str], Any]:
    """A function ``(value, where) -> class index`` (or, with ``raw_labels``, the label string) for
    :func:`load_table`'s label options."""
    if raw_labels:
        if label_map is not None or label_offset != 0 or num_labels is not None:
            raise ValueError("raw_labels keeps the label values: give no label_offset, label_map or num_labels.")

        def keep(value: Any, where: str) -> str:
            label = canonical_label(value)
            if label is None:
                raise ValueError(f"{where}: the label is missing ({value!r}).")
            return label

        return keep
    if label_map is None:
        if isinstance(label_offset, bool) or not isinstance(label_offset, int):
            raise ValueError(f"label_offset must be an integer, got {label_offset!r}.")
        high = None if num_labels is None else label_offset + num_labels - 1

        def convert(value: Any, where: str) -> int:
            return parse_label(value, low=label_offset, high=high, where=where, what="label") - label_offset

        return convert
    if label_offset != 0:
        raise ValueError(f"give either label_offset ({label_offset!r}) or label_map, not both.")
    if isinstance(label_map, Mapping):
        mapping = {}
        for key, index in label_map.items():
            if to_integer(index) is None or to_integer(index) < 0:
                raise ValueError(f"label_map[{key!r}] = {index!r}; expected a non-negative integer class index.")
            mapping[normalize_attribute_value(key)] = to_integer(index)
    elif isinstance(label_map, Sequence) and not isinstance(label_map, str):
        mapping = {normalize_attribute_value(key): index for index, key in enumerate(label_map)}
    else:
        raise ValueError(f"label_map must be a list of label values or a mapping value -> index, got {label_map!r}.")
    if num_labels is not None and any(index >= num_labels for index in mapping.values()):
        raise ValueError(f"label_map {label_map!r} has indices >= num_labels ({num_labels}).")
    known = list(mapping)

    def convert_mapped(value: Any, where: str) -> int:
        key = normalize_attribute_value(value)
        if key not in mapping:
            shown = known if len(known) <= 20 else [*known[:20], "..."]
            raise ValueError(f"{where}: label {value!r} is not in label_map; expected one of {shown}.")
        return mapping[key]

    return convert_mapped


def _dataset_columns(dataset: Dataset, label_column: str, label_names: bool) -> Columns:
    """A Dataset's columns; with `label_names` a `ClassLabel` label column is read through its names (`"neg"`, not
    `0`; a negative index, datasets' "no label", as missing)."""
    table = dataset.to_dict()
    feature = dataset.features.get(label_column)
    if label_names and isinstance(feature, ClassLabel):
        table[label_column] = [
            None if value is None or value < 0 else feature.int2str(value) for value in table[label_column]
        ]
    return table


def load_table(
    source: str | os.PathLike[str] | Dataset | DatasetDict | pd.DataFrame | Mapping[str, str | os.PathLike[str]],
    *,
    text_column: str | Sequence[str],
    label_column: str,
    attribute_columns: Sequence[str] | Mapping[str, str] = (),
    label_offset: int = 0,
    label_map: Sequence[Any] | Mapping[Any, int] | None = None,
    num_labels: int | None = None,
    split_column: str | None = None,
    id_column: str | None = None,
    seed: int = 42,
    skip_bad_rows: bool = False,
    raw_labels: bool = False,
    text_separator: str = ". ",
) -> DatasetDict:
    """Loads any table (CSV / TSV / JSON / JSON lines / Parquet file, DataFrame, Dataset or DatasetDict), or one file
    per split (a mapping ``{"train": path, "validation": path, "test": path}``, as ``--train_file`` & co.).

    Splits, in order of preference: the values of ``split_column`` (``train``, ``validation``/``dev``/``valid``/
    ``val``, ``test``, case-insensitive; unknown values are an error naming them), for the rows of every part of the
    source; else the splits of a DatasetDict or of the file mapping (same names; other split names are ignored with
    a warning); else the seeded 80/10/10 of :func:`split_indices` over the rows in source order. A missing
    validation (or test) split is carved as a seeded 10% of train; without a train split (data to evaluate only)
    the missing splits stay empty.

    Labels: ``label = value - label_offset`` (integral values, checked against ``num_labels`` when given), or, with
    ``label_map``, the value's position in a list / its value in a mapping (keys compared after
    :func:`normalize_attribute_value`). With ``raw_labels`` the labels stay strings (:func:`canonical_label`:
    ``5.0`` -> ``"5"``, ``"neg"``) for the caller to map to classes (:func:`m2a_hf.labels.resolve_labels`, what
    ``m2a-hf train`` does with a table file). Rows with an empty text are dropped (logged).

    Args:
        source: A file path (format from the suffix, optional ``.gz`` for the text formats), a DataFrame, a Dataset,
            a DatasetDict, or a mapping split name -> file path. With ``raw_labels`` a `ClassLabel` label column is
            read as its names (else as its class indices).
        text_column: The text column, or several joined with ``text_separator`` (e.g. ``["summary", "reviewText"]``).
        label_column: The label column.
        attribute_columns: Attribute columns; a mapping renames them (``{"user": "reviewerID"}``).
        label_offset: Subtracted from integral labels (1 for 1..5 ratings).
        label_map: Alternative to ``label_offset``: a list of label values (index = class) or a value -> class map.
        num_labels: Number of classes; labels outside ``0..num_labels-1`` raise.
        split_column: Column holding each row's split name.
        id_column: Column to use as ``id``; default ``<split>:<row number>``.
        seed: Seed of the split.
        skip_bad_rows: For a CSV / TSV file: skip rows with too few or too many fields, or a quote left open
            (logged: how many, and their first lines), instead of raising; see :func:`read_table_file`.
        raw_labels: Keep each label as its canonical string (a ``string`` column) instead of a class index.
        text_separator: What joins several text columns (``". "``; ``m2a-hf``'s ``--text_column_names`` uses
            ``" "``, as transformers' ``run_classification.py``).

    Returns:
        A DatasetDict with ``train``/``validation``/``test``.

    Raises:
        ValueError: On a missing column (the available ones are listed), an unknown split value, a bad label, or a
            bad row or empty file (naming the file and its 1-based line).
    """
    if isinstance(attribute_columns, Mapping):
        renames = {str(name): str(column) for name, column in attribute_columns.items()}
    else:
        names = [attribute_columns] if isinstance(attribute_columns, str) else list(attribute_columns)
        renames = {str(name): str(name) for name in names}
    attribute_names = check_attribute_names(list(renames))
    text_columns = [text_column] if isinstance(text_column, str) else list(text_column)
    if not text_columns:
        raise ValueError("text_column must name at least one column.")
    convert = _label_converter(label_offset, label_map, num_labels, raw_labels)

    # the file line of each row of a CSV / TSV / JSON-lines file, per part (None: the one table), for messages
    part_lines: dict[str | None, list[int] | None] = {}
    part_names: dict[str | None, str] = {}  # the file each split was read from
    raw_parts: dict[str | None, Columns] = {}
    if isinstance(source, DatasetDict | Mapping):
        description = "DatasetDict" if isinstance(source, DatasetDict) else "data files"
        for name, part in source.items():
            split = _canonical_split(name)
            if split is None:
                logger.warning("load_table: ignoring split %r (not train/validation/dev/test).", name)
                continue
            if split in raw_parts:
                raise ValueError(f"{description}: two splits that both mean {split!r}: {list(source)}.")
            if isinstance(part, Dataset):
                raw_parts[split] = _dataset_columns(part, label_column, label_names=raw_labels)
            else:
                raw_parts[split], part_lines[split] = _read_file(part, skip_bad_rows)
                part_names[split] = Path(part).name
    else:
        if isinstance(source, Dataset):
            table, description = _dataset_columns(source, label_column, label_names=raw_labels), "Dataset"
        elif isinstance(source, pd.DataFrame):
            table, description = columns_from_frame(source), "DataFrame"
        else:
            (table, part_lines[None]), description = _read_file(source, skip_bad_rows), Path(source).name
        raw_parts = {None: table}

    def place(split: str | None, row: int) -> str:
        lines = part_lines.get(split)
        return f"line {lines[row]}" if lines is not None else f"row {row}"

    def part_name(split: str | None) -> str:
        """The file a part was read from, else what the source is (and which of its splits)."""
        return part_names.get(split) or (description if split is None else f"{description} split {split!r}")

    needed = [*text_columns, label_column, *renames.values()]
    if split_column is not None:
        needed.append(split_column)
    if id_column is not None:
        needed.append(id_column)
    for split, table in raw_parts.items():
        missing = [column for column in dict.fromkeys(needed) if column not in table]
        if missing:
            raise ValueError(f"{part_name(split)}: missing column(s) {missing}; available columns: {list(table)}.")

    parts: dict[str, Columns] = {}
    dropped = total = 0
    for split, table in raw_parts.items():
        n = num_rows(table)
        targets: list[str | None]
        if split_column is not None:
            targets = [_canonical_split(value) for value in table[split_column]]
            unknown = [row for row, target in enumerate(targets) if target is None]
            if unknown:
                values = list(dict.fromkeys(str(table[split_column][row]) for row in unknown))
                first = unknown[0]
                raise ValueError(
                    f"{part_name(split)}: {place(split, first)}: {split_column} = {table[split_column][first]!r}; the "
                    f"split column {split_column!r} has unknown value(s) {values[:20]} in {len(unknown)} row(s); "
                    f"expected one of {sorted(_SPLIT_ALIASES)} (case-insensitive)."
                )
        else:
            targets = [split or "train"] * n
        for row in range(n):
            total += 1
            text = join_text(*(table[column][row] for column in text_columns), separator=text_separator)
            if not text:
                dropped += 1
                continue
            target = targets[row]
            where = f"{part_name(split)}: " + (place(split, row) if split in part_lines else f"row {row}")
            label = convert(table[label_column][row], where)
            row_id = str(table[id_column][row]) if id_column is not None else f"{split or 'row'}:{row}"
            columns = parts.setdefault(target, empty_columns(attribute_names))
            append_row(columns, row_id, text, label, {name: table[col][row] for name, col in renames.items()})
    if dropped:
        logger.info("%s: dropped %d of %d rows with an empty text.", description, dropped, total)
    if not parts:
        raise ValueError(f"{description}: no rows with a non-empty text.")
    if split_column is None and None in raw_parts:
        splits = split_columns(parts["train"], seed=seed)
    elif "train" not in parts:  # data to evaluate or predict on only: nothing to carve the other splits from
        logger.warning("%s: no training split; the missing split(s) stay empty.", description)
        splits = {split: parts.get(split, empty_columns(attribute_names)) for split in SPLITS}
    else:
        splits = complete_splits(parts, seed=seed, source=description)
    return build_dataset_dict(splits, attribute_names, description, "string" if raw_labels else "int64")


def _read_file(path: str | os.PathLike[str], skip_bad_rows: bool) -> tuple[Columns, list[int] | None]:
    """A table file's columns and the file line of each row (:func:`read_table_with_lines`)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"table file {str(file)!r} does not exist.")
    return read_table_with_lines(file, skip_bad_rows=skip_bad_rows)


__all__ = ["load_table"]
