"""Attribute values and names: the normaliser the vocabulary keys on, integer parsing, the reserved column names.

Shared by the loaders (:mod:`m2a_hf.data`), the vocabulary (:mod:`m2a_hf.vocab`), the features and the collator.
:func:`normalize_attribute_value` is defined once, in the remote code (``modeling/pipeline_m2a.py``, shipped inside
every checkpoint), and re-exported here, so training and the checkpoint's pipeline key on the same strings.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from m2a_hf.modeling.pipeline_m2a import MISSING_VALUE_STRINGS, normalize_attribute_value


RESERVED_COLUMNS: frozenset[str] = frozenset(
    {"id", "text", "label", "labels", "input_ids", "attention_mask", "token_type_ids", "attribute_ids", "mlm_labels"}
)
"""Names an attribute may not take: they are the loaders' own columns or the model's inputs."""


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


__all__ = [
    "MISSING_VALUE_STRINGS",
    "RESERVED_COLUMNS",
    "check_attribute_names",
    "normalize_attribute_value",
    "to_integer",
]
