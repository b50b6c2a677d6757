"""Model features: head+tail tokenisation of the reference implementation, and a loader's output mapped to model inputs."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from datasets import Dataset, DatasetDict

from m2a_hf.values import to_integer
from m2a_hf.vocab import AttributeVocab


logger = logging.getLogger(__name__)


def _special_token_affixes(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a single sequence (``[CLS]``/``[SEP]``, ``<s>``/``</s>``, ...).

    Found by encoding a probe text with and without special tokens, which works on transformers 4.x and 5.x (5.x
    dropped ``build_inputs_with_special_tokens``) and on any tokenizer whose template is prefix + text + suffix.
    """
    probe = "hello world"
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe, add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return list(full[:start]), list(full[start + len(plain) :])
    raise ValueError(
        f"cannot find the special-token template of {type(tokenizer).__name__}: {probe!r} encodes to {plain} without "
        f"and {full} with special tokens."
    )


def tokenize_head_tail(
    tokenizer: Any, texts: str | Sequence[str], max_length: int = 256
) -> dict[str, list[list[int]]]:
    """Tokenises with the reference's head+tail truncation.

    A text whose content tokens exceed ``max_length - (number of special tokens)`` keeps the first
    ``ceil(budget / 2)`` and the last ``floor(budget / 2)`` content tokens; then the special tokens are added.
    No padding (the collator pads). Works with any tokenizer whose single-sequence template is prefix + text +
    suffix (BERT, RoBERTa, GPT-2, Llama, ...); the batch is tokenised in one fast-tokenizer call.

    Args:
        tokenizer: A Hugging Face tokenizer.
        texts: One text or a list of texts.
        max_length: Total length including special tokens.

    Returns:
        ``input_ids`` and ``attention_mask`` (lists of lists), plus ``token_type_ids`` (zeros) when the tokenizer's
        ``model_input_names`` has them.

    Raises:
        ValueError: If ``max_length`` leaves no room for content or a text is not a string.
    """
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"text at index {index} is {text!r}; expected a string.")
    prefix, suffix = _special_token_affixes(tokenizer)
    budget = int(max_length) - len(prefix) - len(suffix) if not isinstance(max_length, bool) else 0
    if budget < 1:
        raise ValueError(
            f"max_length={max_length!r} leaves no room for text after {len(prefix) + len(suffix)} special tokens."
        )
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and max_length > model_max:
        logger.warning("max_length=%d exceeds the tokenizer's model_max_length=%d.", max_length, model_max)
    encoded = tokenizer(
        texts,
        add_special_tokens=False,
        truncation=False,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,
    )["input_ids"]
    head, tail = budget - budget // 2, budget // 2
    input_ids = []
    for ids in encoded:
        if len(ids) > budget:
            ids = ids[:head] + (ids[len(ids) - tail :] if tail else [])
        input_ids.append(prefix + list(ids) + suffix)
    result = {"input_ids": input_ids, "attention_mask": [[1] * len(ids) for ids in input_ids]}
    if "token_type_ids" in getattr(tokenizer, "model_input_names", ()):
        result["token_type_ids"] = [[0] * len(ids) for ids in input_ids]
    return result


def prepare_dataset(
    dataset_dict: DatasetDict | Dataset,
    tokenizer: Any,
    vocab: AttributeVocab,
    *,
    max_length: int = 256,
    num_proc: int | None = None,
    batch_size: int = 1000,
    text_column: str = "text",
    label_column: str = "label",
) -> DatasetDict | Dataset:
    """Maps a loader's output to model features.

    Output columns: ``input_ids``, ``attention_mask``, (``token_type_ids``), ``attribute_ids`` (one id per vocab
    attribute, in :attr:`AttributeVocab.names` order, ``-1`` unknown) and ``labels`` (when the input has
    ``label_column``). Every input column (``id``, ``text``, attribute strings) is dropped. Texts are tokenised by
    :func:`tokenize_head_tail`.

    Args:
        dataset_dict: A DatasetDict (every split is mapped) or a single Dataset.
        tokenizer: A Hugging Face tokenizer.
        vocab: The attribute vocab (built on train).
        max_length: Total length including special tokens.
        num_proc: Processes for ``Dataset.map``.
        batch_size: Rows per ``map`` batch.
        text_column: The text column.
        label_column: The label column (optional in the data).

    Returns:
        The same kind of object as given, with the feature columns only.

    Raises:
        ValueError: If the text column or an attribute column is missing.
    """
    single = isinstance(dataset_dict, Dataset)
    splits = {"data": dataset_dict} if single else dict(dataset_dict)
    result = {}
    for split, dataset in splits.items():
        missing = [column for column in (text_column, *vocab.names) if column not in dataset.column_names]
        if missing:
            raise ValueError(f"split {split!r}: missing column(s) {missing}; available: {dataset.column_names}.")
        has_labels = label_column in dataset.column_names

        def process(
            batch: Mapping[str, list[Any]], _has_labels: bool = has_labels, _split: str = split
        ) -> dict[str, list[Any]]:
            features: dict[str, list[Any]] = tokenize_head_tail(tokenizer, batch[text_column], max_length)
            features["attribute_ids"] = vocab.encode_batch(batch)
            if _has_labels:
                labels = batch[label_column]
                for value in labels:
                    if to_integer(value) is None:
                        raise ValueError(f"split {_split!r}: label {value!r} is not an integer class index.")
                features["labels"] = [int(value) for value in labels]
            return features

        result[split] = dataset.map(
            process,
            batched=True,
            batch_size=batch_size,
            num_proc=num_proc,
            remove_columns=dataset.column_names,
            desc=f"Tokenising {split}",
        )
    return result["data"] if single else DatasetDict(result)


__all__ = ["prepare_dataset", "tokenize_head_tail"]
