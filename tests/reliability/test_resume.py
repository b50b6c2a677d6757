"""`--resume_from_checkpoint` continues a killed run: the same final parameters and losses as an uninterrupted run.

A run is "killed" by a callback that raises right after the Trainer saved the checkpoint of step N/2; it is then
resumed from that checkpoint (or `True`: the last one). Dropout is replayed through the Trainer's `rng_state.pth`.
Mid-epoch runs set `mlm_probability=0`: the collator's masked-LM draws of a resumed epoch are not replayable (the
Trainer restores the RNG only after the first resumed batch is collated), so the MLM case resumes at an epoch boundary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from reltrain_helpers import KillAfterSave, Killed, StepCounter, synthetic_slice
from transformers import Trainer, TrainerCallback

from m2a_hf import training
from m2a_hf.training import DataArguments, ModelArguments, ProcedureArguments, train_m2a, training_arguments


pytestmark = pytest.mark.slow  # every test here runs the Trainer


@pytest.fixture(scope="module")
def data():
    return synthetic_slice()  # 48 training rows: 6 steps of 8 per epoch


def _args(out: Path, strategy: str, **overrides: Any):
    return training_arguments(
        output_dir=str(out),
        num_train_epochs=2,
        per_device_train_batch_size=8,
        eval_strategy=strategy,
        eval_steps=3,
        save_strategy=strategy,
        save_steps=3,
        logging_steps=1,
        learning_rate=3e-3,
        load_best_model_at_end=False,  # the final parameters are the last step's, not a reloaded best checkpoint
        disable_tqdm=True,
        dataloader_pin_memory=False,
        **overrides,
    )


def _with_callback(monkeypatch, callback: TrainerCallback) -> None:
    """Every Trainer that `train_m2a` builds gets `callback` too."""
    build = training._trainer

    def with_callback(*a: Any, **k: Any) -> Trainer:
        trainer = build(*a, **k)
        trainer.add_callback(callback)
        return trainer

    monkeypatch.setattr(training, "_trainer", with_callback)


def _killed_run(monkeypatch, step: int, suffix: str, *args: Any, **kwargs: Any) -> None:
    with monkeypatch.context() as patch:
        _with_callback(patch, KillAfterSave(step, suffix))
        with pytest.raises(Killed):
            train_m2a(*args, **kwargs)


def _losses(history: list[dict[str, Any]]) -> list[tuple[int, int, float]]:
    return [(h.get("stage", 1), h["step"], h["loss"]) for h in history if "loss" in h]


def _assert_same_losses(resumed: list[dict[str, Any]], straight: list[dict[str, Any]], after_step: int = 0) -> None:
    got = [entry for entry in _losses(resumed) if entry[0] == 2 or entry[1] > after_step]
    expected = [entry for entry in _losses(straight) if entry[0] == 2 or entry[1] > after_step]
    assert [e[:2] for e in got] == [e[:2] for e in expected]
    torch.testing.assert_close([e[2] for e in got], [e[2] for e in expected], atol=1e-5, rtol=0)


def _assert_same_model(straight, resumed) -> None:
    """Every parameter stage 1 trains (adapters, value embeddings, heads, LayerNorms; stage 2's modules among them)."""
    expected = dict(straight.model.named_parameters())
    trained = set(straight.model.adapter_parameter_names(1))
    for name, param in resumed.model.named_parameters():
        if name in trained:
            torch.testing.assert_close(param, expected[name], atol=1e-5, rtol=0, msg=name)


@pytest.mark.parametrize(
    ("strategy", "mlm", "kill_step"),
    [("steps", 0.0, 3), ("epoch", 0.15, 6)],
    ids=["mid-epoch", "epoch-boundary-with-mlm"],
)
def test_stage1_resume_matches_an_uninterrupted_run(backbone, data, tmp_path, monkeypatch, strategy, mlm, kill_step):
    model_args = ModelArguments(backbone=backbone, lora_rank=4, lora_alpha=8)
    data_args = DataArguments(dataset="synthetic", max_length=32, mlm_probability=mlm)
    procedure = ProcedureArguments(stage2=False)
    straight = train_m2a(model_args, data_args, _args(tmp_path / "straight", strategy), procedure, data=data)

    out = tmp_path / "killed"
    _killed_run(monkeypatch, kill_step, "killed", model_args, data_args, _args(out, strategy), procedure, data=data)
    assert not (out / "config.json").exists()  # killed before the final save
    checkpoint = out / f"checkpoint-{kill_step}"
    resume_args = _args(out, strategy, resume_from_checkpoint=str(checkpoint))
    counter = StepCounter()
    with monkeypatch.context() as patch:
        _with_callback(patch, counter)
        resumed = train_m2a(model_args, data_args, resume_args, procedure, data=data)
    assert counter.steps == 12 - kill_step  # only the steps after the checkpoint ran

    # one entry per step, steps 1..N/2 from the checkpoint's history: training did not start again at step 1
    assert [step for _, step, _ in _losses(resumed.log_history)] == list(range(1, 13))
    _assert_same_losses(resumed.log_history, straight.log_history, after_step=kill_step)
    _assert_same_model(straight, resumed)
    assert resumed.metrics["test"] == straight.metrics["test"]


def test_stage2_checkpoint_skips_stage1_and_matches_an_uninterrupted_run(backbone, data, tmp_path, monkeypatch):
    """Resuming from `<out>/stage2/checkpoint-*` (here through `True`) trains no stage-1 step; stage 1's metrics,
    history and the keep-or-revert inputs come from what stage 2 stored when it began."""
    evaluate = Trainer.evaluate

    def beatable_start(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        metrics = evaluate(self, *args, **kwargs)
        if self.state.global_step == 0:  # stage 2's "before": made low so that stage 2 is kept
            metrics["eval_accuracy"] = -1.0
        return metrics

    monkeypatch.setattr(Trainer, "evaluate", beatable_start)
    model_args = ModelArguments(backbone=backbone, lora_rank=4, lora_alpha=8)
    data_args = DataArguments(dataset="synthetic", max_length=32, mlm_probability=0.0, seen_attribute="user")
    procedure = ProcedureArguments(stage2_epochs=1, stage2_learning_rate=1e-2)
    straight = train_m2a(model_args, data_args, _args(tmp_path / "straight", "steps"), procedure, data=data)
    assert straight.metrics["stage2_dev_accuracy"]["kept"] is True

    out = tmp_path / "killed"
    _killed_run(monkeypatch, 3, "stage2", model_args, data_args, _args(out, "steps"), procedure, data=data)
    assert (out / "stage2" / "checkpoint-3").is_dir() and (out / "stage2" / "stage1_result.json").is_file()

    trained: list[str] = []
    train = Trainer.train

    def recording_train(self, *args: Any, **kwargs: Any):
        trained.append(Path(self.args.output_dir).name)
        return train(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train", recording_train)
    resumed = train_m2a(
        model_args, data_args, _args(out, "steps", resume_from_checkpoint="True"), procedure, data=data
    )
    assert trained == ["stage2"]  # stage 1 was not trained again

    assert resumed.metrics["stage1"] == straight.metrics["stage1"]
    assert resumed.metrics["stage2_dev_accuracy"] == straight.metrics["stage2_dev_accuracy"]
    assert resumed.metrics["test"] == straight.metrics["test"]
    _assert_same_losses(resumed.log_history, straight.log_history)
    _assert_same_model(straight, resumed)
    for view, predicted in straight.test_predictions.items():
        assert resumed.test_predictions[view].tolist() == predicted.tolist()
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["stage2_dev_accuracy"]["kept"] is True


def test_resume_true_without_a_checkpoint_is_an_error(backbone, data, tmp_path):
    args = _args(tmp_path / "empty", "steps", resume_from_checkpoint="True")
    with pytest.raises(FileNotFoundError, match="no checkpoint-"):
        train_m2a(ModelArguments(backbone=backbone), DataArguments(), args, ProcedureArguments(), data=data)


def test_resume_from_a_folder_that_is_not_a_checkpoint_is_an_error(backbone, data, tmp_path):
    (tmp_path / "checkpoint-7").mkdir()
    args = _args(tmp_path, "steps", resume_from_checkpoint=str(tmp_path / "checkpoint-7"))
    with pytest.raises(FileNotFoundError, match="trainer_state.json"):
        train_m2a(ModelArguments(backbone=backbone), DataArguments(), args, ProcedureArguments(), data=data)
