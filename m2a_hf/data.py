"""Data for M2A: loaders, attribute vocabularies, head+tail tokenisation and the batch collator.

Everything between a file on disk and a batch for the model lives here:

* **Loaders** turn each supported format into a :class:`datasets.DatasetDict` with the splits ``train``,
  ``validation`` and ``test`` and the columns

  ==============  ==========  ====================================================================
  column          type        meaning
  ==============  ==========  ====================================================================
  ``id``          ``str``     where the row came from (source row id, or ``<file>:<line>``)
  ``text``        ``str``     the document
  ``label``       ``int``     0-based class (``rating - 1`` for review ratings)
  one per attr.   ``str``     the attribute value, ``None`` when missing
  ==============  ==========  ====================================================================

  Attribute values are normalised by :func:`normalize_attribute_value` (numbers are ``str()``-ed so that
  ``767``, ``767.0`` and ``"767"`` are the same value; empty strings become ``None``).
* :func:`split_indices` is the single seeded 80/10/10 split used by every loader that has no official split.
* :class:`AttributeVocab` maps attribute values to ids, built from the **training split only**; unknown values
  map to ``-1``.
* :func:`tokenize_head_tail` and :func:`prepare_dataset` tokenise with the head+tail truncation of the reference
  implementation; :class:`M2ADataCollator` pads a batch and picks the MLM targets.

Example:
    >>> from transformers import AutoTokenizer
    >>> dsd = load_fdu_mtl(domains=["books", "dvd"])  # doctest: +SKIP
    >>> vocab = AttributeVocab.build(dsd, ["domain"])  # doctest: +SKIP
    >>> tok = AutoTokenizer.from_pretrained(path)  # doctest: +SKIP
    >>> features = prepare_dataset(dsd, tok, vocab, max_length=256)  # doctest: +SKIP
    >>> batch = M2ADataCollator(tok)(list(features["train"].select(range(8))))  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import gzip
import html
import io
import json
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import torch
from datasets import Dataset, DatasetDict, Features, Value


logger = logging.getLogger(__name__)

Columns = dict[str, list[Any]]
"""A table held as ``{column name: list of values}``."""

SPLITS: tuple[str, str, str] = ("train", "validation", "test")
"""The split names of every :class:`~datasets.DatasetDict` returned by the loaders."""

SPLIT_FRACTIONS: tuple[float, float, float] = (0.8, 0.1, 0.1)
"""Default train/validation/test fractions of :func:`split_indices`."""

DATA_DIR_ENV = "M2A_DATA_DIR"
"""Environment variable naming the shared data directory (see :func:`resolve_data_dir`)."""

RESERVED_COLUMNS: frozenset[str] = frozenset(
    {"id", "text", "label", "labels", "input_ids", "attention_mask", "token_type_ids", "attribute_ids", "mlm_labels"}
)
"""Names an attribute may not take: they are the loaders' own columns or the model's inputs."""

FDU_MTL_DOMAINS: tuple[str, ...] = (
    "apparel",
    "baby",
    "books",
    "camera_photo",
    "dvd",
    "electronics",
    "health_personal_care",
    "imdb",
    "kitchen_housewares",
    "magazines",
    "MR",
    "music",
    "software",
    "sports_outdoors",
    "toys_games",
    "video",
)
"""The 16 FDU-MTL domains, in the order of the MAN code."""

CLOTHING_ATTRIBUTES: dict[str, str] = {
    "item": "Clothing ID",
    "department": "Department Name",
    "class": "Class Name",
    "division": "Division Name",
    "age": "Age",
}
"""Attribute name -> CSV column of the Women's E-Commerce Clothing Reviews file."""

CLOTHING_FILE = "Womens Clothing E-Commerce Reviews.csv"
CLOTHING_DIR = "womens-clothing-reviews"
FDU_MTL_DIR = "fdu-mtl"

_AGE_BUCKETS: tuple[tuple[int, str], ...] = ((25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54"), (65, "55-64"))
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
TANG_SENTENCE_SEPARATOR = "<sssss>"
"""The token the Tang et al. (2015) `.ss` files put between sentences (a format marker, not review text)."""
_SENTENCE_SEPARATOR = re.compile(rf"\s*{re.escape(TANG_SENTENCE_SEPARATOR)}\s*")


# ----------------------------------------------------------------------------------------------------------------
# Small shared helpers
# ----------------------------------------------------------------------------------------------------------------


def normalize_attribute_value(value: Any) -> str | None:
    """Turns an attribute value into the string the vocabulary stores, or ``None`` for a missing value.

    ``None``, NaN and empty/blank strings are missing. Integers (and floats with an integral value, which is how
    pandas reads an integer column with gaps) become their decimal string, so ``767``, ``767.0`` and ``"767"`` all
    give ``"767"``. Other strings are stripped of surrounding whitespace; anything else is ``str()``-ed.

    Args:
        value: The raw value.

    Returns:
        The normalised string, or ``None`` when the value is missing.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return None
        if math.isfinite(value) and float(value).is_integer():
            return str(int(value))
        return repr(float(value))
    if value is pd.NA or value is pd.NaT:
        return None
    text = str(value).strip()
    return text or None


def _to_integer(value: Any) -> int | None:
    """Returns ``value`` as an int when it is an integral number (or a string of one), else ``None``."""
    if isinstance(value, bool | np.bool_) or value is None:
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return int(value) if math.isfinite(value) and float(value).is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if math.isfinite(number) and number.is_integer() else None
    return None


def _parse_label(value: Any, *, low: int, high: int | None, where: str, what: str = "rating") -> int:
    """Parses an integral label in ``[low, high]`` and raises a ValueError naming ``where`` otherwise."""
    expected = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"
    number = _to_integer(value)
    if number is None:
        raise ValueError(f"{where}: {what} {value!r} is not an integer; expected {expected}.")
    if number < low or (high is not None and number > high):
        raise ValueError(f"{where}: {what} {value!r} is out of range; expected {expected}.")
    return number


def _join_text(*parts: Any) -> str:
    """Joins the non-empty parts with ``". "`` (title + body); missing parts are skipped."""
    pieces = []
    for part in parts:
        if part is None or (isinstance(part, float) and math.isnan(part)):
            continue
        text = str(part).strip()
        if text:
            pieces.append(text)
    return ". ".join(pieces)


def _decode_line(raw: bytes) -> str:
    """Decodes one line as UTF-8, falling back to cp1252 and then latin-1 (which never fails)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _open_binary(path: Path) -> BinaryIO:
    """Opens a file for reading bytes, gunzipping it when it starts with the gzip magic number (whatever its name)."""
    with open(path, "rb") as handle:
        head = handle.read(2)
    return gzip.open(path, "rb") if head == b"\x1f\x8b" else open(path, "rb")


def _read_bytes(path: Path) -> bytes:
    """Reads a whole file (gunzipped when needed)."""
    with _open_binary(path) as handle:
        return handle.read()


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yields ``(1-based line number, decoded line)`` for every non-blank line of a text file (optionally gzip).

    The file is streamed. Lines are split on ``\\n`` only (never on the Unicode line breaks that ``str.splitlines``
    also honours, such as cp1252's ellipsis byte 0x85 read as latin-1) and each is decoded on its own with
    :func:`_decode_line`, so one stray cp1252 byte does not spoil the file.
    """
    with _open_binary(path) as handle:
        for number, raw in enumerate(handle, start=1):
            raw = raw.rstrip(b"\r\n")
            if raw.strip():
                yield number, _decode_line(raw)


def _check_attribute_names(attribute_names: Sequence[str]) -> list[str]:
    names = [attribute_names] if isinstance(attribute_names, str) else list(attribute_names)
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"attribute names must be non-empty strings, got {name!r} in {names!r}.")
        if name in RESERVED_COLUMNS:
            raise ValueError(
                f"attribute name {name!r} is reserved; pick another name (reserved: {sorted(RESERVED_COLUMNS)})."
            )
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise ValueError(f"attribute names must be unique, got {duplicates} more than once in {names!r}.")
    return names


def _empty_columns(attribute_names: Sequence[str]) -> Columns:
    return {"id": [], "text": [], "label": [], **{name: [] for name in attribute_names}}


def _append_row(columns: Columns, row_id: str, text: str, label: int, attributes: Mapping[str, Any]) -> None:
    columns["id"].append(row_id)
    columns["text"].append(text)
    columns["label"].append(label)
    for name, value in attributes.items():
        columns[name].append(normalize_attribute_value(value))


def _take(columns: Columns, indices: Iterable[int]) -> Columns:
    indices = list(indices)
    return {name: [values[i] for i in indices] for name, values in columns.items()}


def _num_rows(columns: Columns) -> int:
    return len(next(iter(columns.values()))) if columns else 0


def _to_dataset(columns: Columns, attribute_names: Sequence[str]) -> Dataset:
    features = Features(
        {
            "id": Value("string"),
            "text": Value("string"),
            "label": Value("int64"),
            **{name: Value("string") for name in attribute_names},
        }
    )
    return Dataset.from_dict({name: columns[name] for name in features}, features=features)


def _build_dataset_dict(splits: Mapping[str, Columns], attribute_names: Sequence[str], source: str) -> DatasetDict:
    """Builds the loaders' DatasetDict (fixed split order and column types) and logs the split sizes."""
    result = DatasetDict({split: _to_dataset(splits[split], attribute_names) for split in SPLITS})
    sizes = ", ".join(f"{split}={result[split].num_rows}" for split in SPLITS)
    logger.info("Loaded %s: %s; attributes %s.", source, sizes, list(attribute_names))
    return result


# ----------------------------------------------------------------------------------------------------------------
# Splitting (the one place that decides which row goes where)
# ----------------------------------------------------------------------------------------------------------------


def split_indices(
    num_rows: int, *, seed: int = 42, fractions: Sequence[float] = SPLIT_FRACTIONS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic seeded split of ``range(num_rows)`` into train / validation / test positions.

    The recipe, used by every loader of this module that has no official split:

    1. ``perm = numpy.random.default_rng(seed).permutation(num_rows)``;
    2. cut points ``b1 = floor(num_rows * f_train + 0.5)`` and ``b2 = floor(num_rows * (f_train + f_val) + 0.5)``
       (round half up);
    3. ``train = sort(perm[:b1])``, ``validation = sort(perm[b1:b2])``, ``test = sort(perm[b2:])``.

    Positions are into the rows *in source order* (file order, or ascending row id where the loader says so), and
    each split keeps that order. With the default fractions each split is within one row of 80/10/10.

    Args:
        num_rows: Number of rows to split.
        seed: Seed of ``numpy.random.default_rng``.
        fractions: Three non-negative fractions (train, validation, test) that sum to 1.

    Returns:
        Three sorted int64 arrays of positions that together cover ``range(num_rows)`` exactly once.

    Raises:
        ValueError: If ``num_rows`` is negative or ``fractions`` is not three non-negative numbers summing to 1.
    """
    if isinstance(num_rows, bool) or not isinstance(num_rows, int | np.integer) or num_rows < 0:
        raise ValueError(f"num_rows must be a non-negative integer, got {num_rows!r}.")
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or any(f < 0 or not math.isfinite(f) for f in fractions):
        raise ValueError(f"fractions must be three non-negative numbers (train, validation, test), got {fractions!r}.")
    if abs(math.fsum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must sum to 1, got {fractions!r} (sum {math.fsum(fractions)}).")
    perm = np.random.default_rng(seed).permutation(int(num_rows))
    cut1 = min(int(math.floor(num_rows * fractions[0] + 0.5)), num_rows)
    cut2 = min(int(math.floor(num_rows * math.fsum(fractions[:2]) + 0.5)), num_rows)
    return np.sort(perm[:cut1]), np.sort(perm[cut1:cut2]), np.sort(perm[cut2:])


def _split_columns(columns: Columns, *, seed: int, fractions: Sequence[float] = SPLIT_FRACTIONS) -> dict[str, Columns]:
    parts = split_indices(_num_rows(columns), seed=seed, fractions=fractions)
    return {split: _take(columns, part) for split, part in zip(SPLITS, parts, strict=True)}


def _complete_splits(parts: Mapping[str, Columns], *, seed: int, source: str) -> dict[str, Columns]:
    """Fills in missing splits with :func:`split_indices`.

    * only ``train``: 80/10/10 of it;
    * ``train`` and ``test``: validation = a seeded 10% of train (fractions 0.9/0.1/0);
    * ``train`` and ``validation``: test = a seeded 10% of train (fractions 0.9/0/0.1);
    * all three: unchanged.
    """
    if "train" not in parts:
        raise ValueError(f"{source}: no training split; found splits {sorted(parts)}.")
    if "validation" in parts and "test" in parts:
        return {split: parts[split] for split in SPLITS}
    if "validation" not in parts and "test" not in parts:
        return _split_columns(parts["train"], seed=seed)
    missing = "validation" if "validation" not in parts else "test"
    fractions = (0.9, 0.1, 0.0) if missing == "validation" else (0.9, 0.0, 0.1)
    carved = _split_columns(parts["train"], seed=seed, fractions=fractions)
    logger.info(
        "%s: no %s split; carved a seeded 10%% of train (%d rows).", source, missing, _num_rows(carved[missing])
    )
    result = dict(parts)
    result["train"] = carved["train"]
    result[missing] = carved[missing]
    return {split: result[split] for split in SPLITS}


# ----------------------------------------------------------------------------------------------------------------
# Data directory
# ----------------------------------------------------------------------------------------------------------------


def resolve_data_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """Finds the shared data directory.

    Tried in order: ``path`` when given; else the environment variable ``M2A_DATA_DIR``; else ``../shared/data``
    relative to the repository root (the folder above ``m2a_hf/``), then relative to the current directory.

    Args:
        path: An explicit directory.

    Returns:
        The directory, resolved.

    Raises:
        FileNotFoundError: If the chosen directory does not exist, naming every path tried.
    """
    if path is not None:
        candidate = Path(path).expanduser()
        if candidate.is_dir():
            return candidate.resolve()
        raise FileNotFoundError(f"data directory {str(candidate)!r} does not exist or is not a directory.")
    env_value = os.environ.get(DATA_DIR_ENV)
    if env_value:
        candidate = Path(env_value).expanduser()
        if candidate.is_dir():
            return candidate.resolve()
        raise FileNotFoundError(
            f"{DATA_DIR_ENV}={env_value!r} does not exist or is not a directory; point it at the folder holding "
            f"'{FDU_MTL_DIR}/' and '{CLOTHING_DIR}/'."
        )
    repo_root = Path(__file__).resolve().parent.parent
    tried: list[Path] = []
    for candidate in (repo_root.parent / "shared" / "data", Path.cwd().resolve().parent / "shared" / "data"):
        if candidate in tried:
            continue
        tried.append(candidate)
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"no data directory found: tried {[str(p) for p in tried]}. Pass a path or set {DATA_DIR_ENV} to the folder "
        f"holding '{FDU_MTL_DIR}/' and '{CLOTHING_DIR}/'."
    )


def _find_file(path: str | os.PathLike[str] | None, subdir: str, names: Sequence[str], what: str) -> Path:
    """Resolves ``path`` (a file, a folder holding one of ``names``, or a data dir with ``subdir``) to one file."""
    if path is not None and Path(path).is_file():
        return Path(path)
    base = resolve_data_dir(path)
    tried = []
    for folder in (base, base / subdir):
        for name in names:
            candidate = folder / name
            tried.append(str(candidate))
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"{what} not found; tried {tried}.")


# ----------------------------------------------------------------------------------------------------------------
# Loaders
# ----------------------------------------------------------------------------------------------------------------


def _age_bucket(value: Any) -> str | None:
    age = _to_integer(value)
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
    attribute_names = _check_attribute_names(attributes)
    unknown = [name for name in attribute_names if name not in CLOTHING_ATTRIBUTES]
    if unknown:
        raise ValueError(f"unknown clothing attribute(s) {unknown}; expected any of {list(CLOTHING_ATTRIBUTES)}.")
    file = _find_file(path, CLOTHING_DIR, (CLOTHING_FILE + ".gz", CLOTHING_FILE), "Clothing reviews CSV")
    frame = pd.read_csv(file, dtype=str, keep_default_na=False, compression="infer", encoding="utf-8")
    required = ["Title", "Review Text", "Rating", *(CLOTHING_ATTRIBUTES[name] for name in attribute_names)]
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise ValueError(f"{file}: missing column(s) {missing}; the file has {list(frame.columns)}.")
    id_column = frame.columns[0]
    row_ids = [_to_integer(value) for value in frame[id_column]]
    if any(row_id is None for row_id in row_ids):
        bad = next(i for i, row_id in enumerate(row_ids) if row_id is None)
        raise ValueError(f"{file}: record {bad}: row index {frame[id_column].iloc[bad]!r} is not an integer.")
    order = np.argsort(np.asarray(row_ids, dtype=np.int64), kind="stable")

    columns = _empty_columns(attribute_names)
    dropped = 0
    titles, bodies, ratings = frame["Title"].tolist(), frame["Review Text"].tolist(), frame["Rating"].tolist()
    attribute_values = {name: frame[CLOTHING_ATTRIBUTES[name]].tolist() for name in attribute_names}
    for position in order:
        text = _join_text(titles[position], bodies[position])
        row_id = row_ids[position]
        if not text:
            dropped += 1
            continue
        label = _parse_label(ratings[position], low=1, high=5, where=f"{file.name}: row {row_id}") - 1
        values = {}
        for name in attribute_names:
            raw = attribute_values[name][position]
            values[name] = _age_bucket(raw) if name == "age" else raw
        _append_row(columns, str(row_id), text, label, values)
    logger.info(
        "%s: dropped %d of %d rows whose Title and Review Text are both empty.", file.name, dropped, len(frame)
    )
    return _build_dataset_dict(_split_columns(columns, seed=seed), attribute_names, "clothing reviews")


def _fdu_file(folder: Path, domain: str, split: str) -> Path | None:
    for name in (f"{domain}.task.{split}.gz", f"{domain}.task.{split}"):
        if (folder / name).is_file():
            return folder / name
    return None


def _fdu_folder(path: str | os.PathLike[str] | None) -> Path:
    base = resolve_data_dir(path)
    return base / FDU_MTL_DIR if (base / FDU_MTL_DIR).is_dir() else base


def load_fdu_mtl(
    path: str | os.PathLike[str] | None = None,
    *,
    domains: str | Sequence[str] | None = None,
    dev_size: int = 200,
) -> DatasetDict:
    """Loads FDU-MTL (Liu et al. 2017): binary sentiment over 16 domains; the attribute is ``domain``.

    Files are ``<domain>.task.train`` and ``<domain>.task.test``, gzip-compressed (``.gz``) or not, one
    ``label<TAB>text`` document per line. As in the MAN code, the **last** ``dev_size`` lines of each train file are
    the validation split (so 1400/200/400 for most domains). Each line is decoded on its own as UTF-8, falling back
    to cp1252 and then latin-1 (MR and dvd hold a few cp1252 lines). ``id`` is ``<domain>:<train|test>:<line>``.

    Args:
        path: The ``fdu-mtl`` folder or the data dir holding it. ``None`` uses :func:`resolve_data_dir`.
        domains: Domain names (or one name); ``None`` means all 16 of :data:`FDU_MTL_DOMAINS`. Other names are
            accepted when their files exist.
        dev_size: Lines taken from the end of each train file as validation (0 gives an empty validation split).

    Returns:
        A DatasetDict with ``train``/``validation``/``test``, rows grouped by domain in the order given.

    Raises:
        FileNotFoundError: If a domain's train or test file is missing (the domains found are listed).
        ValueError: On a bad ``dev_size``, a line without a TAB, or a label that is not 0 or 1.
    """
    folder = _fdu_folder(path)
    if domains is None:
        domains = list(FDU_MTL_DOMAINS)
    elif isinstance(domains, str):
        domains = [domains]
    else:
        domains = list(domains)
    if not domains:
        raise ValueError(f"domains must name at least one domain, e.g. {list(FDU_MTL_DOMAINS[:3])}.")
    repeated = sorted(domain for domain, count in Counter(domains).items() if count > 1)
    if repeated:
        raise ValueError(f"domains {repeated} are listed more than once in {domains!r}.")
    if isinstance(dev_size, bool) or not isinstance(dev_size, int) or dev_size < 0:
        raise ValueError(f"dev_size must be a non-negative integer, got {dev_size!r}.")
    splits = {split: _empty_columns(["domain"]) for split in SPLITS}
    for domain in domains:
        files = {split: _fdu_file(folder, domain, split) for split in ("train", "test")}
        if None in files.values():
            found = sorted({p.name.split(".task.")[0] for p in folder.glob("*.task.train*")})
            missing = [split for split, file in files.items() if file is None]
            raise FileNotFoundError(
                f"FDU-MTL domain {domain!r}: no {' or '.join(missing)} file (.gz or plain) in {str(folder)!r}; "
                f"domains found there: {found}."
            )
        train_lines = list(_iter_lines(files["train"]))
        if dev_size >= len(train_lines):
            raise ValueError(
                f"dev_size={dev_size} leaves no training data: {files['train'].name} has {len(train_lines)} lines."
            )
        cut = len(train_lines) - dev_size
        groups = {
            "train": (train_lines[:cut], "train"),
            "validation": (train_lines[cut:], "train"),
            "test": (list(_iter_lines(files["test"])), "test"),
        }
        for split, (lines, file_split) in groups.items():
            file = files[file_split]
            for number, line in lines:
                label_text, tab, text = line.partition("\t")
                if not tab:
                    raise ValueError(f"{file}: line {number} has no TAB; expected '<label>\\t<text>'.")
                label = _parse_label(label_text, low=0, high=1, where=f"{file}: line {number}", what="label")
                _append_row(splits[split], f"{domain}:{file_split}:{number}", text.strip(), label, {"domain": domain})
    return _build_dataset_dict(splits, ["domain"], f"FDU-MTL ({len(domains)} domains)")


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
        columns = _empty_columns(["user", "product"])
        for number, line in _iter_lines(file):
            fields = line.split("\t\t", 3)
            if len(fields) != 4:
                raise ValueError(
                    f"{file}: line {number} has {len(fields)} field(s); expected 'user\\t\\tproduct\\t\\trating\\t\\ttext'."
                )
            user, product, rating, text = fields
            label = _parse_label(rating, low=1, high=10, where=f"{file}: line {number}") - 1
            text = _SENTENCE_SEPARATOR.sub(" ", text).strip()
            _append_row(columns, f"{split}:{number}", text, label, {"user": user, "product": product})
        splits[split] = columns
    return _build_dataset_dict(splits, ["user", "product"], "Tang .ss")


def _iter_json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yields ``(line number, record)`` for a JSON-lines file (optionally gzip).

    Lines that are not strict JSON are read as Python literals (the "loose JSON" of the older Amazon dumps).
    """
    for number, line in _iter_lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            try:
                record = ast.literal_eval(line)
            except (ValueError, SyntaxError) as error:
                raise ValueError(f"{path}: line {number} is neither JSON nor a Python literal: {error}.") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}: line {number} is a {type(record).__name__}; expected a JSON object.")
        yield number, record


AMAZON_MI_DIR = "amazon-musical-instruments"
AMAZON_MI_FILES = (
    "Musical_instruments_reviews.csv.gz",
    "Musical_instruments_reviews.csv",
    "reviews_Musical_Instruments_5.json.gz",
    "reviews_Musical_Instruments_5.json",
)
_AMAZON_CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz")


def _iter_amazon_records(file: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """Yields ``(file line of the record, record)`` of an Amazon review file: CSV export or (loose) JSON lines."""
    name = file.name.lower()
    if not name.endswith(_AMAZON_CSV_SUFFIXES):
        yield from _iter_json_lines(file)
        return
    text = _decode_line(_read_bytes(file))
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
    file = _find_file(path, AMAZON_MI_DIR, AMAZON_MI_FILES, "Amazon reviews file")
    columns = _empty_columns(["user", "item"])
    dropped = total = 0
    for number, record in _iter_amazon_records(file):
        total += 1
        text = _join_text(record.get("summary"), record.get("reviewText"))
        if not text:
            dropped += 1
            continue
        label = _parse_label(record.get("overall"), low=1, high=5, where=f"{file}: line {number}", what="overall") - 1
        _append_row(columns, str(number), text, label, {"user": record.get("reviewerID"), "item": record.get("asin")})
    if dropped:
        logger.info("%s: dropped %d of %d reviews with no summary and no reviewText.", file.name, dropped, total)
    return _build_dataset_dict(_split_columns(columns, seed=seed), ["user", "item"], f"Amazon reviews {file.name}")


_DRUGS_COLUMNS = ("drugName", "condition", "review", "rating")


def _read_drugs_file(file: Path) -> Columns:
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
    columns = _empty_columns(["drug", "condition"])
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
        label = _parse_label(rating, low=1, high=10, where=where) - 1
        _append_row(
            columns, str(row_id), text, label, {"drug": html.unescape(drug), "condition": html.unescape(condition)}
        )
    if dropped:
        logger.info("%s: dropped %d of %d rows with an empty review.", file.name, dropped, len(frame))
    return columns


def load_drugs_com(
    train_path: str | os.PathLike[str], test_path: str | os.PathLike[str] | None = None, *, seed: int = 42
) -> DatasetDict:
    """Loads the UCI Drugs.com reviews (``drugsComTrain_raw.tsv`` / ``drugsComTest_raw.tsv``).

    TSV with the columns ``uniqueID`` (often an unnamed first column), ``drugName``, ``condition``, ``review``,
    ``rating`` (1..10), ``date``, ``usefulCount``; quoted fields may span lines. Reviews and attribute values are
    HTML-unescaped (``&#039;`` -> ``'``) and the literal quotes that wrap every review are removed. label =
    ``rating - 1`` (10 classes); attributes ``drug`` and ``condition``; ``id`` is the uniqueID. Rows with an empty
    review are dropped (logged).

    Splits: with ``test_path``, test is that file and validation is a seeded 10% of the train file
    (:func:`split_indices` with fractions 0.9/0.1/0); without it, the one file is split 80/10/10.

    Args:
        train_path: The train TSV (optionally gzip).
        test_path: The test TSV, if any.
        seed: Seed of the split.

    Returns:
        A DatasetDict with ``train``/``validation``/``test``.

    Raises:
        FileNotFoundError: If a file is missing.
        ValueError: On a missing column or a rating that is not an integer 1..10.
    """
    parts = {}
    for split, path in (("train", train_path), ("test", test_path)):
        if path is None:
            continue
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"Drugs.com {split} file {str(file)!r} does not exist.")
        parts[split] = _read_drugs_file(file)
    splits = _complete_splits(parts, seed=seed, source="Drugs.com")
    return _build_dataset_dict(splits, ["drug", "condition"], "Drugs.com")


# ---- generic tables --------------------------------------------------------------------------------------------


def _columns_from_records(records: Sequence[Mapping[str, Any]]) -> Columns:
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    return {name: [record.get(name) for record in records] for name in names}


def _columns_from_frame(frame: pd.DataFrame) -> Columns:
    return {str(name): frame[name].tolist() for name in frame.columns}


def _read_table_file(file: Path) -> Columns:
    """Reads CSV / TSV / JSON / JSON lines / Parquet (the text formats optionally gzip) into columns."""
    suffixes = [s.lower() for s in file.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    kind = suffixes[-1] if suffixes else ""
    if kind in (".csv", ".tsv", ".tab"):
        separator = "," if kind == ".csv" else "\t"
        frame = pd.read_csv(file, sep=separator, dtype=str, keep_default_na=False, compression="infer")
        return _columns_from_frame(frame)
    if kind == ".parquet":
        return _columns_from_frame(pd.read_parquet(file))
    if kind in (".json", ".jsonl", ".ndjson"):
        data = _read_bytes(file)
        stripped = data.lstrip()
        if kind == ".json" and stripped[:1] in (b"[", b"{"):
            try:
                loaded = json.loads(data.decode("utf-8"))
            except json.JSONDecodeError:
                loaded = None  # JSON lines saved as .json
            if isinstance(loaded, list):
                return _columns_from_records(loaded)
            if isinstance(loaded, dict) and all(isinstance(v, list) for v in loaded.values()):
                return {str(k): list(v) for k, v in loaded.items()}
        return _columns_from_records([record for _, record in _iter_json_lines(file)])
    raise ValueError(
        f"cannot tell the format of {str(file)!r} from its suffix {''.join(file.suffixes)!r}; expected .csv, .tsv, "
        ".json, .jsonl or .parquet (the text formats optionally followed by .gz)."
    )


def _canonical_split(name: Any) -> str | None:
    return _SPLIT_ALIASES.get(str(name).strip().lower())


def _label_converter(label_offset: int, label_map: Sequence[Any] | Mapping[Any, int] | None, num_labels: int | None):
    if label_map is None:
        if isinstance(label_offset, bool) or not isinstance(label_offset, int):
            raise ValueError(f"label_offset must be an integer, got {label_offset!r}.")
        high = None if num_labels is None else label_offset + num_labels - 1

        def convert(value: Any, where: str) -> int:
            return _parse_label(value, low=label_offset, high=high, where=where, what="label") - label_offset

        return convert
    if label_offset != 0:
        raise ValueError(f"give either label_offset ({label_offset!r}) or label_map, not both.")
    if isinstance(label_map, Mapping):
        mapping = {}
        for key, index in label_map.items():
            if _to_integer(index) is None or _to_integer(index) < 0:
                raise ValueError(f"label_map[{key!r}] = {index!r}; expected a non-negative integer class index.")
            mapping[normalize_attribute_value(key)] = _to_integer(index)
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


def load_table(
    source: str | os.PathLike[str] | Dataset | DatasetDict | pd.DataFrame,
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
) -> DatasetDict:
    """Loads any table (CSV / TSV / JSON / JSON lines / Parquet file, DataFrame, Dataset or DatasetDict).

    Splits, in order of preference: the splits of a DatasetDict (``train``, ``validation``/``dev``/``valid``/
    ``val``, ``test``; other split names are ignored with a warning); else the values of ``split_column`` (same
    names, case-insensitive); else the seeded 80/10/10 of :func:`split_indices` over the rows in source order. A
    missing validation (or test) split is carved as a seeded 10% of train.

    Labels: ``label = value - label_offset`` (integral values, checked against ``num_labels`` when given), or, with
    ``label_map``, the value's position in a list / its value in a mapping (keys compared after
    :func:`normalize_attribute_value`). Rows with an empty text are dropped (logged).

    Args:
        source: A file path (format from the suffix, optional ``.gz`` for the text formats), a DataFrame, a Dataset
            or a DatasetDict.
        text_column: The text column, or several joined with ``". "`` (e.g. ``["summary", "reviewText"]``).
        label_column: The label column.
        attribute_columns: Attribute columns; a mapping renames them (``{"user": "reviewerID"}``).
        label_offset: Subtracted from integral labels (1 for 1..5 ratings).
        label_map: Alternative to ``label_offset``: a list of label values (index = class) or a value -> class map.
        num_labels: Number of classes; labels outside ``0..num_labels-1`` raise.
        split_column: Column holding each row's split name.
        id_column: Column to use as ``id``; default ``<split>:<row number>``.
        seed: Seed of the split.

    Returns:
        A DatasetDict with ``train``/``validation``/``test``.

    Raises:
        ValueError: On a missing column (the available ones are listed), an unknown split value, or a bad label.
    """
    if isinstance(attribute_columns, Mapping):
        renames = {str(name): str(column) for name, column in attribute_columns.items()}
    else:
        names = [attribute_columns] if isinstance(attribute_columns, str) else list(attribute_columns)
        renames = {str(name): str(name) for name in names}
    attribute_names = _check_attribute_names(list(renames))
    text_columns = [text_column] if isinstance(text_column, str) else list(text_column)
    if not text_columns:
        raise ValueError("text_column must name at least one column.")
    convert = _label_converter(label_offset, label_map, num_labels)

    if isinstance(source, DatasetDict):
        raw_parts: dict[str | None, Columns] = {}
        for name, dataset in source.items():
            split = _canonical_split(name)
            if split is None:
                logger.warning("load_table: ignoring split %r (not train/validation/dev/test).", name)
                continue
            if split in raw_parts:
                raise ValueError(f"DatasetDict has two splits that both mean {split!r}: {list(source)}.")
            raw_parts[split] = dataset.to_dict()
        description = "DatasetDict"
    else:
        if isinstance(source, Dataset):
            table, description = source.to_dict(), "Dataset"
        elif isinstance(source, pd.DataFrame):
            table, description = _columns_from_frame(source), "DataFrame"
        else:
            file = Path(source)
            if not file.is_file():
                raise FileNotFoundError(f"table file {str(file)!r} does not exist.")
            table, description = _read_table_file(file), file.name
        raw_parts = {None: table}

    needed = [*text_columns, label_column, *renames.values()]
    if split_column is not None and None in raw_parts:
        needed.append(split_column)
    if id_column is not None:
        needed.append(id_column)
    for split, table in raw_parts.items():
        missing = [column for column in dict.fromkeys(needed) if column not in table]
        if missing:
            where = description if split is None else f"{description} split {split!r}"
            raise ValueError(f"{where}: missing column(s) {missing}; available columns: {list(table)}.")

    parts: dict[str, Columns] = {}
    dropped = total = 0
    for split, table in raw_parts.items():
        n = _num_rows(table)
        targets: list[str | None]
        if split is not None:
            targets = [split] * n
        elif split_column is not None:
            targets = []
            for row, value in enumerate(table[split_column]):
                canonical = _canonical_split(value)
                if canonical is None:
                    raise ValueError(
                        f"{description}: row {row}: {split_column} = {value!r}; expected one of "
                        f"{sorted(_SPLIT_ALIASES)} (case-insensitive)."
                    )
                targets.append(canonical)
        else:
            targets = ["train"] * n
        for row in range(n):
            total += 1
            text = _join_text(*(table[column][row] for column in text_columns))
            if not text:
                dropped += 1
                continue
            target = targets[row]
            where = f"{description}: " + (f"split {split!r} row {row}" if split is not None else f"row {row}")
            label = convert(table[label_column][row], where)
            row_id = str(table[id_column][row]) if id_column is not None else f"{split or 'row'}:{row}"
            columns = parts.setdefault(target, _empty_columns(attribute_names))
            _append_row(columns, row_id, text, label, {name: table[col][row] for name, col in renames.items()})
    if dropped:
        logger.info("%s: dropped %d of %d rows with an empty text.", description, dropped, total)
    if not parts:
        raise ValueError(f"{description}: no rows with a non-empty text.")
    if split_column is None and None in raw_parts:
        splits = _split_columns(parts["train"], seed=seed)
    else:
        splits = _complete_splits(parts, seed=seed, source=description)
    return _build_dataset_dict(splits, attribute_names, description)


DATASET_NAMES: dict[str, str] = {
    "clothing": "clothing",
    "womens-clothing-reviews": "clothing",
    "womens_clothing_reviews": "clothing",
    "fdu-mtl": "fdu-mtl",
    "fdu_mtl": "fdu-mtl",
    "fdumtl": "fdu-mtl",
    "amazon-mi": "amazon-mi",
    "amazon_mi": "amazon-mi",
    "amazon-musical-instruments": "amazon-mi",
}
"""Names (and aliases) that :func:`load_named_dataset` resolves to a loader over the shared data dir."""


def load_named_dataset(
    name_or_path: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None, **kwargs: Any
) -> DatasetDict:
    """Loads a dataset by name (``"clothing"``, ``"fdu-mtl"``) or a table file by path.

    Args:
        name_or_path: A name of :data:`DATASET_NAMES` (case-insensitive), or a path to a table file for
            :func:`load_table`.
        data_dir: Data dir for the named datasets; ``None`` uses :func:`resolve_data_dir`.
        **kwargs: Passed to :func:`load_clothing_reviews`, :func:`load_fdu_mtl` or :func:`load_table`.

    Returns:
        The DatasetDict.

    Raises:
        ValueError: If the name is unknown and no such file exists.
    """
    key = str(name_or_path).strip().lower()
    if key in DATASET_NAMES:
        directory = resolve_data_dir(data_dir)
        loader = {"clothing": load_clothing_reviews, "fdu-mtl": load_fdu_mtl, "amazon-mi": load_amazon_reviews}
        return loader[DATASET_NAMES[key]](directory, **kwargs)
    path = Path(name_or_path)
    if path.is_file():
        return load_table(path, **kwargs)
    raise ValueError(
        f"unknown dataset {str(name_or_path)!r}: expected one of {sorted(set(DATASET_NAMES.values()))} or the path of "
        "an existing CSV/TSV/JSON/JSONL/Parquet file."
    )


# ----------------------------------------------------------------------------------------------------------------
# Attribute vocabulary
# ----------------------------------------------------------------------------------------------------------------


class AttributeVocab:
    """Per-attribute value -> id maps, with ``-1`` for unknown values.

    Ids of an attribute run ``0..n-1``. :meth:`build` assigns them to the training split's values in **sorted
    (lexicographic) order of the normalised strings**, so the vocab does not depend on row order; values added later
    with :meth:`add_values` are appended at the end. Values are stored as strings (see
    :func:`normalize_attribute_value`), so ``767`` and ``"767"`` are one value. ``None``, empty and unseen values
    encode to ``-1``.

    Args:
        values: Ordered mapping attribute name -> its values (index = id).

    Raises:
        ValueError: On a reserved or duplicate name, a missing value or a duplicate value.

    Example:
        >>> vocab = AttributeVocab({"user": ["u1", "u2"], "item": [7, 9]})
        >>> vocab.encode({"user": "u2", "item": "9"}), vocab.encode({"user": "u3", "item": None})
        ([1, 1], [-1, -1])
        >>> vocab.config_attributes()
        [{'name': 'user', 'num_values': 2}, {'name': 'item', 'num_values': 2}]
    """

    FILE_NAME = "attribute_vocab.json"
    FORMAT = "m2a-attribute-vocab"
    FORMAT_VERSION = 1

    def __init__(self, values: Mapping[str, Sequence[Any]]) -> None:
        if not isinstance(values, Mapping):
            raise ValueError(f"values must map attribute name -> list of values, got {type(values).__name__}.")
        names = _check_attribute_names(list(values))
        self._values: dict[str, list[str]] = {}
        self._index: dict[str, dict[str, int]] = {}
        for name in names:
            self._values[name] = []
            self._index[name] = {}
            raw = values[name]
            if isinstance(raw, str):
                raise ValueError(f"values[{name!r}] must be a list of values, got the string {raw!r}.")
            new_ids = self.add_values(name, list(raw))
            if len(set(new_ids)) != len(new_ids):
                seen = [self._values[name][i] for i, count in Counter(new_ids).items() if count > 1]
                raise ValueError(f"attribute {name!r} lists value(s) {seen} more than once.")

    # -- construction ---------------------------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        dataset: DatasetDict | Dataset | Mapping[str, Sequence[Any]],
        attribute_names: str | Sequence[str],
        min_count: int = 1,
    ) -> AttributeVocab:
        """Builds the vocab from the **training split only**.

        Args:
            dataset: A DatasetDict (its ``train`` split is used), a Dataset or a mapping column -> values (taken
                to be training data).
            attribute_names: Attribute columns, in the order of ``attribute_ids``.
            min_count: Values seen fewer times in train get no id (they encode to ``-1``).

        Returns:
            The vocab; ids in sorted order of the value strings.

        Raises:
            ValueError: If there is no ``train`` split, a column is missing or ``min_count`` < 1.
        """
        names = _check_attribute_names(attribute_names)
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}.")
        if isinstance(dataset, DatasetDict):
            if "train" not in dataset:
                raise ValueError(f"the DatasetDict has no 'train' split (splits: {list(dataset)}); build from train.")
            dataset = dataset["train"]
        elif isinstance(dataset, Mapping) and isinstance(dataset.get("train"), Dataset):
            dataset = dataset["train"]
        available = dataset.column_names if isinstance(dataset, Dataset) else list(dataset)
        missing = [name for name in names if name not in available]
        if missing:
            raise ValueError(f"attribute column(s) {missing} not in the training data; available: {available}.")
        values = {}
        for name in names:
            counts = Counter(normalize_attribute_value(v) for v in dataset[name])
            counts.pop(None, None)
            values[name] = sorted(value for value, count in counts.items() if count >= min_count)
            dropped = len(counts) - len(values[name])
            logger.info(
                "Attribute %r: %d value(s) from train%s.",
                name,
                len(values[name]),
                f" ({dropped} with fewer than {min_count} rows left out)" if dropped else "",
            )
        return cls(values)

    # -- properties -----------------------------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """Attribute names, in the order of ``attribute_ids``."""
        return list(self._values)

    @property
    def sizes(self) -> list[int]:
        """Number of known values per attribute, in order."""
        return [len(values) for values in self._values.values()]

    def config_attributes(self) -> list[dict[str, Any]]:
        """The attribute schema for ``M2AConfig(attributes=...)``: ``[{"name": n, "num_values": k}, ...]``."""
        return [{"name": name, "num_values": len(values)} for name, values in self._values.items()]

    def values(self, attribute: str) -> list[str]:
        """The known values of ``attribute`` (index = id)."""
        return list(self._values[self._check_name(attribute)])

    def _check_name(self, attribute: str) -> str:
        if attribute not in self._values:
            raise ValueError(f"unknown attribute {attribute!r}; known attributes: {self.names}.")
        return attribute

    # -- encoding -------------------------------------------------------------------------------------------------

    def id_of(self, attribute: str, value: Any) -> int:
        """The id of one value (``-1`` when unknown, missing or empty)."""
        key = normalize_attribute_value(value)
        return -1 if key is None else self._index[self._check_name(attribute)].get(key, -1)

    def encode(self, record: Mapping[str, Any]) -> list[int]:
        """Encodes one record to ``attribute_ids`` (in :attr:`names` order).

        An attribute missing from the record counts as unknown (``-1``), like ``None``; other keys are ignored.
        """
        if not isinstance(record, Mapping):
            raise ValueError(f"record must be a mapping attribute name -> value, got {type(record).__name__}.")
        ids = []
        for name, index in self._index.items():
            key = normalize_attribute_value(record.get(name))
            ids.append(-1 if key is None else index.get(key, -1))
        return ids

    def encode_batch(self, records: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]]) -> list[list[int]]:
        """Encodes many records: a mapping column -> values (a ``datasets`` batch) or a list of mappings.

        A column missing from a columnar batch counts as unknown for every row.
        """
        if isinstance(records, Mapping):
            lengths = {len(records[name]) for name in self._values if name in records}
            if not lengths:
                lengths = {len(next(iter(records.values())))} if records else {0}
            if len(lengths) > 1:
                raise ValueError(f"attribute columns have different lengths {sorted(lengths)}.")
            n = lengths.pop()
            encoded = []
            for name in self._values:
                index = self._index[name]
                if name not in records:
                    encoded.append([-1] * n)
                    continue
                keys = (normalize_attribute_value(v) for v in records[name])
                encoded.append([-1 if key is None else index.get(key, -1) for key in keys])
            return [list(row) for row in zip(*encoded, strict=True)] if encoded else [[] for _ in range(n)]
        return [self.encode(record) for record in records]

    def decode(self, attribute_ids: Sequence[int] | np.ndarray | torch.Tensor) -> dict[str, str | None]:
        """Decodes one ``attribute_ids`` row back to ``{name: value or None}`` (``-1`` -> ``None``)."""
        ids = np.asarray(attribute_ids.tolist() if isinstance(attribute_ids, torch.Tensor) else attribute_ids)
        if ids.ndim != 1 or len(ids) != len(self._values):
            raise ValueError(
                f"attribute_ids must be one row of {len(self._values)} ids ({self.names}), got shape {ids.shape}; "
                "use decode_batch for several rows."
            )
        result = {}
        for name, raw in zip(self._values, ids.tolist(), strict=True):
            values = self._values[name]
            if _to_integer(raw) is None or not -1 <= int(raw) < len(values):
                raise ValueError(f"attribute {name!r}: id {raw!r} out of range; expected -1..{len(values) - 1}.")
            result[name] = None if int(raw) == -1 else values[int(raw)]
        return result

    def decode_batch(self, attribute_ids: Sequence[Sequence[int]] | np.ndarray | torch.Tensor) -> list[dict[str, Any]]:
        """Decodes a ``(batch, num_attributes)`` array of ids."""
        return [self.decode(row) for row in attribute_ids]

    # -- growth ---------------------------------------------------------------------------------------------------

    def add_values(self, attribute: str, values: Any | Sequence[Any]) -> list[int]:
        """Adds values (e.g. users met after training) at the end of an attribute's ids.

        Values already known keep their id. The model's value tables must grow to :attr:`sizes` to use them.

        Args:
            attribute: The attribute name.
            values: One value or a list of values.

        Returns:
            The id of each given value, in order.

        Raises:
            ValueError: On an unknown attribute or a missing / empty value.
        """
        name = self._check_name(attribute)
        if isinstance(values, str) or not isinstance(values, Iterable):
            values = [values]
        index, known = self._index[name], self._values[name]
        ids = []
        for value in values:
            key = normalize_attribute_value(value)
            if key is None:
                raise ValueError(f"attribute {name!r}: cannot add the missing/empty value {value!r}.")
            if key not in index:
                index[key] = len(known)
                known.append(key)
            ids.append(index[key])
        return ids

    # -- persistence ----------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (with format name and version)."""
        return {
            "format": self.FORMAT,
            "version": self.FORMAT_VERSION,
            "attributes": [{"name": name, "values": list(values)} for name, values in self._values.items()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttributeVocab:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: If the dict is not an attribute vocab of a supported version.
        """
        if not isinstance(data, Mapping) or data.get("format") != cls.FORMAT:
            raise ValueError(f"not an attribute vocab: expected 'format': {cls.FORMAT!r}.")
        version = data.get("version")
        if not isinstance(version, int) or not 1 <= version <= cls.FORMAT_VERSION:
            raise ValueError(f"attribute vocab version {version!r} not supported; expected 1..{cls.FORMAT_VERSION}.")
        return cls({entry["name"]: entry["values"] for entry in data["attributes"]})

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Writes ``<directory>/attribute_vocab.json`` (creating the directory) and returns its path."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        file = folder / self.FILE_NAME
        file.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return file

    @classmethod
    def load(cls, directory_or_file: str | os.PathLike[str]) -> AttributeVocab:
        """Reads a vocab written by :meth:`save` (give the directory or the JSON file).

        Raises:
            FileNotFoundError: If there is no such file.
            ValueError: If the file is not a supported attribute vocab.
        """
        path = Path(directory_or_file)
        file = path / cls.FILE_NAME if path.is_dir() else path
        if not file.is_file():
            raise FileNotFoundError(f"no attribute vocab at {str(file)!r}.")
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{file} is not valid JSON: {error}.") from None
        return cls.from_dict(data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AttributeVocab) and self._values == other._values

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={size}" for name, size in zip(self.names, self.sizes, strict=True))
        return f"AttributeVocab({inner})"


# ----------------------------------------------------------------------------------------------------------------
# Tokenisation
# ----------------------------------------------------------------------------------------------------------------


def _special_token_affixes(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a single sequence (``[CLS]``/``[SEP]``, ``<s>``/``</s>``, ...).

    Found by encoding a probe text with and without special tokens, which works on transformers 4.x and 5.x (5.x
    dropped ``build_inputs_with_special_tokens``) and on any tokenizer whose template is prefix + text + suffix.
    """
    probe = "hello world"
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe, add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return list(full[:start]), list(full[start + len(plain) :])
    raise ValueError(
        f"cannot find the special-token template of {type(tokenizer).__name__}: {probe!r} encodes to {plain} without "
        f"and {full} with special tokens."
    )


def tokenize_head_tail(
    tokenizer: Any, texts: str | Sequence[str], max_length: int = 256
) -> dict[str, list[list[int]]]:
    """Tokenises with the reference's head+tail truncation.

    A text whose content tokens exceed ``max_length - (number of special tokens)`` keeps the first
    ``ceil(budget / 2)`` and the last ``floor(budget / 2)`` content tokens; then the special tokens are added.
    No padding (the collator pads). Works with any tokenizer whose single-sequence template is prefix + text +
    suffix (BERT, RoBERTa, GPT-2, Llama, ...); the batch is tokenised in one fast-tokenizer call.

    Args:
        tokenizer: A Hugging Face tokenizer.
        texts: One text or a list of texts.
        max_length: Total length including special tokens.

    Returns:
        ``input_ids`` and ``attention_mask`` (lists of lists), plus ``token_type_ids`` (zeros) when the tokenizer's
        ``model_input_names`` has them.

    Raises:
        ValueError: If ``max_length`` leaves no room for content or a text is not a string.
    """
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"text at index {index} is {text!r}; expected a string.")
    prefix, suffix = _special_token_affixes(tokenizer)
    budget = int(max_length) - len(prefix) - len(suffix) if not isinstance(max_length, bool) else 0
    if budget < 1:
        raise ValueError(
            f"max_length={max_length!r} leaves no room for text after {len(prefix) + len(suffix)} special tokens."
        )
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and max_length > model_max:
        logger.warning("max_length=%d exceeds the tokenizer's model_max_length=%d.", max_length, model_max)
    encoded = tokenizer(
        texts,
        add_special_tokens=False,
        truncation=False,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,
    )["input_ids"]
    head, tail = budget - budget // 2, budget // 2
    input_ids = []
    for ids in encoded:
        if len(ids) > budget:
            ids = ids[:head] + (ids[len(ids) - tail :] if tail else [])
        input_ids.append(prefix + list(ids) + suffix)
    result = {"input_ids": input_ids, "attention_mask": [[1] * len(ids) for ids in input_ids]}
    if "token_type_ids" in getattr(tokenizer, "model_input_names", ()):
        result["token_type_ids"] = [[0] * len(ids) for ids in input_ids]
    return result


def prepare_dataset(
    dataset_dict: DatasetDict | Dataset,
    tokenizer: Any,
    vocab: AttributeVocab,
    *,
    max_length: int = 256,
    num_proc: int | None = None,
    batch_size: int = 1000,
    text_column: str = "text",
    label_column: str = "label",
) -> DatasetDict | Dataset:
    """Maps a loader's output to model features.

    Output columns: ``input_ids``, ``attention_mask``, (``token_type_ids``), ``attribute_ids`` (one id per vocab
    attribute, in :attr:`AttributeVocab.names` order, ``-1`` unknown) and ``labels`` (when the input has
    ``label_column``). Every input column (``id``, ``text``, attribute strings) is dropped. Texts are tokenised by
    :func:`tokenize_head_tail`.

    Args:
        dataset_dict: A DatasetDict (every split is mapped) or a single Dataset.
        tokenizer: A Hugging Face tokenizer.
        vocab: The attribute vocab (built on train).
        max_length: Total length including special tokens.
        num_proc: Processes for ``Dataset.map``.
        batch_size: Rows per ``map`` batch.
        text_column: The text column.
        label_column: The label column (optional in the data).

    Returns:
        The same kind of object as given, with the feature columns only.

    Raises:
        ValueError: If the text column or an attribute column is missing.
    """
    single = isinstance(dataset_dict, Dataset)
    splits = {"data": dataset_dict} if single else dict(dataset_dict)
    result = {}
    for split, dataset in splits.items():
        missing = [column for column in (text_column, *vocab.names) if column not in dataset.column_names]
        if missing:
            raise ValueError(f"split {split!r}: missing column(s) {missing}; available: {dataset.column_names}.")
        has_labels = label_column in dataset.column_names

        def process(
            batch: Mapping[str, list[Any]], _has_labels: bool = has_labels, _split: str = split
        ) -> dict[str, list[Any]]:
            features: dict[str, list[Any]] = tokenize_head_tail(tokenizer, batch[text_column], max_length)
            features["attribute_ids"] = vocab.encode_batch(batch)
            if _has_labels:
                labels = batch[label_column]
                for value in labels:
                    if _to_integer(value) is None:
                        raise ValueError(f"split {_split!r}: label {value!r} is not an integer class index.")
                features["labels"] = [int(value) for value in labels]
            return features

        result[split] = dataset.map(
            process,
            batched=True,
            batch_size=batch_size,
            num_proc=num_proc,
            remove_columns=dataset.column_names,
            desc=f"Tokenising {split}",
        )
    return result["data"] if single else DatasetDict(result)


# ----------------------------------------------------------------------------------------------------------------
# Collator
# ----------------------------------------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, torch.Tensor | np.ndarray):
        return value.tolist()
    return list(value)


@dataclass
class M2ADataCollator:
    """Pads a list of features into a batch and picks the MLM targets.

    Returns a dict of tensors:

    * ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when present): padded by ``tokenizer.pad``
      (to the longest row, or a multiple of ``pad_to_multiple_of``);
    * ``attribute_ids``: ``LongTensor (batch, num_attributes)``, ``-1`` kept;
    * ``labels``: ``LongTensor (batch,)`` from ``labels`` (or ``label``) when the features have them;
    * ``mlm_labels`` (only when ``mlm_probability > 0``): ``LongTensor (batch, seq)``, ``-100`` everywhere except at
      ``k = max(int(mlm_probability * n), 1)`` positions per row, where it holds the original token id. ``n`` counts
      the row's tokens that are neither padding nor a special token (``tokenizer.all_special_ids``); the ``k``
      positions are drawn uniformly **without** replacement among them. A row with ``n = 0`` gets no target.

    **The collator never replaces ``input_ids`` by the mask token.** The stock ``Trainer`` uses one collator for
    training and evaluation, so the collator cannot tell them apart; the model substitutes the mask token at the
    positions where ``mlm_labels != -100``, and only when ``model.training`` is true. Evaluation batches therefore
    carry clean ``input_ids`` (plus ``mlm_labels`` the model may ignore).

    Other feature keys are ignored. The random draws use ``torch``'s global generator (seeded by
    ``Trainer``/``set_seed``) unless ``seed`` is given, in which case the collator owns a generator seeded once.

    Args:
        tokenizer: The tokenizer that produced the features (for ``pad`` and its special ids).
        mlm_probability: Fraction of eligible tokens to predict; 0 disables ``mlm_labels``.
        pad_to_multiple_of: Pad the sequence length to a multiple of this.
        seed: Seed of the collator's own generator.

    Raises:
        ValueError: On a bad ``mlm_probability``, an empty batch, or inconsistent features (the index is named).
    """

    tokenizer: Any
    mlm_probability: float = 0.15
    pad_to_multiple_of: int | None = None
    seed: int | None = None
    _generator: torch.Generator | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.mlm_probability, bool) or not 0.0 <= float(self.mlm_probability) <= 1.0:
            raise ValueError(f"mlm_probability must be in [0, 1], got {self.mlm_probability!r}.")
        if self.pad_to_multiple_of is not None and (
            not isinstance(self.pad_to_multiple_of, int) or self.pad_to_multiple_of < 1
        ):
            raise ValueError(
                f"pad_to_multiple_of must be a positive integer or None, got {self.pad_to_multiple_of!r}."
            )
        if self.seed is not None:
            self._generator = torch.Generator().manual_seed(int(self.seed))

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        features = list(features)
        if not features:
            raise ValueError("cannot collate an empty list of features.")
        token_keys = ("input_ids", "attention_mask", "token_type_ids")
        for index, feature in enumerate(features):
            if not isinstance(feature, Mapping):
                raise ValueError(f"feature {index} is a {type(feature).__name__}; expected a mapping.")
            if "input_ids" not in feature:
                raise ValueError(f"feature {index} has no 'input_ids' (keys: {sorted(feature)}).")
        present = [key for key in token_keys if key in features[0]]
        for key in present:
            for index, feature in enumerate(features):
                if key not in feature:
                    raise ValueError(f"feature {index} has no {key!r} but feature 0 has.")
        padded = self.tokenizer.pad(
            [{key: _as_list(feature[key]) for key in present} for feature in features],
            padding=True,
            pad_to_multiple_of=self.pad_to_multiple_of,
            return_tensors="pt",
        )
        batch: dict[str, torch.Tensor] = {key: padded[key] for key in padded}

        attribute_ids = self._stack_attribute_ids(features)
        if attribute_ids is not None:
            batch["attribute_ids"] = attribute_ids
        labels = self._stack_labels(features)
        if labels is not None:
            batch["labels"] = labels
        if self.mlm_probability > 0:
            batch["mlm_labels"] = self._mlm_labels(batch["input_ids"], batch["attention_mask"])
        return batch

    @staticmethod
    def _stack_attribute_ids(features: list[Mapping[str, Any]]) -> torch.Tensor | None:
        has = ["attribute_ids" in feature for feature in features]
        if not any(has):
            return None
        if not all(has):
            index = has.index(False)
            raise ValueError(f"feature {index} has no 'attribute_ids' but feature {has.index(True)} has.")
        rows = [_as_list(feature["attribute_ids"]) for feature in features]
        width = len(rows[0])
        for index, row in enumerate(rows):
            if len(row) != width:
                raise ValueError(f"feature {index} has {len(row)} attribute_ids; feature 0 has {width}.")
            for value in row:
                if _to_integer(value) is None or int(value) < -1:
                    raise ValueError(f"feature {index}: attribute id {value!r}; expected an integer >= -1.")
        return torch.tensor(rows, dtype=torch.long).reshape(len(rows), width)

    @staticmethod
    def _stack_labels(features: list[Mapping[str, Any]]) -> torch.Tensor | None:
        keys = ["labels" if "labels" in feature else "label" if "label" in feature else None for feature in features]
        if all(key is None for key in keys):
            return None
        if any(key is None for key in keys):
            index = keys.index(None)
            raise ValueError(f"feature {index} has no 'labels' but other features have.")
        values = []
        for index, (feature, key) in enumerate(zip(features, keys, strict=True)):
            value = feature[key]
            if isinstance(value, torch.Tensor | np.ndarray) and value.ndim == 0:
                value = value.item()
            if _to_integer(value) is None:
                raise ValueError(f"feature {index}: label {value!r} is not an integer class index.")
            values.append(int(value))
        return torch.tensor(values, dtype=torch.long)

    def _mlm_labels(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        special = torch.tensor(sorted(set(self.tokenizer.all_special_ids)), dtype=input_ids.dtype)
        eligible = attention_mask.bool() & ~torch.isin(input_ids, special)  # (batch, seq)
        counts = eligible.sum(dim=1)  # (batch,)
        k = torch.floor(counts.double() * float(self.mlm_probability)).long().clamp(min=1)
        k = torch.where(counts > 0, k, torch.zeros_like(k))
        scores = torch.rand(input_ids.shape, generator=self._generator)
        scores = scores.masked_fill(~eligible, 2.0)  # ineligible positions sort last
        order = scores.argsort(dim=1)
        ranks = torch.empty_like(order)
        ranks.scatter_(1, order, torch.arange(order.shape[1]).expand_as(order).contiguous())
        chosen = eligible & (ranks < k.unsqueeze(1))
        return torch.where(chosen, input_ids, torch.full_like(input_ids, -100))


__all__ = [
    "CLOTHING_ATTRIBUTES",
    "DATASET_NAMES",
    "DATA_DIR_ENV",
    "FDU_MTL_DOMAINS",
    "RESERVED_COLUMNS",
    "SPLITS",
    "SPLIT_FRACTIONS",
    "AttributeVocab",
    "M2ADataCollator",
    "load_amazon_reviews",
    "load_clothing_reviews",
    "load_drugs_com",
    "load_fdu_mtl",
    "load_named_dataset",
    "load_table",
    "load_tang_ss",
    "normalize_attribute_value",
    "prepare_dataset",
    "resolve_data_dir",
    "split_indices",
    "tokenize_head_tail",
]
