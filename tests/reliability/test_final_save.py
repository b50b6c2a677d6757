"""The final save is atomic for readers of `config.json`, and a run never writes over another run's output folder.

A kill (an exception injected) anywhere in `train_m2a`'s final save leaves `<output_dir>` either without `config.json`
or with a complete, loadable model: weights, tokenizer, vocabulary (file and config), metrics, card.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from helpers import one_step_args
from reltrain_helpers import Killed
from transformers import HfArgumentParser, TrainingArguments

import m2a_hf.output_dir as output_dir_module
from m2a_hf import training
from m2a_hf.hub import load_pipeline
from m2a_hf.output_dir import publish
from m2a_hf.training import (
    DataArguments,
    ModelArguments,
    ProcedureArguments,
    overwrite_requested,
    train_baseline,
    train_m2a,
)


COMPLETE = ("model.safetensors", "tokenizer.json", "attribute_vocab.json", "metrics.json", "README.md")


def _procedure(**fields: Any) -> ProcedureArguments:
    """`ProcedureArguments(stage2=False)`; `overwrite` goes wherever this transformers keeps the flag."""
    overwrite = fields.pop("overwrite", False)
    procedure = ProcedureArguments(stage2=False, **fields)
    if overwrite:
        procedure.overwrite_output_dir = True
    return procedure


def _train(backbone: str, data, out: Path, **procedure: Any):
    model_args = ModelArguments(backbone=backbone, lora_rank=4, lora_alpha=8)
    return train_m2a(model_args, DataArguments(max_length=32), one_step_args(out), _procedure(**procedure), data=data)


def _assert_no_model_or_a_complete_one(out: Path, data) -> None:
    assert not list(out.glob(".m2a-final-*"))  # the staging folder is cleaned up
    if not (out / "config.json").exists():
        return
    missing = [name for name in COMPLETE if not (out / name).is_file()]
    assert not missing, f"config.json beside an incomplete model: {missing} missing"
    config = json.loads((out / "config.json").read_text())
    assert config.get("attribute_vocab"), "config.json without the vocabulary"
    pipe = load_pipeline(out)
    user = data["train"][0]["user"]
    assert pipe.attribute_ids_for({"user": user})[0] >= 0
    assert pipe({"text": "fine fabric", "attributes": {"user": user}})["label"]


def _kill_weights(monkeypatch, out: Path) -> None:
    import transformers.modeling_utils as modeling_utils

    def partial_write(tensors: Any, filename: str, *args: Any, **kwargs: Any) -> None:
        Path(filename).write_bytes(b"\0" * 16)  # a torn file, then the process dies
        raise Killed("killed while writing the weights")

    monkeypatch.setattr(modeling_utils, "safe_save_file", partial_write)


def _kill_tokenizer(monkeypatch, out: Path) -> None:
    from transformers import PreTrainedTokenizerBase

    def die(self: Any, *args: Any, **kwargs: Any) -> None:
        raise Killed("killed while saving the tokenizer")

    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", die)


def _kill_metrics(monkeypatch, out: Path) -> None:
    write = training._write_json

    def die_on_metrics(path: Path, payload: Any) -> None:
        if Path(path).name == "metrics.json":
            raise Killed("killed while writing metrics.json")
        write(path, payload)

    monkeypatch.setattr(training, "_write_json", die_on_metrics)


def _kill_while_publishing(monkeypatch, out: Path) -> None:
    replace = os.replace
    moved: list[str] = []

    def replace_then_die(src: Any, dst: Any) -> None:
        if Path(dst).parent == out:  # a move out of the staging folder into the output folder
            moved.append(Path(dst).name)
            if len(moved) == 3:
                raise Killed(f"killed after moving {moved[:-1]}")
        replace(src, dst)

    monkeypatch.setattr(output_dir_module.os, "replace", replace_then_die)


@pytest.mark.parametrize(
    "kill", [_kill_weights, _kill_tokenizer, _kill_metrics, _kill_while_publishing], ids=lambda f: f.__name__[1:]
)
@pytest.mark.slow  # a Trainer run
def test_a_kill_during_the_final_save_leaves_no_config_or_a_complete_model(
    backbone, data, tmp_path, monkeypatch, kill
):
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        kill(patch, out)
        with pytest.raises(Killed):
            _train(backbone, data, out)
    _assert_no_model_or_a_complete_one(out, data)
    result = _train(backbone, data, out, overwrite=True)  # the run can be redone
    assert result.output_dir == str(out)
    _assert_no_model_or_a_complete_one(out, data)
    assert (out / "config.json").is_file()


def test_publish_moves_config_json_last_and_removes_the_old_one_first(tmp_path, monkeypatch):
    out, staging = tmp_path / "out", tmp_path / "out" / ".m2a-final-x"
    staging.mkdir(parents=True)
    (out / "config.json").write_text('{"old": true}')
    (out / "pytorch_model.bin").write_text("old weights of another format")
    for name in ("config.json", "model.safetensors", "metrics.json", "tokenizer.json"):
        (staging / name).write_text(name)
    events: list[str] = []
    replace, unlink = os.replace, Path.unlink

    def recording_replace(src: Any, dst: Any) -> None:
        events.append(f"move {Path(dst).name}")
        replace(src, dst)

    def recording_unlink(self: Path, missing_ok: bool = False) -> None:
        events.append(f"remove {self.name}")
        unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(output_dir_module.os, "replace", recording_replace)
    monkeypatch.setattr(Path, "unlink", recording_unlink)
    publish(staging, out)
    assert events[0] == "remove config.json" and events[-1] == "move config.json"
    assert "remove pytorch_model.bin" in events
    assert (out / "config.json").read_text() == "config.json" and not (out / "pytorch_model.bin").exists()


@pytest.mark.parametrize(
    "previous", ["config.json", "metrics.json", "checkpoint-3/", "stage2/checkpoint-2/"], ids=lambda p: p.strip("/")
)
def test_a_new_run_into_a_folder_with_another_run_is_refused(backbone, data, tmp_path, previous):
    out = tmp_path / "run"
    target = out / previous.rstrip("/")
    if previous.endswith("/"):
        target.mkdir(parents=True)
    else:
        out.mkdir()
        target.write_text("{}")
    with pytest.raises(FileExistsError, match="overwrite_output_dir") as error:
        _train(backbone, data, out)
    assert str(out) in str(error.value) and previous.rstrip("/") in str(error.value)
    with pytest.raises(FileExistsError, match=str(out)):
        train_baseline(ModelArguments(backbone=backbone), DataArguments(), one_step_args(out), _procedure(), data=data)
    assert target.exists()  # nothing was touched


@pytest.mark.slow  # a Trainer run
def test_overwrite_output_dir_replaces_the_previous_run(backbone, data, tmp_path):
    out = tmp_path / "run"
    (out / "checkpoint-3").mkdir(parents=True)
    (out / "stage2" / "checkpoint-2").mkdir(parents=True)
    (out / "metrics.json").write_text('{"old": true}')
    _train(backbone, data, out, overwrite=True)
    assert not (out / "checkpoint-3").exists() and not (out / "stage2").exists()  # no mix with the old run
    assert json.loads((out / "metrics.json").read_text()) != {"old": True}
    _assert_no_model_or_a_complete_one(out, data)


def test_the_command_line_accepts_overwrite_output_dir(tmp_path):
    parser = HfArgumentParser((ModelArguments, DataArguments, ProcedureArguments, TrainingArguments))
    parsed = parser.parse_args_into_dataclasses(["--output_dir", str(tmp_path), "--overwrite_output_dir"])
    assert overwrite_requested(parsed[3], parsed[2])
    parsed = parser.parse_args_into_dataclasses(["--output_dir", str(tmp_path)])
    assert not overwrite_requested(parsed[3], parsed[2])


def test_cli_refuses_a_used_output_dir_before_loading_data(tmp_path, capsys, monkeypatch):
    from m2a_hf import cli

    (tmp_path / "metrics.json").write_text("{}")
    monkeypatch.setattr(cli, "_load_checked_data", lambda *a, **k: pytest.fail("data loaded before the check"))
    assert cli.main(["train", "--output_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already holds a training run" in err and "--overwrite_output_dir" in err
