"""Splitting: the one place that decides which row goes to train, validation or test."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np

from m2a_hf.data.columns import SPLITS, Columns, num_rows, take_rows


logger = logging.getLogger(__name__)


SPLIT_FRACTIONS: tuple[float, float, float] = (0.8, 0.1, 0.1)
"""Default train/validation/test fractions of :func:`split_indices`."""


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


def split_columns(columns: Columns, *, seed: int, fractions: Sequence[float] = SPLIT_FRACTIONS) -> dict[str, Columns]:
    """Splits a table by :func:`split_indices`."""
    parts = split_indices(num_rows(columns), seed=seed, fractions=fractions)
    return {split: take_rows(columns, part) for split, part in zip(SPLITS, parts, strict=True)}


def complete_splits(parts: Mapping[str, Columns], *, seed: int, source: str) -> dict[str, Columns]:
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
        return split_columns(parts["train"], seed=seed)
    missing = "validation" if "validation" not in parts else "test"
    fractions = (0.9, 0.1, 0.0) if missing == "validation" else (0.9, 0.0, 0.1)
    carved = split_columns(parts["train"], seed=seed, fractions=fractions)
    logger.info(
        "%s: no %s split; carved a seeded 10%% of train (%d rows).", source, missing, num_rows(carved[missing])
    )
    result = dict(parts)
    result["train"] = carved["train"]
    result[missing] = carved[missing]
    return {split: result[split] for split in SPLITS}


__all__ = ["SPLIT_FRACTIONS", "complete_splits", "split_columns", "split_indices"]
