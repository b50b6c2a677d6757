"""The attribute vocabulary: per attribute, value strings -> ids ``0..n-1``, with ``-1`` for unknown values.

Built from the training split only; saved as ``attribute_vocab.json``, the file the checkpoint's pipeline reads."""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset, DatasetDict

from m2a_hf.io_utils import write_json_atomic
from m2a_hf.modeling.pipeline_m2a import (
    ATTRIBUTE_VOCAB_FORMAT_NAME,
    ATTRIBUTE_VOCAB_FORMAT_VERSION,
    ATTRIBUTE_VOCAB_NAME,
    parse_attribute_vocab,
)
from m2a_hf.values import check_attribute_names, normalize_attribute_value, to_integer


logger = logging.getLogger(__name__)


class AttributeVocab:
    """Per-attribute value -> id maps, with ``-1`` for unknown values.

    Ids of an attribute run ``0..n-1``. :meth:`build` assigns them to the training split's values in **sorted
    (lexicographic) order of the normalised strings**, so the vocab does not depend on row order; values added later
    with :meth:`add_values` are appended at the end. Values are stored as strings (see
    :func:`~m2a_hf.values.normalize_attribute_value`), so ``767``, ``767.0`` and ``"767"`` are one value. Missing
    values (``None``, NaN, blanks, ``"NaN"``, ``"N/A"``, ...) and unseen values encode to ``-1``. The file format
    (:meth:`save`, :meth:`load`) is the one the checkpoint's pipeline reads, defined in ``modeling/pipeline_m2a.py``.

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

    FILE_NAME = ATTRIBUTE_VOCAB_NAME
    FORMAT = ATTRIBUTE_VOCAB_FORMAT_NAME
    FORMAT_VERSION = ATTRIBUTE_VOCAB_FORMAT_VERSION

    def __init__(self, values: Mapping[str, Sequence[Any]]) -> None:
        if not isinstance(values, Mapping):
            raise ValueError(f"values must map attribute name -> list of values, got {type(values).__name__}.")
        names = check_attribute_names(list(values))
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
        names = check_attribute_names(attribute_names)
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
            if to_integer(raw) is None or not -1 <= int(raw) < len(values):
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
        """Inverse of :meth:`to_dict`; reads the file format through the remote code's ``parse_attribute_vocab``.

        Raises:
            ValueError: If the dict is not an attribute vocab of a supported version, or lists a missing or
                repeated value.
        """
        return cls(parse_attribute_vocab(data))

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Writes ``<directory>/attribute_vocab.json`` (creating the directory) and returns its path."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        file = folder / self.FILE_NAME
        return write_json_atomic(file, self.to_dict(), ensure_ascii=False, indent=1)

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


__all__ = ["AttributeVocab"]
