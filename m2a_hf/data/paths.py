"""Finding the shared data directory and the files of a dataset in it."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path


DATA_DIR_ENV = "M2A_DATA_DIR"
"""Environment variable naming the shared data directory (see :func:`resolve_data_dir`)."""

_LAYOUT_HINT = "fdu-mtl/, womens-clothing-reviews/, ...: see m2a_hf.data.DATASET_NAMES"


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
            f"the datasets ({_LAYOUT_HINT})."
        )
    repo_root = Path(__file__).resolve().parents[2]
    tried: list[Path] = []
    for candidate in (repo_root.parent / "shared" / "data", Path.cwd().resolve().parent / "shared" / "data"):
        if candidate in tried:
            continue
        tried.append(candidate)
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"no data directory found: tried {[str(p) for p in tried]}. Pass a path or set {DATA_DIR_ENV} to the folder "
        f"holding the datasets ({_LAYOUT_HINT})."
    )


def find_file(path: str | os.PathLike[str] | None, subdir: str, names: Sequence[str], what: str) -> Path:
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


def find_dataset_files(
    path: str | os.PathLike[str] | None, folder: str, parts: Mapping[str, Sequence[str]], what: str, layout: str
) -> dict[str, Path]:
    """Finds the files of a dataset laid out as ``<data_dir>/<folder>/<file>``.

    Each part (e.g. a split) is the first existing file among its candidate names. The folder tried first is
    ``<path>/<folder>``, then ``path`` itself (so ``path`` may be the dataset's own folder); the first one holding
    every part wins.

    Args:
        path: The data dir or the dataset's folder; ``None`` uses :func:`resolve_data_dir`.
        folder: The dataset's folder in the data dir.
        parts: Part name -> candidate file names, in order of preference.
        what: The dataset, for the error message.
        layout: The expected layout, for the error message.

    Returns:
        Part name -> file.

    Raises:
        FileNotFoundError: If no folder holds every part, naming the paths tried and the expected layout.
    """
    base = resolve_data_dir(path)
    tried: list[str] = []
    for directory in dict.fromkeys((base / folder, base)):
        found: dict[str, Path] = {}
        for part, names in parts.items():
            candidates = [directory / name for name in names]
            hit = next((candidate for candidate in candidates if candidate.is_file()), None)
            if hit is None:
                tried.extend(str(candidate) for candidate in candidates)
            else:
                found[part] = hit
        if len(found) == len(parts):
            return found
    raise FileNotFoundError(f"{what} not found; tried {tried}. Expected layout: {layout}.")


__all__ = ["DATA_DIR_ENV", "find_dataset_files", "find_file", "resolve_data_dir"]
