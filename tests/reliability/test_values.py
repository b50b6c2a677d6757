"""Attribute value normalisation, the same at training (library) and at prediction (the checkpoint's remote code).

Every test runs against both entry points: the library (`m2a_hf.data.normalize_attribute_value`, `AttributeVocab`)
and `pipeline_m2a.py` imported on its own from its file, as `trust_remote_code` loads it from a checkpoint (its
`normalize_attribute_value`, `parse_attribute_vocab` and `M2ATextClassificationPipeline.attribute_ids_for`).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import BertConfig

import m2a_hf.modeling.pipeline_m2a as installed_pipeline
from m2a_hf.data import AttributeVocab, load_table, normalize_attribute_value
from m2a_hf.modeling import M2AConfig, M2AForSequenceClassification


# (raw value, the string it is looked up as; None = missing, i.e. unknown id -1)
CASES: list[tuple[Any, str | None]] = [
    (767, "767"),
    (767.0, "767"),  # pandas reads an integer column with gaps as float64
    ("767.0", "767"),  # ... and writes it back to CSV as "767.0"
    ("767", "767"),
    (" 767 ", "767"),
    (np.int64(767), "767"),
    (np.float64(767.0), "767"),
    (np.float32(767.0), "767"),
    (torch.tensor(767), "767"),
    (1.5, "1.5"),
    (np.float64(1.5), "1.5"),
    ("1.50", "1.5"),
    ("u17", "u17"),
    ("\tu17 \n", "u17"),
    ("0767", "0767"),  # an id with a leading zero stays itself
    (True, "True"),
    (np.bool_(False), "False"),
    (None, None),
    (float("nan"), None),
    (np.nan, None),
    (np.float32("nan"), None),
    (pd.NA, None),
    (pd.NaT, None),
    ("NaN", None),
    ("nan", None),
    ("None", None),
    ("null", None),
    ("N/A", None),
    ("NA", None),
    (" NaN ", None),
    ("", None),
    ("   ", None),
]
CASE_IDS = [f"{type(value).__name__}:{value!r}" for value, _ in CASES]

VOCAB_VALUES = ["767", "1.5", "u17", "0767", "True", "False"]


def _vocab_file(values: list[Any]) -> dict[str, Any]:
    return {"format": "m2a-attribute-vocab", "version": 1, "attributes": [{"name": "user", "values": values}]}


def _remote_pipeline_module():
    """`pipeline_m2a.py` imported from its file under another name, as the remote-code loader does."""
    name = "standalone_pipeline_m2a"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(installed_pipeline.__file__))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@dataclass
class EntryPoint:
    """One side of the remote-code boundary: its normaliser, its vocabulary reader and its attribute encoder."""

    name: str
    normalize: Callable[[Any], str | None]
    read_vocab: Callable[[Mapping[str, Any]], dict[str, list[str]]]
    encoder: Callable[[Mapping[str, Any]], Callable[[Any], int]]  # vocab file -> (user value -> id)


def _library_read_vocab(vocab_file: Mapping[str, Any]) -> dict[str, list[str]]:
    vocab = AttributeVocab.from_dict(vocab_file)
    return {name: vocab.values(name) for name in vocab.names}


def _library_encoder(vocab_file: Mapping[str, Any]) -> Callable[[Any], int]:
    vocab = AttributeVocab.from_dict(vocab_file)
    return lambda value: vocab.encode({"user": value})[0]


@pytest.fixture(scope="module")
def tiny_model() -> M2AForSequenceClassification:
    backbone = BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2)
    return M2AForSequenceClassification(M2AConfig(backbone_config=backbone, attributes={"user": 8})).eval()


@pytest.fixture(scope="module", params=["library", "remote-code"])
def entry(request, tiny_model, minilm_tokenizer) -> EntryPoint:
    if request.param == "library":
        return EntryPoint("library", normalize_attribute_value, _library_read_vocab, _library_encoder)
    module = _remote_pipeline_module()
    assert module.normalize_attribute_value is not installed_pipeline.normalize_attribute_value  # really standalone

    def encoder(vocab_file: Mapping[str, Any]) -> Callable[[Any], int]:
        pipe = module.M2ATextClassificationPipeline(
            model=tiny_model, tokenizer=minilm_tokenizer, attribute_vocab=vocab_file, device="cpu"
        )
        return lambda value: pipe.attribute_ids_for({"user": value})[0]

    return EntryPoint("remote-code", module.normalize_attribute_value, module.parse_attribute_vocab, encoder)


@pytest.mark.parametrize(("value", "expected"), CASES, ids=CASE_IDS)
def test_normalised_value(entry, value, expected):
    assert entry.normalize(value) == expected


@pytest.mark.parametrize(("value", "expected"), CASES, ids=CASE_IDS)
def test_value_id(entry, value, expected):
    """A missing value is unknown (-1), never a value of its own; every spelling of a known value finds its id."""
    encode = entry.encoder(_vocab_file(VOCAB_VALUES))
    assert encode(value) == (-1 if expected is None else VOCAB_VALUES.index(expected))


def test_vocab_file_written_with_float_ids_is_read_as_integers(entry):
    """A vocabulary saved before the fix holds "767.0"; it now means the value 767, whichever way it is given."""
    assert entry.read_vocab(_vocab_file(["767.0", "u1"])) == {"user": ["767", "u1"]}
    encode = entry.encoder(_vocab_file(["767.0", "u1"]))
    assert [encode(v) for v in (767, 767.0, "767", "767.0", np.float64(767))] == [0] * 5


@pytest.mark.parametrize(
    ("values", "message"),
    [(["u1", "NaN"], r"missing value\(s\) \['NaN'\]"), (["767", 767.0], r"\['767'\] more than once")],
)
def test_vocab_file_with_missing_or_repeated_values_is_rejected(entry, values, message):
    with pytest.raises(ValueError, match=message):
        entry.read_vocab(_vocab_file(values))


def test_pandas_csv_ids_with_gaps_are_known_at_prediction(entry, tmp_path):
    """The issue: pandas writes integer ids with gaps as 767.0; the trained vocabulary must still know 767."""
    frame = pd.DataFrame(
        {
            "text": [f"made-up review {i}" for i in range(10)],
            "label": [i % 2 for i in range(10)],
            "user": [767, 12, None, 767, 12, 5, None, 767, 12, 5],
        }
    )
    assert frame["user"].dtype == np.float64
    frame.to_csv(tmp_path / "reviews.csv", index=False)
    assert "767.0" in (tmp_path / "reviews.csv").read_text()
    read_as_numbers = pd.read_csv(tmp_path / "reviews.csv")  # pandas defaults: floats and NaN
    read_as_text = load_table(
        tmp_path / "reviews.csv", text_column="text", label_column="label", attribute_columns=["user"]
    )
    for train in (read_as_numbers, read_as_text["train"]):
        vocab = AttributeVocab.build({"user": list(train["user"])}, ["user"])
        assert vocab.values("user") == ["12", "5", "767"]
        encode = entry.encoder(vocab.to_dict())
        assert {encode(v) for v in (767, 767.0, "767", "767.0", np.float64(767.0), np.int64(767))} == {2}
        assert encode(None) == encode(float("nan")) == encode("") == -1


def test_missing_markers_in_a_table_are_missing(tmp_path):
    """Loaders read text columns verbatim (``keep_default_na=False``); "NA", "null", ... still become None."""
    rows = ["text,label,user", "a,0,u1", "b,1,NA", "c,0,null", "d,1,", "e,0,N/A", "f,1, u2 ", "g,0,NaN", "h,1,None"]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    dsd = load_table(tmp_path / "t.csv", text_column="text", label_column="label", attribute_columns=["user"], seed=0)
    users = {row["text"]: row["user"] for split in dsd.values() for row in split}
    assert users == {"a": "u1", "b": None, "c": None, "d": None, "e": None, "f": "u2", "g": None, "h": None}
    vocab = AttributeVocab.build({"user": list(users.values())}, ["user"])
    assert vocab.values("user") == ["u1", "u2"]
