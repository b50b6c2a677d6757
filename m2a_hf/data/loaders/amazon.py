"""Amazon review files (McAuley 5-core sets): ratings with user and item attributes, JSON lines or CSV export."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from datasets import DatasetDict

from m2a_hf.data.columns import append_row, build_dataset_dict, empty_columns, join_text, parse_label
from m2a_hf.data.io import decode_line, iter_json_lines, read_bytes
from m2a_hf.data.paths import find_file
from m2a_hf.data.splits import split_columns


logger = logging.getLogger(__name__)


AMAZON_MI_DIR = "amazon-musical-instruments"
"""The folder of the data dir holding the Musical Instruments 5-core file (the named dataset ``amazon-mi``)."""
AMAZON_MI_FILES = (
    "Musical_instruments_reviews.csv.gz",
    "Musical_instruments_reviews.csv",
    "reviews_Musical_Instruments_5.json.gz",
    "reviews_Musical_Instruments_5.json",
)
"""File names tried in :data:`AMAZON_MI_DIR`, in order."""
_AMAZON_CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz")


def _iter_amazon_records(file: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """Yields ``(file line of the record, record)`` of an Amazon review file: CSV export or (loose) JSON lines."""
    name = file.name.lower()
    if not name.endswith(_AMAZON_CSV_SUFFIXES):
        yield from iter_json_lines(file)
        return
    text = decode_line(read_bytes(file))
    sep = "\t" if ".tsv" in name else ","
    frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False)
    missing = [c for c in ("reviewerID", "asin", "overall") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{file}: missing column(s) {missing}; expected the Amazon fields reviewerID, asin, overall, reviewText, "
            f"summary (found {list(frame.columns)})."
        )
    for row, record in enumerate(frame.to_dict("records")):
        yield row + 2, record  # the header is line 1; the export has no field spanning lines


def load_amazon_reviews(path: str | os.PathLike[str] | None = None, *, seed: int = 42) -> DatasetDict:
    """Loads an Amazon review file (a McAuley 5-core set): JSON lines or its CSV export, optionally gzip-compressed.

    Fields used: ``reviewerID`` -> attribute ``user``, ``asin`` -> attribute ``item``, ``overall`` (1..5, ``"5.0"``
    accepted) -> label ``overall - 1``, text = ``summary + ". " + reviewText`` (just the one present when the other is
    missing or empty). Rows with neither text are dropped (the number is logged); ``id`` is the file line. Split:
    :func:`split_indices` over the kept rows in file order (seeded 80/10/10).

    Args:
        path: A ``.json`` / ``.jsonl`` / ``.csv`` file (optionally ``.gz``), or a data dir holding
            ``amazon-musical-instruments/`` (the named dataset ``amazon-mi``). ``None`` uses :func:`resolve_data_dir`.
        seed: Seed of the split.

    Returns:
        A DatasetDict with ``train``/``validation``/``test``.

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: On a record that is not a JSON object, a CSV without the Amazon columns, or an ``overall`` that
            is not an integer 1..5.
    """
    if path is not None and not Path(path).exists():
        raise FileNotFoundError(f"Amazon reviews file {str(path)!r} does not exist.")
    file = find_file(path, AMAZON_MI_DIR, AMAZON_MI_FILES, "Amazon reviews file")
    columns = empty_columns(["user", "item"])
    dropped = total = 0
    for number, record in _iter_amazon_records(file):
        total += 1
        text = join_text(record.get("summary"), record.get("reviewText"))
        if not text:
            dropped += 1
            continue
        label = parse_label(record.get("overall"), low=1, high=5, where=f"{file}: line {number}", what="overall") - 1
        append_row(columns, str(number), text, label, {"user": record.get("reviewerID"), "item": record.get("asin")})
    if dropped:
        logger.info("%s: dropped %d of %d reviews with no summary and no reviewText.", file.name, dropped, total)
    return build_dataset_dict(split_columns(columns, seed=seed), ["user", "item"], f"Amazon reviews {file.name}")


__all__ = ["AMAZON_MI_DIR", "AMAZON_MI_FILES", "load_amazon_reviews"]
