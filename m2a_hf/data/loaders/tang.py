"""The Tang et al. (2015) IMDB / Yelp-2013 / Yelp-2014 ``.ss`` files: ratings with user and product attributes."""

from __future__ import annotations

import os
import re
from pathlib import Path

from datasets import DatasetDict

from m2a_hf.data.columns import SPLITS, append_row, build_dataset_dict, empty_columns, parse_label
from m2a_hf.data.io import iter_lines
from m2a_hf.data.paths import find_dataset_files


TANG_SENTENCE_SEPARATOR = "<sssss>"
"""The token the Tang et al. (2015) `.ss` files put between sentences (a format marker, not review text)."""
_SENTENCE_SEPARATOR = re.compile(rf"\s*{re.escape(TANG_SENTENCE_SEPARATOR)}\s*")
TANG_DATASETS: dict[str, str] = {
    "yelp-2013": "yelp-2013-seg-20-20.{split}.ss",
    "yelp-2014": "yelp-2014-seg-20-20.{split}.ss",
    "imdb": "imdb.{split}.txt.ss",
}
"""The named Tang datasets -> their file names (as distributed) in ``<data_dir>/<name>/``; ``{split}`` is ``train``,
``dev`` or ``test``, and a ``.gz`` of each file is read too."""
_TANG_SPLITS = ("train", "dev", "test")


def load_tang_ss(
    train_path: str | os.PathLike[str],
    dev_path: str | os.PathLike[str],
    test_path: str | os.PathLike[str],
) -> DatasetDict:
    """Loads the Tang et al. (2015) IMDB / Yelp-2013 / Yelp-2014 ``.ss`` files.

    Each line is ``user\\t\\tproduct\\t\\trating\\t\\ttext`` with `TANG_SENTENCE_SEPARATOR` between sentences, which is replaced
    by a single space (no other cleaning). label = ``rating - 1`` (ratings 1..10 are accepted: 1..5 for Yelp,
    1..10 for IMDB); attributes ``user`` and ``product``; ``id`` is ``<split>:<line>``. Files may be gzip-compressed.
    Lines are decoded as UTF-8 with a cp1252/latin-1 fallback.

    Args:
        train_path: The train file (e.g. ``yelp-2013-seg-20-20.train.ss``).
        dev_path: The dev file (becomes ``validation``).
        test_path: The test file.

    Returns:
        A DatasetDict with ``train``/``validation``/``test``.

    Raises:
        FileNotFoundError: If a file is missing.
        ValueError: On a line with fewer than four ``\\t\\t``-separated fields or a rating outside 1..10.
    """
    splits = {}
    for split, path in zip(SPLITS, (train_path, dev_path, test_path), strict=True):
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"Tang .ss {split} file {str(file)!r} does not exist.")
        columns = empty_columns(["user", "product"])
        for number, line in iter_lines(file):
            fields = line.split("\t\t", 3)
            if len(fields) != 4:
                raise ValueError(
                    f"{file}: line {number} has {len(fields)} field(s); expected 'user\\t\\tproduct\\t\\trating\\t\\ttext'."
                )
            user, product, rating, text = fields
            label = parse_label(rating, low=1, high=10, where=f"{file}: line {number}") - 1
            text = _SENTENCE_SEPARATOR.sub(" ", text).strip()
            append_row(columns, f"{split}:{number}", text, label, {"user": user, "product": product})
        splits[split] = columns
    return build_dataset_dict(splits, ["user", "product"], "Tang .ss")


def load_tang_dataset(name: str, path: str | os.PathLike[str] | None = None) -> DatasetDict:
    """Loads a named Tang et al. (2015) dataset (``yelp-2013``, ``yelp-2014``, ``imdb``) from the data dir.

    Data-dir layout (the files as distributed, each optionally ``.gz``)::

        <data_dir>/yelp-2013/yelp-2013-seg-20-20.{train,dev,test}.ss
        <data_dir>/yelp-2014/yelp-2014-seg-20-20.{train,dev,test}.ss
        <data_dir>/imdb/imdb.{train,dev,test}.txt.ss

    The three files are read by :func:`load_tang_ss` (dev becomes ``validation``).

    Args:
        name: A key of :data:`TANG_DATASETS`.
        path: The data dir, or the dataset's own folder; ``None`` uses :func:`resolve_data_dir`.

    Returns:
        A DatasetDict with ``train``/``validation``/``test``.

    Raises:
        ValueError: On an unknown name.
        FileNotFoundError: If a file is missing, naming the paths tried and the expected layout.
    """
    if name not in TANG_DATASETS:
        raise ValueError(f"unknown Tang dataset {name!r}; expected one of {list(TANG_DATASETS)}.")
    pattern = TANG_DATASETS[name]
    files = find_dataset_files(
        path,
        name,
        {split: (pattern.format(split=split), pattern.format(split=split) + ".gz") for split in _TANG_SPLITS},
        f"Tang {name} files",
        f"<data_dir>/{name}/{pattern.format(split='{' + ','.join(_TANG_SPLITS) + '}')} (optionally .gz)",
    )
    return load_tang_ss(*(files[split] for split in _TANG_SPLITS))


__all__ = ["TANG_DATASETS", "TANG_SENTENCE_SEPARATOR", "load_tang_dataset", "load_tang_ss"]
