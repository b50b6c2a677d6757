"""Fixtures of the reliability tests: running the CLI in-process."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable

import pytest

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
