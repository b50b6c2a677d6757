"""The loaders, one module per source, and the named datasets that :func:`load_named_dataset` finds in the data dir."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from datasets import DatasetDict

from m2a_hf.data.loaders.amazon import AMAZON_MI_DIR, AMAZON_MI_FILES, load_amazon_reviews
from m2a_hf.data.loaders.clothing import CLOTHING_ATTRIBUTES, CLOTHING_DIR, CLOTHING_FILE, load_clothing_reviews
from m2a_hf.data.loaders.drugs import DRUGS_COM_DIR, DRUGS_COM_FILES, load_drugs_com
from m2a_hf.data.loaders.fdu_mtl import FDU_MTL_DIR, FDU_MTL_DOMAINS, load_fdu_mtl
from m2a_hf.data.loaders.hf_dataset import class_label_names, is_saved_dataset, load_hf_dataset
from m2a_hf.data.loaders.table import load_table
from m2a_hf.data.loaders.tang import TANG_DATASETS, TANG_SENTENCE_SEPARATOR, load_tang_dataset, load_tang_ss
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
    "yelp-2013": "yelp-2013",
    "yelp_2013": "yelp-2013",
    "yelp2013": "yelp-2013",
    "yelp-2014": "yelp-2014",
    "yelp_2014": "yelp-2014",
    "yelp2014": "yelp-2014",
    "imdb": "imdb",
    "drugs-com": "drugs-com",
    "drugs_com": "drugs-com",
    "drugscom": "drugs-com",
    "drugs.com": "drugs-com",
}
"""Names (and aliases) that :func:`load_named_dataset` resolves to a loader over the shared data dir."""

_LOADERS: dict[str, Callable[..., DatasetDict]] = {
    "clothing": load_clothing_reviews,
    "fdu-mtl": load_fdu_mtl,
    "amazon-mi": load_amazon_reviews,
    **{name: partial(load_tang_dataset, name) for name in TANG_DATASETS},
    "drugs-com": load_drugs_com,
}
"""Canonical name -> loader called as ``loader(data_dir, **kwargs)``."""


def load_named_dataset(
    name_or_path: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None, **kwargs: Any
) -> DatasetDict:
    """Loads a dataset by name (``"clothing"``, ``"yelp-2013"``, ...) or a table file by path.

    The named datasets and where each is looked for in the data dir (details in each loader's docstring):

    =============  ==================================================================  =============================
    name           files in ``<data_dir>``                                             loader
    =============  ==================================================================  =============================
    ``clothing``   ``womens-clothing-reviews/Womens Clothing E-Commerce Reviews.csv``  :func:`load_clothing_reviews`
    ``fdu-mtl``    ``fdu-mtl/<domain>.task.{train,test}``                              :func:`load_fdu_mtl`
    ``amazon-mi``  ``amazon-musical-instruments/Musical_instruments_reviews.csv``      :func:`load_amazon_reviews`
    ``yelp-2013``  ``yelp-2013/yelp-2013-seg-20-20.{train,dev,test}.ss``               :func:`load_tang_dataset`
    ``yelp-2014``  ``yelp-2014/yelp-2014-seg-20-20.{train,dev,test}.ss``               :func:`load_tang_dataset`
    ``imdb``       ``imdb/imdb.{train,dev,test}.txt.ss``                               :func:`load_tang_dataset`
    ``drugs-com``  ``drugs-com/drugsCom{Train,Test}_raw.tsv``                          :func:`load_drugs_com`
    =============  ==================================================================  =============================

    Every file may also be gzip-compressed (``.gz`` appended to its name).

    Args:
        name_or_path: A name of :data:`DATASET_NAMES` (case-insensitive), or a path to a table file for
            :func:`load_table`.
        data_dir: Data dir for the named datasets; ``None`` uses :func:`resolve_data_dir`.
        **kwargs: Passed to the dataset's loader (e.g. ``domains=`` for ``fdu-mtl``) or to :func:`load_table`.

    Returns:
        The DatasetDict.

    Raises:
        ValueError: If the name is unknown and no such file exists.
        FileNotFoundError: If a named dataset's files are not in the data dir (the paths tried are named).
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
    "DRUGS_COM_DIR",
    "DRUGS_COM_FILES",
    "FDU_MTL_DIR",
    "FDU_MTL_DOMAINS",
    "TANG_DATASETS",
    "TANG_SENTENCE_SEPARATOR",
    "class_label_names",
    "is_saved_dataset",
    "load_amazon_reviews",
    "load_clothing_reviews",
    "load_drugs_com",
    "load_fdu_mtl",
    "load_hf_dataset",
    "load_named_dataset",
    "load_table",
    "load_tang_dataset",
    "load_tang_ss",
]
