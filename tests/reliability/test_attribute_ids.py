"""`attribute_ids` of a wrong dtype are rejected by the model with a message naming the dtype and saying what is
expected: an integer tensor, -1 for an unknown value (issue 14 item 9).

A uint8 tensor cannot hold -1 (it wraps to 255, which was reported as an out-of-range id) and a float tensor was
rejected without saying how unknown values are given.
"""

from __future__ import annotations

import pytest
import torch
from cli_checkpoint import tiny_model

from m2a_hf.modeling import M2AForSequenceClassification


@pytest.fixture(scope="module")
def model() -> M2AForSequenceClassification:
    return tiny_model()


def _forward(model: M2AForSequenceClassification, attribute_ids: torch.Tensor) -> torch.Tensor:
    input_ids = torch.tensor([[101, 2204, 102], [101, 2919, 102]])
    with torch.no_grad():
        return model(input_ids=input_ids, attribute_ids=attribute_ids).logits


def _assert_dtype_message(message: str, dtype: torch.dtype) -> None:
    assert str(dtype).removeprefix("torch.") in message, message
    assert "integer" in message and "-1" in message and "unknown" in message, message


def test_long_ids_with_unknown_values_are_accepted(model):
    assert _forward(model, torch.tensor([[0, -1], [-1, 1]])).shape == (2, 2)


def test_uint8_ids_are_rejected_naming_the_dtype(model):
    ids = torch.tensor([[0, -1], [1, 0]]).to(torch.uint8)  # -1 wraps to 255
    with pytest.raises(ValueError) as err:
        _forward(model, ids)
    _assert_dtype_message(str(err.value), torch.uint8)


@pytest.mark.parametrize(
    "values", [[[0.0, -1.0], [1.0, 0.0]], [[0.5, -1.0], [1.0, 0.0]]], ids=["integral", "fractional"]
)
def test_float_ids_are_rejected_naming_the_dtype(model, values):
    with pytest.raises(ValueError) as err:
        _forward(model, torch.tensor(values))
    _assert_dtype_message(str(err.value), torch.float32)
