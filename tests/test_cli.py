"""The `m2a-hf` command line end to end: train a few steps -> evaluate -> predict -> reload through the Auto classes.

Every command runs in a child process (`slow`), on the tiny random backbone (`--backbone`); the default backbone's
end-to-end run is the example script's (tests/test_examples.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import thread_env


def m2a_hf(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", **thread_env()}
    return subprocess.run(
        [sys.executable, "-m", "m2a_hf.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def trained_dir(tiny_backbone, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "model"
    flags = (
        "--dataset synthetic --max_train_samples 96 --max_eval_samples 48 --max_length 32 --lora_rank 4 "
        "--lora_alpha 8 --training_policy stochastic --max_steps 4 --per_device_train_batch_size 8 "
        "--eval_strategy steps --eval_steps 2 --save_strategy steps --save_steps 2 --disable_tqdm True "
        "--seen_attribute user"
    )
    result = m2a_hf("train", *flags.split(), "--backbone", tiny_backbone, "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-4000:]
    assert "M2A (fine view)" in result.stdout and "M2A (coarse view)" in result.stdout
    return out


@pytest.mark.slow
def test_train_writes_a_hub_ready_checkpoint(trained_dir):
    files = {p.name for p in trained_dir.iterdir()}
    expected = set(
        "config.json model.safetensors configuration_m2a.py modeling_m2a.py pipeline_m2a.py tokenizer.json "
        "attribute_vocab.json README.md metrics.json training_curves.png".split()
    )
    assert expected <= files, expected - files
    config = json.loads((trained_dir / "config.json").read_text())
    assert config["custom_pipelines"]["text-classification"]["impl"] == "pipeline_m2a.M2ATextClassificationPipeline"
    assert [a["name"] for a in config["attributes"]] == ["user", "item"]
    assert config["id2label"]["0"] == "1 star" and config["label2id"]["5 stars"] == 4  # ratings, not LABEL_i
    metrics = json.loads((trained_dir / "metrics.json").read_text())
    assert {"stage1", "stage2", "test"} <= set(metrics)
    for view in ("fine", "coarse"):
        assert 0.0 <= metrics["test"][view]["accuracy"] <= 1.0
        # the synthetic test split holds reviews of users never seen in training
        assert metrics["test"][view]["unseen_count"] > 0 and metrics["test"][view]["seen_count"] > 0
    assert "trust_remote_code=True" in (trained_dir / "README.md").read_text()


@pytest.mark.slow
def test_evaluate_reports_both_views(trained_dir, tmp_path):
    out_file = tmp_path / "eval.json"
    flags = "--dataset synthetic --max_eval_samples 40 --max_length 32 --split validation --seen_attribute user"
    result = m2a_hf("evaluate", "--model_path", str(trained_dir), "--output_file", str(out_file), *flags.split())
    assert result.returncode == 0, result.stderr[-4000:]
    metrics = json.loads(out_file.read_text())
    assert set(metrics) == {"fine", "coarse"}
    assert metrics["fine"]["seen_count"] + metrics["fine"]["unseen_count"] == 40


@pytest.mark.slow
def test_predict_from_stdin_with_known_and_unknown_values(trained_dir):
    vocab = json.loads((trained_dir / "attribute_vocab.json").read_text())
    values = {a["name"]: a["values"] for a in vocab["attributes"]}
    user, item = values["user"][0], values["item"][0]  # values seen in training
    assert "no-such-item" not in values["item"]
    lines = [
        json.dumps({"text": "absolutely love it, best purchase this year.", "user": user, "item": item}),
        json.dumps({"text": "it broke within a week.", "attributes": {"user": "someone-new"}}),
        "plain text line, no attributes at all",
        json.dumps({"text": "works well so far", "attributes": {"user": user, "item": "no-such-item"}}),
    ]
    result = m2a_hf("predict", "--model_path", str(trained_dir), stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr[-4000:]
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(rows) == 4
    labels = set(json.loads((trained_dir / "config.json").read_text())["id2label"].values())
    for row in rows:
        assert row["prediction"]["label"] in labels and 0.0 <= row["prediction"]["score"] <= 1.0
    assert rows[0]["unknown_attributes"] == []  # both values known
    assert rows[1]["unknown_attributes"] == ["user", "item"]  # an unseen user, no item
    assert rows[2]["unknown_attributes"] == ["user", "item"]  # no attributes
    assert rows[3]["unknown_attributes"] == ["item"]  # a known user with an unseen item


@pytest.mark.slow
def test_predict_rejects_bad_input_clearly(trained_dir):
    result = m2a_hf("predict", "--model_path", str(trained_dir), stdin='{"text": "ok"\n')
    assert result.returncode != 0 and "input line 1 is not valid JSON" in result.stderr
    result = m2a_hf("predict", "--model_path", str(trained_dir), stdin='{"review": "no text field"}\n')
    assert result.returncode != 0 and "input line 1 has no 'text' field" in result.stderr


@pytest.mark.slow
def test_trained_checkpoint_reloads_through_auto_classes(trained_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from m2a_hf import M2AForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(trained_dir)
    enc = tokenizer(["works well so far", "the worst purchase"], return_tensors="pt", padding=True)
    ids = torch.tensor([[0, 1], [-1, -1]])
    remote = AutoModelForSequenceClassification.from_pretrained(trained_dir, trust_remote_code=True).eval()
    local = M2AForSequenceClassification.from_pretrained(trained_dir).eval()
    with torch.no_grad():
        torch.testing.assert_close(remote(**enc, attribute_ids=ids).logits, local(**enc, attribute_ids=ids).logits)


@pytest.mark.slow
def test_cli_usage_and_unknown_command():
    result = m2a_hf("frobnicate")
    assert result.returncode == 2 and "unknown command 'frobnicate'" in result.stderr and result.stdout == ""
    result = m2a_hf("--help")
    assert result.returncode == 0 and "usage: m2a-hf" in result.stdout


def test_cli_usage_in_process(capsys):
    from m2a_hf.cli import main

    assert main(["frobnicate"]) == 2 and "unknown command 'frobnicate'" in capsys.readouterr().err
    assert main([]) == 2 and "usage: m2a-hf" in capsys.readouterr().err  # usage of an error goes to stderr
    assert main(["--help"]) == 0 and "usage: m2a-hf" in capsys.readouterr().out


def test_training_view_flag_is_a_deprecated_alias_of_training_policy():
    from m2a_hf.cli_arguments import _parser
    from m2a_hf.training import ModelArguments

    with pytest.warns(FutureWarning, match=r"`--training_view` is deprecated and was renamed `--training_policy`"):
        (args,) = _parser(ModelArguments).parse_args_into_dataclasses(["--training_view", "stochastic"])
    assert args.training_policy == "stochastic" and args.training_view is None
    assert args.config_overrides()["training_policy"] == "stochastic"
    (args,) = _parser(ModelArguments).parse_args_into_dataclasses(["--training_policy", "fine"])
    assert args.training_policy == "fine" and "training_view" not in args.config_overrides()
