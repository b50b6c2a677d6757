"""The performance targets, in one place: step and inference time of M2A against peft LoRA r=128 at M2A's placement.

Both reports judge these numbers: `interleaved.py` (every arm in one process, taking turns step by step: the ratios
to trust on a shared machine) and `report.py` (one process per arm, which adds the memory figures and the
materialised-Kronecker comparison). Set by issue 17 (MiniLM and BERT-base, batch 8, eager).
"""

from __future__ import annotations


REFERENCE_ARM = "lora_r128"
"""The arm every ratio is taken against (the perf runner's name for it; the interleaved runner's baseline too)."""

RATIO_TARGETS: dict[tuple[str, int], dict[tuple[str, str], float]] = {
    ("minilm", 128): {
        ("train", "m2a_fine"): 1.25,
        ("train", "m2a_stochastic"): 1.3,
        ("train", "m2a_joint"): 2.3,
        ("inference", "m2a_fine"): 1.1,
    },
    ("bert-base", 256): {("train", "m2a_fine"): 1.15},
}
"""(backbone, seq_len) -> {(phase, arm): highest time ratio against `REFERENCE_ARM`}; phase is "train" (one
optimiser step) or "inference" (one batch). Eager mode only: compiled runs are reported, not judged."""


def ratio_targets(backbone: str, seq_len: int) -> dict[tuple[str, str], float]:
    """The targets of one setting (empty when none is set for it)."""
    return RATIO_TARGETS.get((backbone, seq_len), {})


__all__ = ["RATIO_TARGETS", "REFERENCE_ARM", "ratio_targets"]
