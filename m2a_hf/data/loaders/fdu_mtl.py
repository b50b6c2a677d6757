"""FDU-MTL (Liu et al. 2017): binary sentiment over 16 product and movie domains; the attribute is ``domain``."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from datasets import DatasetDict

from m2a_hf.data.columns import SPLITS, append_row, build_dataset_dict, empty_columns, parse_label
from m2a_hf.data.io import iter_lines
from m2a_hf.data.paths import resolve_data_dir


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


FDU_MTL_DIR = "fdu-mtl"
"""The folder of the data dir holding the ``<domain>.task.{train,test}[.gz]`` files."""


def _fdu_file(folder: Path, domain: str, split: str) -> Path | None:
    """The ``.gz`` or plain file of one domain and split, or ``None``."""
    for name in (f"{domain}.task.{split}.gz", f"{domain}.task.{split}"):
        if (folder / name).is_file():
            return folder / name
    return None


def _fdu_folder(path: str | os.PathLike[str] | None) -> Path:
    """The ``fdu-mtl`` folder of the data dir, or the given folder itself."""
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
    splits = {split: empty_columns(["domain"]) for split in SPLITS}
    for domain in domains:
        files = {split: _fdu_file(folder, domain, split) for split in ("train", "test")}
        if None in files.values():
            found = sorted({p.name.split(".task.")[0] for p in folder.glob("*.task.train*")})
            missing = [split for split, file in files.items() if file is None]
            raise FileNotFoundError(
                f"FDU-MTL domain {domain!r}: no {' or '.join(missing)} file (.gz or plain) in {str(folder)!r}; "
                f"domains found there: {found}."
            )
        train_lines = list(iter_lines(files["train"]))
        if dev_size >= len(train_lines):
            raise ValueError(
                f"dev_size={dev_size} leaves no training data: {files['train'].name} has {len(train_lines)} lines."
            )
        cut = len(train_lines) - dev_size
        groups = {
            "train": (train_lines[:cut], "train"),
            "validation": (train_lines[cut:], "train"),
            "test": (list(iter_lines(files["test"])), "test"),
        }
        for split, (lines, file_split) in groups.items():
            file = files[file_split]
            for number, line in lines:
                label_text, tab, text = line.partition("\t")
                if not tab:
                    raise ValueError(f"{file}: line {number} has no TAB; expected '<label>\\t<text>'.")
                label = parse_label(label_text, low=0, high=1, where=f"{file}: line {number}", what="label")
                append_row(splits[split], f"{domain}:{file_split}:{number}", text.strip(), label, {"domain": domain})
    return build_dataset_dict(splits, ["domain"], f"FDU-MTL ({len(domains)} domains)")


__all__ = ["FDU_MTL_DIR", "FDU_MTL_DOMAINS", "load_fdu_mtl"]
