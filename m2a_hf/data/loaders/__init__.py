"""The loaders, one module per source, and the named datasets that :func:`load_named_dataset` finds in the data dir."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datasets import DatasetDict

from m2a_hf.data.loaders.amazon import AMAZON_MI_DIR, AMAZON_MI_FILES, load_amazon_reviews
from m2a_hf.data.loaders.clothing import CLOTHING_ATTRIBUTES, CLOTHING_DIR, CLOTHING_FILE, load_clothing_reviews
from m2a_hf.data.loaders.drugs import load_drugs_com
from m2a_hf.data.loaders.fdu_mtl import FDU_MTL_DIR, FDU_MTL_DOMAINS, load_fdu_mtl
from m2a_hf.data.loaders.table import load_table
from m2a_hf.data.loaders.tang import TANG_SENTENCE_SEPARATOR, load_tang_ss
from m2a_hf.data.paths import resolve_data_dir


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

_LOADERS: dict[str, Callable[..., DatasetDict]] = {
    "clothing": load_clothing_reviews,
    "fdu-mtl": load_fdu_mtl,
    "amazon-mi": load_amazon_reviews,
}
"""Canonical name -> loader called as ``loader(data_dir, **kwargs)``."""


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
        return _LOADERS[DATASET_NAMES[key]](resolve_data_dir(data_dir), **kwargs)
    path = Path(name_or_path)
    if path.is_file():
        return load_table(path, **kwargs)
    raise ValueError(
        f"unknown dataset {str(name_or_path)!r}: expected one of {sorted(set(DATASET_NAMES.values()))} or the path of "
        "an existing CSV/TSV/JSON/JSONL/Parquet file."
    )


__all__ = [
    "AMAZON_MI_DIR",
    "AMAZON_MI_FILES",
    "CLOTHING_ATTRIBUTES",
    "CLOTHING_DIR",
    "CLOTHING_FILE",
    "DATASET_NAMES",
    "FDU_MTL_DIR",
    "FDU_MTL_DOMAINS",
    "TANG_SENTENCE_SEPARATOR",
    "load_amazon_reviews",
    "load_clothing_reviews",
    "load_drugs_com",
    "load_fdu_mtl",
    "load_named_dataset",
    "load_table",
    "load_tang_ss",
]
