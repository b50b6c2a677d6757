"""`TrainerCallback`s for M2A runs with the stock `Trainer`.

`AttributeVocabCallback` puts the attribute vocabulary into every `checkpoint-*` folder (`attribute_vocab.json`, and
the checkpoint's `config.json`), so that `m2a-hf predict --model_path out/checkpoint-10` maps attribute values to the
ids the model was trained with instead of treating every value as unknown. `m2a_hf.training.train_m2a` registers it;
with the stock `Trainer`:

    >>> trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=collator,  # doctest: +SKIP
    ...                   callbacks=[AttributeVocabCallback(vocab)])
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR


logger = logging.getLogger(__name__)


def checkpoint_folder(args: TrainingArguments, state: TrainerState) -> Path:
    """The folder the `Trainer` has just saved at `state.global_step` (`<output_dir>/checkpoint-<step>`)."""
    return Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"


class AttributeVocabCallback(TrainerCallback):
    """Writes the attribute vocabulary into every checkpoint the `Trainer` saves.

    At the start of training the vocabulary is also set as the model's `config.attribute_vocab` (when the model has
    such a config field, as M2A models do), so each checkpoint's `config.json` carries it as well; then, after each
    save, `attribute_vocab.json` is written (atomically) into the new `checkpoint-*` folder. Either makes the
    checkpoint's pipeline map attribute values to ids.

    Args:
        attribute_vocab: The vocabulary: an `m2a_hf.data.AttributeVocab`, a dict in the `attribute_vocab.json`
            format, or `{name: [value_0, ...]}` (see `m2a_hf.hub.attribute_vocab_dict`).

    Example:
        >>> trainer = Trainer(..., callbacks=[AttributeVocabCallback(vocab)])  # doctest: +SKIP
    """

    def __init__(self, attribute_vocab: Any) -> None:
        from m2a_hf.hub import attribute_vocab_dict

        self.attribute_vocab = attribute_vocab_dict(attribute_vocab)

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model: Any = None, **kwargs: Any
    ) -> None:
        config = getattr(model, "config", None)
        if config is not None and hasattr(config, "attribute_vocab"):
            config.attribute_vocab = self.attribute_vocab

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        folder = checkpoint_folder(args, state)
        if not folder.is_dir():
            logger.warning("AttributeVocabCallback: no checkpoint folder %s; the vocabulary is not written.", folder)
            return
        from m2a_hf.hub import write_attribute_vocab

        write_attribute_vocab(folder, self.attribute_vocab)


__all__ = ["AttributeVocabCallback", "checkpoint_folder"]
