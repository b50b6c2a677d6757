"""`m2a-hf predict`: every input line is checked (strict UTF-8, JSON objects with a string `text`, known attribute
names) before the first model call, errors name the 1-based line, and predictions are computed `--batch_size` lines
at a time and written batch by batch (issue 14 item 8).
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_checkpoint import save_tiny_checkpoint

from m2a_hf import cli
from m2a_hf.hub import _pipeline_module


LINES = [
    {"text": "absolutely love it, best purchase this year.", "user": "u0", "item": "i1"},
    {"text": "it broke within a week.", "attributes": {"user": "someone-new"}},
    {"text": "ok", "user": "u2"},
    {"text": "too small; I returned it and the refund took a month, never again " * 3, "item": "i0", "id": 7},
    {"text": "fine", "attributes": {"user": "u1", "item": None}},
    {"text": "would buy again", "user": 2},
    {"text": "the colour is nothing like the photo", "user": "u1", "item": "i1"},
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, minilm_tokenizer) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("relcli-predict") / "model", minilm_tokenizer)


class ForwardCalls(list):
    """The model calls of the pipeline: each one's batch size and how many lines `watch` (a file) had by then."""

    watch: Path | None = None


@pytest.fixture
def forward_calls(monkeypatch) -> ForwardCalls:
    cls = _pipeline_module().M2ATextClassificationPipeline
    original = cls._forward
    calls = ForwardCalls()

    def spy(self, model_inputs, **kwargs):
        watched = calls.watch
        written = len(watched.read_text().splitlines()) if watched is not None and watched.exists() else None
        calls.append({"batch": int(model_inputs["input_ids"].shape[0]), "written": written})
        return original(self, model_inputs, **kwargs)

    monkeypatch.setattr(cls, "_forward", spy)
    return calls


def _jsonl(records: list[Any]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode("utf-8")


def test_batched_predictions_equal_one_by_one(run, checkpoint, forward_calls):
    stdin = _jsonl(LINES) + b"plain text line, no attributes\n"
    status, batched, err = run(
        "predict", "--model_path", str(checkpoint), "--batch_size", "3", "--top_k", "2", stdin=stdin
    )
    assert status == 0, err
    assert [c["batch"] for c in forward_calls] == [3, 3, 2]
    forward_calls.clear()
    status, single, err = run(
        "predict", "--model_path", str(checkpoint), "--batch_size", "1", "--top_k", "2", stdin=stdin
    )
    assert status == 0, err
    assert [c["batch"] for c in forward_calls] == [1] * 8
    batched_rows = [json.loads(line) for line in batched.splitlines()]
    single_rows = [json.loads(line) for line in single.splitlines()]
    assert len(batched_rows) == len(single_rows) == 8
    for b, s in zip(batched_rows, single_rows, strict=True):
        assert {k: v for k, v in b.items() if k != "prediction"} == {k: v for k, v in s.items() if k != "prediction"}
        assert [p["label"] for p in b["prediction"]] == [p["label"] for p in s["prediction"]]
        assert [p["score"] for p in b["prediction"]] == pytest.approx([p["score"] for p in s["prediction"]], abs=1e-5)
    assert batched_rows[1]["unknown_attributes"] == ["user", "item"]
    assert batched_rows[2]["unknown_attributes"] == ["item"] and batched_rows[3]["id"] == 7
    assert batched_rows[5]["unknown_attributes"] == ["user", "item"]  # user 2 is looked up as "2", not "u2"


def test_batches_are_written_as_they_are_done(run, checkpoint, forward_calls, tmp_path):
    out_file = tmp_path / "predictions.jsonl"
    forward_calls.watch = out_file
    status, out, err = run(
        "predict",
        "--model_path",
        str(checkpoint),
        "--batch_size",
        "2",
        "--output_file",
        str(out_file),
        stdin=_jsonl(LINES),
    )
    assert status == 0, err
    assert [c["written"] for c in forward_calls] == [0, 2, 4, 6]
    assert len(out_file.read_text().splitlines()) == len(LINES)
    assert "7 predictions written to" in out


def test_output_alias_and_default_batch_size(run, checkpoint, forward_calls, tmp_path):
    out_file = tmp_path / "predictions.jsonl"
    status, _, err = run(
        "predict", "--model_path", str(checkpoint), "--output", str(out_file), stdin=_jsonl(LINES * 20)
    )
    assert status == 0, err
    assert [c["batch"] for c in forward_calls] == [64, 64, 12]
    assert len(out_file.read_text().splitlines()) == 140


BAD_LAST_LINES = {
    "not JSON": (b'{"text": "unfinished"', "is not valid JSON"),
    "no text": (b'{"review": "no text field"}', "has no 'text' field"),
    "an array": (b'["text", "user"]', "is a JSON array, not an object"),
    "a JSON string": (b'"just a string"', "is a JSON string, not an object"),
    "text not a string": (b'{"text": 5}', "'text' must be a string, got a JSON number"),
    "attributes not an object": (b'{"text": "x", "attributes": ["u1"]}', "'attributes' must be an object"),
    "nested attribute value": (b'{"text": "x", "user": {"id": 1}}', "attribute 'user' must be a string"),
    "unknown attribute": (b'{"text": "x", "colour": "red"}', "unknown attribute(s) ['colour']"),
    "latin-1": ('{"text": "très bien"}'.encode("latin-1"), "is not valid UTF-8 (byte 0xe8"),
}


@pytest.mark.parametrize("case", list(BAD_LAST_LINES))
def test_a_bad_last_line_fails_before_any_model_call(run, checkpoint, forward_calls, tmp_path, case):
    bad, message = BAD_LAST_LINES[case]
    good = _jsonl([{"text": f"review {i}", "user": f"u{i % 4}"} for i in range(2000)])
    out_file = tmp_path / "predictions.jsonl"
    argv = ["predict", "--model_path", str(checkpoint), "--output_file", str(out_file)]
    status, out, err = run(*argv, stdin=good + bad + b"\n")
    assert status == 2, err
    assert forward_calls == []
    assert not out_file.exists() and out == ""
    line = err.strip().splitlines()
    assert len(line) == 1 and line[0].startswith("m2a-hf predict: error: input line 2001") and message in line[0], err


def test_latin1_file_names_the_line(run, checkpoint, tmp_path, forward_calls):
    source = tmp_path / "reviews.txt"
    source.write_bytes("great value\nnot great\ncafé au lait colour\n".encode("latin-1"))
    status, _, err = run("predict", "--model_path", str(checkpoint), "--input", str(source))
    assert status == 2 and forward_calls == []
    assert "input line 3 is not valid UTF-8 (byte 0xe9" in err and "Traceback" not in err


def test_undecodable_bytes_in_a_text_stdin_name_the_line(checkpoint, capsys, monkeypatch, forward_calls):
    # what a non-UTF-8 locale's stdin gives for Latin-1 input: the byte as a surrogate escape
    monkeypatch.setattr(sys, "stdin", io.StringIO("fine\ncaf\udce9\n"))
    assert cli.main(["predict", "--model_path", str(checkpoint)]) == 2
    assert "input line 2 is not valid UTF-8 (byte 0xe9" in capsys.readouterr().err
    assert forward_calls == []


def test_utf8_with_bom_and_blank_lines(run, checkpoint):
    stdin = b"\xef\xbb\xbf" + _jsonl(LINES[:2]) + b"\n   \n" + "naïve café\n".encode()
    status, out, err = run("predict", "--model_path", str(checkpoint), stdin=stdin)
    assert status == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in rows] == [LINES[0]["text"], LINES[1]["text"], "naïve café"]
