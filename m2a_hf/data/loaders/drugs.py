"""The UCI Drugs.com reviews: ratings 1..10 with drug and condition attributes."""

from __future__ import annotations

import html
import logging
import os
from pathlib import Path

import pandas as pd
from datasets import DatasetDict

from m2a_hf.data.columns import Columns, append_row, build_dataset_dict, empty_columns, parse_label
from m2a_hf.data.paths import find_dataset_files
from m2a_hf.data.splits import complete_splits


logger = logging.getLogger(__name__)


DRUGS_COM_DIR = "drugs-com"
"""The folder of the data dir holding the UCI files (the named dataset ``drugs-com``)."""
DRUGS_COM_FILES: dict[str, str] = {"train": "drugsComTrain_raw.tsv", "test": "drugsComTest_raw.tsv"}
"""The file names of the UCI Drug Review Dataset (Drugs.com), as unzipped; a ``.gz`` of each is read too."""
_DRUGS_COLUMNS = ("drugName", "condition", "review", "rating")


def _read_drugs_file(file: Path) -> Columns:
    """Reads one Drugs.com TSV into the loaders' table (rows with an empty review dropped)."""
    frame = pd.read_csv(file, sep="\t", dtype=str, keep_default_na=False, compression="infer", encoding="utf-8")
    missing = [column for column in _DRUGS_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"{file}: missing column(s) {missing}; the file has {list(frame.columns)}.")
    first = str(frame.columns[0])
    if "uniqueID" in frame.columns:
        ids = frame["uniqueID"].tolist()
    elif first == "" or first.startswith("Unnamed"):
        ids = frame[first].tolist()
    else:
        ids = [str(i) for i in range(len(frame))]
    columns = empty_columns(["drug", "condition"])
    dropped = 0
    rows = zip(ids, frame["drugName"], frame["condition"], frame["review"], frame["rating"], strict=True)
    for record, (row_id, drug, condition, review, rating) in enumerate(rows):
        text = html.unescape(review).strip()
        if len(text) >= 2 and text[0] == text[-1] == '"':  # the UCI files wrap every review in literal quotes
            text = text[1:-1].strip()
        if not text:
            dropped += 1
            continue
        where = f"{file.name}: record {record} (uniqueID {row_id})"
        label = parse_label(rating, low=1, high=10, where=where) - 1
        append_row(
            columns, str(row_id), text, label, {"drug": html.unescape(drug), "condition": html.unescape(condition)}
        )
    if dropped:
        logger.info("%s: dropped %d of %d rows with an empty review.", file.name, dropped, len(frame))
    return columns


def load_drugs_com(
    train_path: str | os.PathLike[str] | None = None,
    test_path: str | os.PathLike[str] | None = None,
    *,
    seed: int = 42,
) -> DatasetDict:
    """Loads the UCI Drugs.com reviews (``drugsComTrain_raw.tsv`` / ``drugsComTest_raw.tsv``).

    TSV with the columns ``uniqueID`` (often an unnamed first column), ``drugName``, ``condition``, ``review``,
    ``rating`` (1..10), ``date``, ``usefulCount``; quoted fields may span lines. Reviews and attribute values are
    HTML-unescaped (``&#039;`` -> ``'``) and the literal quotes that wrap every review are removed. label =
    ``rating - 1`` (10 classes); attributes ``drug`` and ``condition``; ``id`` is the uniqueID. Rows with an empty
    review are dropped (logged).

    Splits: with a test file, test is that file and validation is a seeded 10% of the train file
    (:func:`split_indices` with fractions 0.9/0.1/0); with a train file only, it is split 80/10/10.

    Data-dir layout (the named dataset ``drugs-com``; ``train_path`` a folder or ``None``), both files required::

        <data_dir>/drugs-com/drugsComTrain_raw.tsv   (or .tsv.gz)
        <data_dir>/drugs-com/drugsComTest_raw.tsv    (or .tsv.gz)

    Args:
        train_path: The train TSV (optionally gzip); or the data dir / ``drugs-com`` folder holding both files;
            ``None`` uses :func:`resolve_data_dir`.
        test_path: The test TSV, if any (only with a train file).
        seed: Seed of the split.

    Returns:
        A DatasetDict with ``train``/``validation``/``test``.

    Raises:
        FileNotFoundError: If a file is missing (for a folder: naming the paths tried and the expected layout).
        ValueError: On a missing column, a rating that is not an integer 1..10, or ``test_path`` with a folder.
    """
    if train_path is None or Path(train_path).is_dir():
        if test_path is not None:
            raise ValueError(
                f"test_path ({str(test_path)!r}) needs train_path to be the train file, not a folder ({train_path!r})."
            )
        files = find_dataset_files(
            train_path,
            DRUGS_COM_DIR,
            {split: (name, name + ".gz") for split, name in DRUGS_COM_FILES.items()},
            "Drugs.com files",
            f"<data_dir>/{DRUGS_COM_DIR}/{{{','.join(DRUGS_COM_FILES.values())}}} (optionally .gz)",
        )
        train_path, test_path = files["train"], files["test"]
    parts = {}
    for split, path in (("train", train_path), ("test", test_path)):
        if path is None:
            continue
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"Drugs.com {split} file {str(file)!r} does not exist.")
        parts[split] = _read_drugs_file(file)
    splits = complete_splits(parts, seed=seed, source="Drugs.com")
    return build_dataset_dict(splits, ["drug", "condition"], "Drugs.com")


__all__ = ["DRUGS_COM_DIR", "DRUGS_COM_FILES", "load_drugs_com"]
