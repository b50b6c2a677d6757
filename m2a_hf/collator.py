"""The batch collator: `DataCollatorWithPadding` for the token features, plus ``attribute_ids``, labels and the MLM
targets."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from transformers import DataCollatorWithPadding

from m2a_hf.values import to_integer


logger = logging.getLogger(__name__)


def _as_list(value: Any) -> list[Any]:
    """A list from a list, tuple, tensor or array."""
    if isinstance(value, torch.Tensor | np.ndarray):
        return value.tolist()
    return list(value)


class M2ADataCollator(DataCollatorWithPadding):
    """`transformers.DataCollatorWithPadding` for M2A: pads the token features, stacks ``attribute_ids`` and labels,
    and picks the MLM targets.

    Returns a dict of tensors:

    * ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when present): padded by `DataCollatorWithPadding`
      with its options (``padding``, ``max_length``, ``pad_to_multiple_of``);
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

    **Decoder backbones** (GPT-2, Llama, ...): the model ignores ``mlm_labels`` and computes its causal-LM targets from
    ``input_ids`` and ``attention_mask`` itself, so pass ``mlm_probability=0``. A tokenizer without a pad token (GPT-2's,
    Llama's) gets its eos token as pad token (logged once), as the model's ``pad_token_id``; either padding side works
    (the classifier reads the last token the attention mask marks).

    Other feature keys are ignored. The random draws use ``torch``'s global generator (seeded by
    ``Trainer``/``set_seed``) unless ``seed`` is given, in which case the collator owns a generator seeded once.

    Args:
        tokenizer: The tokenizer that produced the features (for padding and its special ids).
        mlm_probability: Fraction of eligible tokens to predict; 0 disables ``mlm_labels``.
        pad_to_multiple_of: Pad the sequence length to a multiple of this.
        seed: Seed of the collator's own generator.
        padding: `DataCollatorWithPadding`'s ``padding``: ``True``/``"longest"`` (default), ``"max_length"`` (with
            ``max_length``) or ``False``.
        max_length: Length to pad to with ``padding="max_length"``.
        return_tensors: Only ``"pt"`` (the MLM targets are torch tensors).

    Raises:
        ValueError: On a bad ``mlm_probability``, ``pad_to_multiple_of`` or ``return_tensors``, an empty batch, or
            inconsistent features (the index is named).
    """

    def __init__(
        self,
        tokenizer: Any,
        mlm_probability: float = 0.15,
        pad_to_multiple_of: int | None = None,
        seed: int | None = None,
        *,
        padding: bool | str = True,
        max_length: int | None = None,
        return_tensors: str = "pt",
    ) -> None:
        super().__init__(
            tokenizer,
            padding=padding,
            max_length=max_length,
            pad_to_multiple_of=pad_to_multiple_of,
            return_tensors=return_tensors,
        )
        self.mlm_probability = mlm_probability
        self.seed = seed
        self._generator: torch.Generator | None = None
        if isinstance(mlm_probability, bool) or not 0.0 <= float(mlm_probability) <= 1.0:
            raise ValueError(f"mlm_probability must be in [0, 1], got {mlm_probability!r}.")
        if pad_to_multiple_of is not None and (not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of < 1):
            raise ValueError(f"pad_to_multiple_of must be a positive integer or None, got {pad_to_multiple_of!r}.")
        if return_tensors != "pt":
            raise ValueError(
                f"return_tensors must be 'pt' (the MLM targets are torch tensors), got {return_tensors!r}."
            )
        if getattr(self.tokenizer, "pad_token", "") is None and getattr(self.tokenizer, "eos_token", None) is not None:
            logger.warning(
                "The tokenizer has no pad token (a decoder's): padding with its eos token %r.",
                self.tokenizer.eos_token,
            )
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if seed is not None:
            self._generator = torch.Generator().manual_seed(int(seed))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(tokenizer={type(self.tokenizer).__name__}, mlm_probability={self.mlm_probability}, "
            f"padding={self.padding!r}, max_length={self.max_length}, pad_to_multiple_of={self.pad_to_multiple_of}, "
            f"seed={self.seed})"
        )

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
        # DataCollatorWithPadding pads the token features; attributes and labels are checked and stacked below
        padded = super().__call__([{key: _as_list(feature[key]) for key in present} for feature in features])
        batch: dict[str, torch.Tensor] = dict(padded)

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
                if to_integer(value) is None or int(value) < -1:
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
            if to_integer(value) is None:
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


__all__ = ["M2ADataCollator"]
