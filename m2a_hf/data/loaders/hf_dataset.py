"""A `datasets` dataset as a source: a folder written by `save_to_disk`, else anything `datasets.load_dataset` loads
(a Hub id with an optional configuration, or a local folder of data files) — `--dataset_name` of the command line."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict


logger = logging.getLogger(__name__)


def is_saved_dataset(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    folder = Path(path).expanduser()
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


def load_hf_dataset(
    name: str, config_name: str | None = None, *, cache_dir: str | None = None
) -> Dataset | DatasetDict:
    """Load `name` as `run_classification.py`'s `--dataset_name` does, plus `save_to_disk` folders.

    Args:
        name: A `save_to_disk` folder (read with `datasets.load_from_disk`), else a name for `datasets.load_dataset`
            (a Hub id, or a local folder of data files).
        config_name: The dataset's configuration (`load_dataset`'s second argument); not for a saved folder.
        cache_dir: Where `load_dataset` caches downloads.

    Returns:
        The Dataset or DatasetDict (its splits are read by :func:`m2a_hf.data.load_table`).

    Raises:
        ValueError: A configuration given for a saved folder.
        FileNotFoundError, ConnectionError, ...: What `load_dataset` raises for a name it cannot find.
    """
    from datasets import load_dataset, load_from_disk

    if is_saved_dataset(name):
        if config_name is not None:
            raise ValueError(
                f"{name!r} is a folder written by save_to_disk, which has no configurations; got the configuration "
                f"{config_name!r}."
            )
        logger.info("Reading the saved dataset %s (load_from_disk).", name)
        return load_from_disk(str(Path(name).expanduser()))
    logger.info(
        "Loading the dataset %r%s (load_dataset).", name, f", configuration {config_name!r}" if config_name else ""
    )
    return load_dataset(name, config_name, cache_dir=cache_dir)


def class_label_names(source: Dataset | DatasetDict, label_column: str) -> list[str] | None:
    """The class names of `label_column` when it is a `ClassLabel` (of the train split, else of the first split)."""
    if isinstance(source, DatasetDict):
        if not source:
            return None
        source = source["train"] if "train" in source else next(iter(source.values()))
    feature = source.features.get(label_column)
    return list(feature.names) if isinstance(feature, ClassLabel) else None


__all__ = ["class_label_names", "is_saved_dataset", "load_hf_dataset"]
