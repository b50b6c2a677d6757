"""Classes are the training split's distinct labels, as in transformers' `run_classification.py`.

Before: `num_labels` was the largest label + 1 over all splits (1..5 ratings trained 6 classes, a stray 999 a
1,000-class model), string labels could not be trained from a table file, one class "trained" fine and a 1-row file
crashed in `max()`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from datasets import ClassLabel, Dataset, DatasetDict
from helpers import one_step_args
from reltrain_helpers import synthetic_slice

from m2a_hf import training
from m2a_hf.data import load_table
from m2a_hf.hub import load_pipeline
from m2a_hf.labels import resolve_labels
from m2a_hf.training import (
    DataArguments,
    ModelArguments,
    ProcedureArguments,
    evaluate_checkpoint,
    load_data,
    train_m2a,
    training_arguments,
)


WORDS = ["soft", "tight", "lovely", "itchy", "perfect", "cheap", "warm", "thin"]


def _csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _table(path: Path, labels: dict[str, list[Any]]) -> Path:
    """A CSV with text, label, user and split columns; `labels` gives each split's labels (the command line ignores
    the split column and splits 80/10/10; `_split_table` reads it)."""
    rows = []
    for split, values in labels.items():
        for i, label in enumerate(values):
            text = f"{WORDS[i % len(WORDS)]} and {WORDS[(3 * i + 1) % len(WORDS)]} fabric, row {i}"
            rows.append({"text": text, "label": label, "user": f"u{i % 3}", "split": split})
    return _csv(path, rows)


def _split_table(path: Path) -> DatasetDict:
    """The table with its split column, labels as strings (what a library user passes to `train_m2a(data=...)`)."""
    return load_table(
        path,
        text_column="text",
        label_column="label",
        attribute_columns=["user"],
        split_column="split",
        raw_labels=True,
    )


def _data_args(path: Path, **fields: Any) -> DataArguments:
    return DataArguments(
        dataset=str(path), text_column="text", label_column="label", attribute_columns="user", max_length=32, **fields
    )


def _train(backbone: str, data_args: DataArguments, out: Path, data: DatasetDict | None = None):
    model_args = ModelArguments(backbone=backbone, lora_rank=4, lora_alpha=8)
    return train_m2a(model_args, data_args, one_step_args(out), ProcedureArguments(stage2=False), data=data)


@pytest.mark.slow  # a Trainer run
def test_ratings_1_to_5_train_a_5_class_model(backbone, tmp_path):
    path = _table(tmp_path / "ratings.csv", {"train": [1, 2, 3, 4, 5, "5.0", "3.0", 2.0] * 5})  # 40 rows, 80/10/10
    result = _train(backbone, _data_args(path), tmp_path / "out")
    config = result.model.config
    assert config.num_labels == 5
    assert config.id2label == {0: "1", 1: "2", 2: "3", 3: "4", 4: "5"}
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["id2label"] == {"0": "1", "1": "2", "2": "3", "3": "4", "4": "5"}
    assert result.metrics["test"]["fine"]["seen_count"] + result.metrics["test"]["fine"]["unseen_count"] == 4


@pytest.mark.slow  # a Trainer run
def test_string_labels_train_predict_and_evaluate(backbone, tmp_path):
    path = _table(tmp_path / "sentiment.csv", {"train": ["pos", "neg", " pos ", "neg"] * 5})
    out = tmp_path / "out"
    result = _train(backbone, _data_args(path), out)
    assert result.model.config.id2label == {0: "neg", 1: "pos"}
    prediction = load_pipeline(out)({"text": "lovely fabric", "attributes": {"user": "u1"}})
    assert prediction["label"] in ("neg", "pos")
    metrics = evaluate_checkpoint(str(out), _data_args(path), split="test")
    assert metrics["fine"]["seen_count"] + metrics["fine"]["unseen_count"] == 2


def test_numbers_sort_by_value_and_spellings_of_one_number_are_one_label():
    data = DatasetDict(
        {
            "train": Dataset.from_dict({"text": ["a"] * 6, "label": ["9", "10", "5.0", "5", "05", " 10 "]}),
            "validation": Dataset.from_dict({"text": ["a"], "label": ["10.0"]}),
            "test": Dataset.from_dict({"text": ["a"], "label": ["9"]}),
        }
    )
    resolved = resolve_labels(data)
    feature = resolved["train"].features["label"]
    assert isinstance(feature, ClassLabel) and feature.names == ["5", "9", "10"]
    assert resolved["train"]["label"] == [1, 2, 0, 0, 0, 2]
    assert resolved["validation"]["label"] == [2] and resolved["test"]["label"] == [1]


@pytest.mark.parametrize("split", ["validation", "test"])
def test_a_label_unseen_in_training_is_an_error_naming_the_split_and_row(backbone, tmp_path, split):
    labels = {"train": [1, 2, 3] * 3, "validation": [1, 2], "test": [3, 1]}
    labels[split] = [*labels[split], 999]
    path = _table(tmp_path / "stray.csv", labels)
    row = 9 + 2 + (2 if split == "test" else 0)  # the stray label's row in the file
    message = rf"{split} split, row 2 \(id 'row:{row}'\): label '999' does not occur in the training split"
    with pytest.raises(ValueError, match=message):
        _train(backbone, _data_args(path), tmp_path / "out", data=_split_table(path))


def test_a_single_class_is_an_error(tmp_path):
    path = _table(tmp_path / "one.csv", {"train": ["pos"] * 6, "validation": ["pos"], "test": ["pos"]})
    with pytest.raises(ValueError, match="1 distinct label.*at least 2"):
        load_data(_data_args(path))


def test_a_one_row_file_is_a_clear_error(backbone, tmp_path):
    path = _csv(tmp_path / "tiny.csv", [{"text": "lovely", "label": 5, "user": "u1"}])
    with pytest.raises(ValueError, match="split is empty"):
        _train(backbone, _data_args(path), tmp_path / "out")


def test_label_map_and_label_offset_give_explicit_classes(tmp_path):
    path = _table(tmp_path / "s.csv", {"train": ["pos", "neg", "neu"] * 4})
    data = load_data(_data_args(path, label_map="pos,neu,neg"))
    assert data["train"].features["label"].names == ["pos", "neu", "neg"]
    raw = _split_table(path)["train"]["label"]
    mapped = resolve_labels(_split_table(path), label_map=["pos", "neu", "neg"])["train"]["label"]
    assert mapped == [{"pos": 0, "neu": 1, "neg": 2}[label] for label in raw]
    with pytest.raises(ValueError, match="does not occur in the label_map"):
        load_data(_data_args(path, label_map="pos,neg"))
    ratings = _table(tmp_path / "r.csv", {"train": [2, 3, 5] * 4})
    data = load_data(_data_args(ratings, label_offset=1))
    assert data["train"].features["label"].names == ["1", "2", "3", "4", "5"]  # classes 0..max, as offset says
    resolved = resolve_labels(_split_table(ratings), label_offset=1)
    assert resolved["train"]["label"] == [int(label) - 1 for label in _split_table(ratings)["train"]["label"]]


def test_named_datasets_keep_their_class_indices_and_names(backbone):
    data = synthetic_slice(train=16, dev=8, test=8)
    data_args = DataArguments(dataset="synthetic", max_length=32)
    args = training_arguments(output_dir="unused")
    *_, features, num_labels, id2label = training._prepare(ModelArguments(backbone=backbone), data_args, args, data)
    assert num_labels == 5 and id2label[0] == "1 star" and id2label[4] == "5 stars"
    assert features["train"]["labels"] == data["train"]["label"]  # indices unchanged
