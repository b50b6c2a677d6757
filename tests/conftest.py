"""Shared fixtures and the test tiers.

Tiers: `make test-fast` (`pytest -m "not slow"`) runs the unit tests; `make test` runs everything. Mark a test
`@pytest.mark.slow` when it starts a subprocess, runs a `Trainer` (or any training loop), or round-trips through the
Hub stand-in. Unit tests build models on `tiny_backbone` (a small random BERT with MiniLM's tokenizer, saved once
per session); only tests whose point is the real pretrained weights use `minilm_path` (the default backbone).

Fixtures: `minilm_path`, `minilm_tokenizer` (the real all-MiniLM-L6-v2 folder and its tokenizer), `tiny_backbone`,
`tiny_tokenizer`, `data_dir` (the shared data) and `hub_endpoint` (a local Hub stand-in, see below).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import TINY_BACKBONE


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
def tiny_backbone(minilm_tokenizer, tmp_path_factory) -> str:
    """The folder of a tiny random BERT encoder (`helpers.TINY_BACKBONE`, MiniLM's vocabulary and tokenizer), saved like the
    default backbone (a `BertModel` checkpoint with a pooler and no masked-LM head), for `from_backbone(path)`,
    `ModelArguments(backbone=path)` and `--backbone path`. The weights are seeded: the same in every session."""
    import torch
    from transformers import BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny-backbone")
    config = BertConfig(
        vocab_size=minilm_tokenizer.vocab_size, pad_token_id=minilm_tokenizer.pad_token_id, **TINY_BACKBONE
    )
    with torch.random.fork_rng(devices=[]):  # leave the global RNG of the session as it was
        torch.manual_seed(0)
        BertModel(config).save_pretrained(path)
    minilm_tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_backbone):
    """The tokenizer saved with `tiny_backbone` (MiniLM's), loaded from its folder as the training code does."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_backbone)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data (`m2a_hf.data.resolve_data_dir`: `M2A_DATA_DIR`, else `../shared/data` beside the repository)."""
    from m2a_hf.data import resolve_data_dir

    try:
        return resolve_data_dir()
    except FileNotFoundError as err:
        pytest.fail(str(err))


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


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test (comparisons of logits across processes need the same reduction order)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
