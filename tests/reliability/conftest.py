"""Fixtures of the reliability tests: running the CLI in-process, a tiny backbone and a small synthetic slice."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable

import pytest
from reltrain_helpers import make_tiny_backbone, synthetic_slice

from m2a_hf import cli


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys, monkeypatch) -> Run:
    """`run(*argv, stdin=b"...")` -> (exit status, stdout, stderr) of `cli.main`."""

    def _run(*argv: str, stdin: bytes = b"") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
        capsys.readouterr()
        status = cli.main(list(argv))
        out, err = capsys.readouterr()
        return status, out, err

    return _run


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> str:
    """A tiny random BERT saved with a tokenizer (see `reltrain_helpers.make_tiny_backbone`)."""
    return make_tiny_backbone(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def data():
    """16 / 8 / 8 rows of the synthetic reviews (modules that need more override this fixture)."""
    return synthetic_slice(train=16, dev=8, test=8)
