"""Attribute values and names: the normaliser the vocabulary keys on, integer parsing, the reserved column names.

Shared by the loaders (:mod:`m2a_hf.data`), the vocabulary (:mod:`m2a_hf.vocab`), the features and the collator.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


RESERVED_COLUMNS: frozenset[str] = frozenset(
    {"id", "text", "label", "labels", "input_ids", "attention_mask", "token_type_ids", "attribute_ids", "mlm_labels"}
)
"""Names an attribute may not take: they are the loaders' own columns or the model's inputs."""


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


def to_integer(value: Any) -> int | None:
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


def check_attribute_names(attribute_names: str | Sequence[str]) -> list[str]:
    """Returns the names as a list; raises a ValueError on an empty, reserved or repeated name."""
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


__all__ = ["RESERVED_COLUMNS", "check_attribute_names", "normalize_attribute_value", "to_integer"]
