"""Tests of m2a_hf.metrics against hand-computed values (and sklearn when it is installed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from m2a_hf.metrics import (
    accuracy,
    classification_metrics,
    compute_metrics,
    macro_f1,
    metrics_by_seen,
    rmse,
    seen_mask_from_attribute_ids,
)


PREDS = [0, 1, 2, 2, 4, 0]
LABELS = [0, 1, 1, 2, 3, 0]


def test_hand_computed_values():
    assert accuracy(PREDS, LABELS) == pytest.approx(4 / 6)
    # squared errors 0,0,1,0,1,0
    assert rmse(PREDS, LABELS) == pytest.approx(math.sqrt(2 / 6))
    # classes in preds or labels: 0,1,2,3,4 -> F1 = 1, 2/3, 2/3, 0, 0
    assert macro_f1(PREDS, LABELS) == pytest.approx((1 + 2 / 3 + 2 / 3) / 5)
    # with num_labels=6 the absent class 5 scores 0 as well
    assert macro_f1(PREDS, LABELS, num_labels=6) == pytest.approx((1 + 2 / 3 + 2 / 3) / 6)
    assert classification_metrics([1, 1], [1, 1]) == {"accuracy": 1.0, "macro_f1": 1.0, "rmse": 0.0}


def test_against_sklearn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=300)
    preds = np.where(rng.random(300) < 0.6, labels, rng.integers(0, 5, size=300))
    assert accuracy(preds, labels) == pytest.approx(sklearn_metrics.accuracy_score(labels, preds))
    assert macro_f1(preds, labels) == pytest.approx(sklearn_metrics.f1_score(labels, preds, average="macro"))
    assert macro_f1(preds[:20], labels[:20], num_labels=7) == pytest.approx(
        sklearn_metrics.f1_score(labels[:20], preds[:20], labels=list(range(7)), average="macro", zero_division=0)
    )
    assert rmse(preds, labels) == pytest.approx(math.sqrt(sklearn_metrics.mean_squared_error(labels, preds)))


def test_compute_metrics_takes_logits_and_tuples():
    logits = np.eye(5)[PREDS] * 3.0 + 0.1
    expected = classification_metrics(PREDS, LABELS)
    assert compute_metrics((logits, np.asarray(LABELS))) == pytest.approx(expected)
    assert compute_metrics(((logits, np.zeros((6, 4, 9))), np.asarray(LABELS))) == pytest.approx(expected)

    class EvalPrediction:  # duck-typed stand-in for transformers.EvalPrediction
        predictions = logits
        label_ids = np.asarray(LABELS)

    assert compute_metrics(EvalPrediction()) == pytest.approx(expected)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="3 samples but labels has 2"):
        accuracy([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="zero samples"):
        rmse([], [])
    with pytest.raises(ValueError, match="num_labels"):
        macro_f1([0], [0], num_labels=0)


def test_metrics_by_seen_splits_groups():
    seen = [True, True, False, False, True, True]
    result = metrics_by_seen(PREDS, LABELS, seen, prefix="test_")
    assert result["test_accuracy"] == pytest.approx(4 / 6)
    assert result["test_seen_accuracy"] == pytest.approx(3 / 4)
    assert result["test_unseen_accuracy"] == pytest.approx(1 / 2)
    assert result["test_seen_count"] == 4 and result["test_unseen_count"] == 2
    assert result["test_unseen_rmse"] == pytest.approx(math.sqrt(1 / 2))


def test_metrics_by_seen_empty_group_is_none():
    result = metrics_by_seen(PREDS, LABELS, np.ones(6, dtype=bool))
    assert result["unseen_count"] == 0
    assert result["unseen_accuracy"] is None and result["unseen_macro_f1"] is None and result["unseen_rmse"] is None
    assert result["seen_accuracy"] == result["accuracy"]
    with pytest.raises(ValueError, match="seen_mask"):
        metrics_by_seen(PREDS, LABELS, [True])


def test_seen_mask_from_attribute_ids():
    ids = np.array([[3, 0], [-1, 2], [1, -1], [-1, -1]])
    assert seen_mask_from_attribute_ids(ids).tolist() == [True, False, False, False]  # default: all attributes
    assert seen_mask_from_attribute_ids(ids, 0).tolist() == [True, False, True, False]
    assert seen_mask_from_attribute_ids(ids, [1]).tolist() == [True, True, False, False]
    assert seen_mask_from_attribute_ids([4, -1]).tolist() == [True, False]
    with pytest.raises(ValueError, match="out of range"):
        seen_mask_from_attribute_ids(ids, 2)
