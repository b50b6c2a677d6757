"""Helpers shared by the tests (imported as `helpers`: tests/ is on `sys.path`, like `hub_stand_in`)."""

from __future__ import annotations


TINY_BACKBONE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
"""The shape of the `tiny_backbone` fixture (a BERT with MiniLM's vocabulary)."""


def thread_env() -> dict[str, str]:
    """The parent's thread settings, for a child process whose numbers are compared with the parent's.

    Float results depend on the intra-op thread count (a child started with another count differs by ~1e-7), so the
    child's `OMP_NUM_THREADS` and `MKL_NUM_THREADS` are the parent's `torch.get_num_threads()` at the time of the call
    (a test may have changed it since start-up); torch in the child starts with that many threads.
    """
    import torch

    threads = str(torch.get_num_threads())
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
