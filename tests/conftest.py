"""Shared fixtures: the real MiniLM backbone (`m2a_hf.training.default_backbone`) and the shared data directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def minilm_path() -> str:
    from m2a_hf.training import default_backbone

    return default_backbone()


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


# ---- hub_endpoint (owner: Hub stand-in / model-card work; keep this block self-contained) --------------------------
# A session-wide local stand-in for the Hugging Face Hub (tests/hub_stand_in.py), on 127.0.0.1 with an OS-chosen port.
# `huggingface_hub` reads HF_ENDPOINT when it is imported, so code that must use the library defaults (model.push_to_hub,
# Trainer.push_to_hub, from_pretrained(repo_id)) runs in a child process:
#
#     from hub_stand_in import read_result, run_with_hub
#     proc = run_with_hub("...python using HF defaults...; emit(result)", hub_endpoint)  # HF_ENDPOINT, HF_TOKEN=dummy,
#     result = read_result(proc)                                                          # HF_HUB_DISABLE_XET=1, ...
#
# In-process code may instead pass `endpoint=hub_endpoint.url` explicitly (HfApi, hf_hub_download).
@pytest.fixture(scope="session")
def hub_endpoint():
    """The running `HubStandIn` (`.url` is the endpoint); stopped and its storage deleted after the session."""
    from hub_stand_in import HubStandIn

    with HubStandIn() as hub:
        yield hub


# ---- end of hub_endpoint block ----------------------------------------------------------------------------------------
