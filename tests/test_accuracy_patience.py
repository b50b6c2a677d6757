"""benchmarks/accuracy/patience.py: replaying recorded dev curves with another early-stopping patience must stop
where transformers' EarlyStoppingCallback stops (the protocol's own patience: tests/test_accuracy_runner.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import EarlyStoppingCallback, TrainerControl, TrainerState, TrainingArguments

from benchmarks.accuracy import patience, report


RESULTS = Path(__file__).resolve().parents[1] / "benchmarks/accuracy/results"


def _committed_curves() -> list[list[float]]:
    curves = []
    for path in sorted(RESULTS.glob("*/results*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            curve = ((row.get("dev") or {}).get("stage1") or {}).get("dev_accuracy")
            if curve and len(curve) > 2:
                curves.append(curve)
    return curves


def _callback_stop(curve: list[float], wait: int, tmp_path) -> int:
    """Epochs the Trainer runs with EarlyStoppingCallback(wait): the callback sees each evaluation before the Trainer
    updates `state.best_metric` (Trainer.evaluate, then _determine_best_metric)."""
    args = TrainingArguments(
        output_dir=str(tmp_path),
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model="accuracy",
        report_to=[],
    )
    callback, state, control = EarlyStoppingCallback(early_stopping_patience=wait), TrainerState(), TrainerControl()
    for epoch, value in enumerate(curve, 1):
        callback.on_evaluate(args, state, control, metrics={"eval_accuracy": value})
        if state.best_metric is None or value > state.best_metric:
            state.best_metric = value
        if control.should_training_stop:
            return epoch
    return len(curve)


def test_replay_stops_where_the_callback_stops(tmp_path):
    curves = _committed_curves()
    assert len(curves) >= 20  # the committed rows: FDU-MTL, synthetic, Amazon MI, with dips and ties
    assert any(
        b == a for c in curves for a, b in zip(c[:-1], c[1:], strict=True)
    )  # a tie (the majority-class plateau)
    for curve in curves:
        for wait in (1, 2, 3):
            assert patience.epochs_run(curve, wait) == _callback_stop(curve, wait, tmp_path), (curve, wait)
    with pytest.raises(ValueError, match="at least 1, got 0"):
        patience.epochs_run([0.5, 0.6], 0)


def test_replay_of_the_fdu_4_epoch_rows():
    """Seed 2 of both arms dipped at epoch 2 and peaked later: patience 1 would have kept epoch 1."""
    rows = report.load_rows(RESULTS / "cpu-2026-11-23-fdu-4-epochs/results.jsonl")
    result = patience.replay(rows, 1)
    assert result["same"] == [] and len(result["replayed"]) == 6
    cut = {(e["arm"], e["seed"]): (e["stop"], e["best_at"], e["best"]) for e in result["replayed"] if e["stop"] < 4}
    assert cut == {("lora", 2): (2, 0.85, 0.8825), ("m2a-joint", 2): (2, 0.8475, 0.885)}
    text = patience.render(result, 1)
    assert "Patience 1 would have stopped 2 of them earlier; 2 of those" in text
    assert "85.0 / 84.8 ‖ / 87.0 / 88.2" in text
    # nothing to replay at the patience the rows ran with, only their endings
    assert patience.replay(rows, 2)["replayed"] == [] and len(patience.replay(rows, 2)["same"]) == 6
