"""Trainer checkpoints carry the attribute vocabulary, and a model without one refuses attribute values loudly.

Before: `predict --model_path out/checkpoint-10` exited 0 with every attribute value unknown (-1), because Trainer
checkpoints had no `attribute_vocab.json` and the pipeline only warned.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer, Trainer

from m2a_hf.callbacks import AttributeVocabCallback
from m2a_hf.data import AttributeVocab, M2ADataCollator, prepare_dataset
from m2a_hf.hub import load_pipeline
from m2a_hf.modeling import M2AForSequenceClassification
from m2a_hf.training import DataArguments, ModelArguments, ProcedureArguments, train_m2a, training_arguments


def _assert_maps_known_values(folder: Path, vocab: AttributeVocab, data) -> None:
    assert AttributeVocab.load(folder) == vocab
    assert AttributeVocab.from_dict(json.loads((folder / "config.json").read_text())["attribute_vocab"]) == vocab
    pipe = load_pipeline(folder)
    row = data["train"][0]
    attributes = {name: row[name] for name in vocab.names}
    assert pipe.attribute_ids_for(attributes) == vocab.encode(attributes)
    assert all(i >= 0 for i in pipe.attribute_ids_for(attributes))


@pytest.mark.slow  # a Trainer run
def test_every_checkpoint_of_train_m2a_has_the_vocabulary(backbone, data, tmp_path):
    out = tmp_path / "run"
    args = training_arguments(
        output_dir=str(out),
        max_steps=2,
        per_device_train_batch_size=8,
        eval_strategy="steps",
        eval_steps=1,
        save_strategy="steps",
        save_steps=1,
        save_total_limit=None,
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    model_args = ModelArguments(backbone=backbone, lora_rank=4, lora_alpha=8)
    result = train_m2a(model_args, DataArguments(max_length=32), args, ProcedureArguments(), data=data)
    checkpoints = sorted(out.glob("checkpoint-*")) + sorted((out / "stage2").glob("checkpoint-*"))
    assert len(checkpoints) == 4, checkpoints  # two per stage
    for checkpoint in checkpoints:
        _assert_maps_known_values(checkpoint, result.vocab, data)


def test_the_callback_works_with_the_stock_trainer(backbone, data, tmp_path):
    vocab = AttributeVocab.build(data["train"], ["user", "item"])
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    features = prepare_dataset(data, tokenizer, vocab, max_length=32)
    model = M2AForSequenceClassification.from_backbone(
        backbone, attributes=vocab.config_attributes(), num_labels=5, lora_rank=4
    )
    args = training_arguments(
        output_dir=str(tmp_path),
        max_steps=1,
        eval_strategy="no",
        save_strategy="steps",
        save_steps=1,
        load_best_model_at_end=False,
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=features["train"],
        data_collator=M2ADataCollator(tokenizer),
        processing_class=tokenizer,
        callbacks=[AttributeVocabCallback(vocab)],
    )
    trainer.train()
    _assert_maps_known_values(tmp_path / "checkpoint-1", vocab, data)


@pytest.fixture(scope="module")
def no_vocab_folder(backbone, tmp_path_factory) -> Path:
    """A saved M2A model with attributes `user`, `item` but no vocabulary (neither in config.json nor as a file)."""
    folder = tmp_path_factory.mktemp("no-vocab")
    model = M2AForSequenceClassification.from_backbone(
        backbone,
        attributes=[{"name": "user", "num_values": 4}, {"name": "item", "num_values": 3}],
        num_labels=2,
        lora_rank=4,
    )
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(backbone).save_pretrained(folder)
    assert not (folder / "attribute_vocab.json").exists()
    assert json.loads((folder / "config.json").read_text()).get("attribute_vocab") is None
    return folder


def test_attribute_values_without_a_vocabulary_are_an_error_naming_the_folder(no_vocab_folder):
    pipe = load_pipeline(no_vocab_folder)
    with pytest.raises(ValueError, match="no attribute vocabulary") as error:
        pipe({"text": "great fit", "attributes": {"user": "u1"}})
    assert str(no_vocab_folder) in str(error.value) and "attribute_vocab.json" in str(error.value)
    assert "allow_missing_vocab" in str(error.value)
    # nothing to map: no error
    assert pipe("great fit")[0]["label"]  # a single string gives a list of one, as the stock pipeline
    assert pipe({"text": "great fit", "attributes": {"user": None}})["label"]
    assert pipe({"text": "great fit", "attribute_ids": [0, -1]})["label"]
    assert pipe({"text": "great fit", "attributes": {"user": "u1"}}, view="coarse")["label"]  # attributes ignored


def test_allow_missing_vocab_or_a_given_vocabulary(no_vocab_folder):
    allowed = load_pipeline(no_vocab_folder, allow_missing_vocab=True)
    assert allowed.attribute_ids_for({"user": "u1", "item": "i2"}) == [-1, -1]
    assert allowed({"text": "great fit", "attributes": {"user": "u1"}})["label"]
    given = load_pipeline(no_vocab_folder, attribute_vocab={"user": ["u0", "u1"], "item": ["i0"]})
    assert given.attribute_ids_for({"user": "u1", "item": "i2"}) == [1, -1]
