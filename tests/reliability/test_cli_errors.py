"""`m2a-hf` user errors: one line on stderr saying what is wrong and what is expected, exit status 2; the traceback
only with `--debug`; an internal error still propagates with its traceback (issue 14 items 7 and 9).

In process (`m2a_hf.cli.main`), except one subprocess test for the real exit status and stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_checkpoint import MAX_POSITIONS, VOCAB, save_tiny_checkpoint, tiny_backbone_config

from m2a_hf import cli, cli_input


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, minilm_tokenizer) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("relcli") / "model", minilm_tokenizer)


def assert_one_line_error(status: int, err: str, *fragments: str) -> str:
    """Exit status 2 and exactly one stderr line, `m2a-hf <command>: error: ...`, holding every fragment."""
    lines = err.strip().splitlines()
    assert status == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err and ": error: " in lines[0], err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def test_unknown_flag_names_it_and_suggests_the_closest(run, checkpoint):
    status, _, err = run("predict", "--model_path", str(checkpoint), "--modl", "3")
    line = assert_one_line_error(status, err, "m2a-hf predict: error:", "--modl 3", "did you mean --model_path?")
    assert "--help" in line


def test_malformed_and_missing_values(run, checkpoint):
    status, _, err = run("predict", "--model_path", str(checkpoint), "--top_k", "abc")
    assert_one_line_error(status, err, "--top_k", "invalid int value: 'abc'")
    status, _, err = run("predict")
    assert_one_line_error(status, err, "required", "--model_path")


def test_missing_input_file(run, checkpoint, tmp_path):
    missing = tmp_path / "nope.jsonl"
    status, _, err = run("predict", "--model_path", str(checkpoint), "--input", str(missing))
    assert_one_line_error(status, err, "--input", str(missing), "no such file")


def test_bad_view(run, checkpoint):
    status, _, err = run("predict", "--model_path", str(checkpoint), "--view", "fancy")
    assert_one_line_error(status, err, "--view", "'fancy'", "fine, coarse, iid")


@pytest.mark.parametrize("top_k", ["0", "-3"])
def test_top_k_below_one(run, checkpoint, top_k):
    status, _, err = run("predict", "--model_path", str(checkpoint), "--top_k", top_k)
    assert_one_line_error(status, err, "--top_k must be at least 1", top_k)


def test_unknown_attribute_name_names_the_line(run, checkpoint):
    stdin = b'{"text": "fine", "user": "u1"}\n{"text": "bad", "colour": "red"}\n'
    status, out, err = run("predict", "--model_path", str(checkpoint), stdin=stdin)
    assert_one_line_error(status, err, "input line 2", "unknown attribute(s) ['colour']", str(sorted(VOCAB)[::-1]))
    assert out == ""


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_missing_output_folder(run, checkpoint, tmp_path, command):
    target = tmp_path / "no-such-folder" / "out.json"
    status, _, err = run(command, "--model_path", str(checkpoint), "--output_file", str(target))
    assert_one_line_error(status, err, "--output_file", "does not exist")


@pytest.mark.parametrize("command", ["predict", "evaluate", "push"])
def test_model_path_that_is_no_folder_and_no_repo_id(run, tmp_path, command):
    missing = str(tmp_path / "models" / "typo")  # an absolute path: not a Hub repo id
    argv = [command, "--model_path", missing] + (["--repo_id", "me/m2a"] if command == "push" else [])
    status, _, err = run(*argv)
    line = assert_one_line_error(status, err, "--model_path", "no such model folder", missing)
    assert "Repo id must be in the form" not in line


def test_model_path_that_is_a_file_or_a_folder_without_config(run, tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    status, _, err = run("predict", "--model_path", str(tmp_path / "weights.bin"))
    assert_one_line_error(status, err, "is a file", "config.json")
    status, _, err = run("predict", "--model_path", str(tmp_path))
    assert_one_line_error(status, err, "folder without config.json")


def test_model_path_of_another_model_type(run, tmp_path):
    tiny_backbone_config().save_pretrained(tmp_path)
    status, _, err = run("predict", "--model_path", str(tmp_path))
    assert_one_line_error(status, err, "not an M2A checkpoint", "'bert'")


def test_model_path_under_an_existing_local_folder_is_a_path(run, tmp_path, monkeypatch):
    (tmp_path / "outputs").mkdir()
    monkeypatch.chdir(tmp_path)
    status, _, err = run("evaluate", "--model_path", "outputs/typo")
    assert_one_line_error(status, err, "no such model folder 'outputs/typo'")


def test_unknown_command_and_usage_go_to_stderr(run):
    status, out, err = run("frobnicate")
    assert_one_line_error(status, err, "unknown command 'frobnicate'", "train, evaluate, predict, demo, push")
    assert out == ""
    status, out, err = run("predcit")
    assert_one_line_error(status, err, "did you mean 'predict'?")
    status, out, err = run()
    assert status == 2 and out == "" and err.startswith("usage: m2a-hf")
    status, out, err = run("--help")
    assert status == 0 and out.startswith("usage: m2a-hf") and "--debug" in out and err == ""


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(run, checkpoint, where):
    argv = ["predict", "--model_path", str(checkpoint), "--top_k", "0"]
    argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
    status, _, err = run(*argv)
    assert status == 2
    assert "Traceback" in err and "UsageError" in err
    assert err.strip().splitlines()[-1] == "m2a-hf predict: error: --top_k must be at least 1, got 0."


def test_debug_after_train_with_a_value_stays_a_trainer_flag():
    assert cli.split_debug_flag(["train", "--debug", "underflow_overflow", "--max_steps", "1"]) == (
        False,
        ["train", "--debug", "underflow_overflow", "--max_steps", "1"],
    )
    assert cli.split_debug_flag(["train", "--debug", "--max_steps", "1"]) == (True, ["train", "--max_steps", "1"])
    assert cli.split_debug_flag(["predict", "--debug", "x"]) == (True, ["predict", "x"])


def test_internal_error_keeps_its_traceback(run, checkpoint, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug, not a user error")

    monkeypatch.setattr("m2a_hf.hub.load_pipeline", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        run("predict", "--model_path", str(checkpoint), stdin=b"some text\n")


def test_max_length_beyond_the_backbone_fails_before_training(run, tmp_path, monkeypatch):
    backbone = tmp_path / "backbone"
    tiny_backbone_config().save_pretrained(backbone)  # a config is all the check reads

    def never(*args, **kwargs):
        raise AssertionError("the check must come before loading data and training")

    monkeypatch.setattr(cli, "load_data", never)
    monkeypatch.setattr(cli, "train_m2a", never)
    argv = ["--backbone", str(backbone), "--output_dir", str(tmp_path / "out")]
    status, _, err = run("train", *argv, "--max_length", str(MAX_POSITIONS + 1))
    assert_one_line_error(status, err, f"--max_length {MAX_POSITIONS + 1}", f"--max_length {MAX_POSITIONS} or less")
    status, _, err = run("demo", *argv, "--max_length", "1000")
    assert_one_line_error(status, err, "--max_length 1000", str(MAX_POSITIONS))


def test_max_length_beyond_the_model_fails_before_evaluating(run, checkpoint):
    status, _, err = run("evaluate", "--model_path", str(checkpoint), "--max_length", "512")
    assert_one_line_error(status, err, "--max_length 512", f"--max_length {MAX_POSITIONS} or less")


def test_max_positions_of_roberta_like_encoders():
    from transformers import RobertaConfig

    assert cli_input.max_positions(RobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512
    assert cli_input.max_positions(tiny_backbone_config()) == MAX_POSITIONS


def _table(path: Path, rows: int = 30) -> Path:
    lines = ["text,label,user,item"]
    lines += [
        f"review {i} {'great' if i % 2 else 'awful'},{'pos' if i % 2 else 'neg'},u{i % 4},i{i % 3}"
        for i in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_evaluate_defaults_to_the_models_attributes(run, checkpoint, tmp_path):
    table = _table(tmp_path / "reviews.csv")
    out_file = tmp_path / "metrics.json"
    flags = ["--dataset", str(table), "--text_column", "text", "--label_column", "label", "--max_length", "32"]
    status, _, err = run("evaluate", "--model_path", str(checkpoint), *flags, "--output_file", str(out_file))
    assert status == 0, err
    fine = json.loads(out_file.read_text())["fine"]
    # u3 and i2 are not in the vocabulary: the attributes were read, so some rows are seen and some are not
    assert fine["seen_count"] > 0 and fine["unseen_count"] > 0


def test_evaluate_checks_split_and_seen_attribute_first(run, checkpoint, tmp_path):
    status, _, err = run("evaluate", "--model_path", str(checkpoint), "--split", "dev")
    assert_one_line_error(status, err, "--split", "train, validation, test")
    table = _table(tmp_path / "reviews.csv")
    flags = ["--dataset", str(table), "--text_column", "text", "--label_column", "label", "--max_length", "32"]
    status, _, err = run("evaluate", "--model_path", str(checkpoint), *flags, "--seen_attribute", "colour")
    assert_one_line_error(status, err, "--seen_attribute 'colour'", "['user', 'item']")


def test_table_file_without_columns(run, checkpoint, tmp_path):
    table = _table(tmp_path / "reviews.csv")
    status, _, err = run("evaluate", "--model_path", str(checkpoint), "--dataset", str(table), "--max_length", "32")
    assert_one_line_error(status, err, "is a table file", "--text_column")


@pytest.mark.slow
def test_real_process_exit_status_and_stderr(checkpoint, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "m2a_hf.cli", "predict", "--model_path", str(checkpoint), "--bogus", "1"]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert_one_line_error(result.returncode, result.stderr, "m2a-hf predict: error: unrecognized", "--bogus 1")
