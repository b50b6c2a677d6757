"""Multi-process training on CPU: `torchrun --nproc_per_node 2 -m m2a_hf.cli train ... --use_cpu True` (gloo).

Two processes with 4 samples each train the same model as one process with the same 8 samples: one full-batch step
(the data order then does not matter), dropout off, no masked-LM term (its mean over masked tokens is not a mean over
samples, so it would not split evenly), same seed. Only the main process writes the model, card and results; a
launch that would train independent copies (no `--use_cpu True` on a machine without GPUs) is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from helpers import TINY_BACKBONE, one_step_args, thread_env
from safetensors.torch import load_file
from transformers import TrainingArguments

from m2a_hf import cli
from m2a_hf.distributed import check_launch, is_main_process, wait_for_everyone


TRAIN = (
    "train --dataset synthetic --max_train_samples 8 --max_eval_samples 8 --max_length 32 --lora_rank 4 "
    "--lora_alpha 8 --lora_dropout 0 --mlm_probability 0 --eval_strategy no --save_strategy no "
    "--load_best_model_at_end False --disable_tqdm True --seed 0 --report_to none"
).split()


@pytest.fixture(scope="module")
def backbone(minilm_tokenizer, tmp_path_factory) -> str:
    """A tiny random BERT without dropout (so that the runs compare exactly), with MiniLM's tokenizer."""
    from transformers import BertConfig, BertForMaskedLM

    path = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    config = BertConfig(
        vocab_size=len(minilm_tokenizer),
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        max_position_embeddings=64,
        **TINY_BACKBONE,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        BertForMaskedLM(config).save_pretrained(path)
    minilm_tokenizer.save_pretrained(path)
    return str(path)


def _torchrun(*argv: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python -m torch.distributed.run --standalone --nproc_per_node 2 -m m2a_hf.cli *argv` (a free port)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", **thread_env()}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return subprocess.run(
        [*command, "-m", "m2a_hf.cli", *argv], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


@pytest.mark.slow
def test_two_cpu_processes_train_the_same_model_as_one_with_the_same_batch(backbone, tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    common = [*TRAIN, "--backbone", backbone, "--max_steps", "1", "--use_cpu", "True"]
    result = _torchrun(*common, "--per_device_train_batch_size", "4", "--output_dir", str(two))
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert result.stdout.count("saved to") == 1  # only the main process reports (and writes) the final model
    assert cli.main([*common, "--per_device_train_batch_size", "8", "--output_dir", str(one)]) == 0

    assert not list(two.glob(".m2a-final-*")) and (two / "stage2" / "stage1_result.json").is_file()
    trained, reference = load_file(two / "model.safetensors"), load_file(one / "model.safetensors")
    assert trained.keys() == reference.keys()
    for name, tensor in reference.items():
        torch.testing.assert_close(
            trained[name], tensor, rtol=1e-4, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}"
        )
    metrics = [json.loads((folder / "metrics.json").read_text())["test"] for folder in (two, one)]
    assert metrics[0] == metrics[1]  # the evaluation gathered every test row from both processes
    assert metrics[0]["fine"]["seen_count"] + metrics[0]["fine"]["unseen_count"] == 8


@pytest.mark.slow
def test_stochastic_policy_trains_under_ddp_without_searching_unused_parameters(backbone, tmp_path):
    """One sample per process and step: a step often routes every row to one view, so adapters go unused. Needs the
    routing fix of modeling_m2a.py (every adapter in the graph each step); before it, DDP fails at step 2."""
    out = tmp_path / "out"
    result = _torchrun(
        *TRAIN,
        *("--backbone", backbone, "--use_cpu", "True", "--max_steps", "3", "--per_device_train_batch_size", "1"),
        *("--training_policy", "stochastic", "--ddp_find_unused_parameters", "False", "--stage2", "False"),
        *("--output_dir", str(out)),
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert (out / "config.json").is_file()


@pytest.mark.slow
def test_torchrun_on_cpus_without_use_cpu_is_refused(backbone, tmp_path):
    out = tmp_path / "out"
    result = _torchrun(*TRAIN, "--backbone", backbone, "--max_steps", "1", "--output_dir", str(out))
    assert result.returncode != 0
    assert "WORLD_SIZE=2" in result.stderr and "add `--use_cpu True`" in result.stderr, result.stderr[-4000:]
    assert "m2a_hf/" not in result.stderr  # a usage error, no traceback through our code
    assert not (out / "config.json").exists() and not list(out.glob("checkpoint-*"))


def test_check_launch_refuses_a_multi_process_launch_without_distributed_training(tmp_path, monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    check_launch(args)  # one process: nothing to refuse
    assert is_main_process(args)
    wait_for_everyone(args)  # a no-op in one process
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it; these arguments set up no process group
    with pytest.raises(ValueError, match=r"WORLD_SIZE=2 .*parallel_mode='not_parallel'.*add `--use_cpu True`"):
        check_launch(args)


@pytest.mark.slow
def test_a_process_other_than_the_main_one_trains_but_writes_no_final_outputs(backbone, tmp_path, monkeypatch):
    from m2a_hf import training
    from m2a_hf.training import DataArguments, ModelArguments, ProcedureArguments, train_m2a

    monkeypatch.setattr(training, "is_main_process", lambda args: False)
    out = tmp_path / "out"
    args = one_step_args(out, use_cpu=True)
    model_args = ModelArguments(backbone=backbone, lora_rank=4, lora_alpha=8)
    data_args = DataArguments(max_length=32, max_train_samples=8, max_eval_samples=8)
    result = train_m2a(model_args, data_args, args, ProcedureArguments())
    fine = result.metrics["test"]["fine"]
    assert fine["seen_count"] + fine["unseen_count"] == 8 and "stage2_dev_accuracy" in result.metrics
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == []  # no model, card, metrics, curves, nor stage 2's handoff files
