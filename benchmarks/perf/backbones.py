"""The perf benchmark's backbones by name (plain data: `run.py` reads it without importing torch)."""

from __future__ import annotations

from typing import Any


SYNTHETIC_BACKBONES: dict[str, tuple[str, dict[str, Any]]] = {
    "bert-base": (
        "bert",
        {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
    ),
    # decoders at MiniLM's scale (hidden 384, 6 layers, head dim 64) with their families' real structure and vocabulary:
    # GPT-2's Conv1D layers and fused c_attn; Llama's grouped-query attention (2 key/value heads), SwiGLU MLP, RMSNorm
    "gpt2-tiny": ("gpt2", {"n_embd": 384, "n_layer": 6, "n_head": 6}),
    "llama-tiny": (
        "llama",
        {
            "hidden_size": 384,
            "num_hidden_layers": 6,
            "num_attention_heads": 6,
            "num_key_value_heads": 2,
            "intermediate_size": 1024,
        },
    ),
}
"""Backbones built from a config with random weights (fine for timing): name -> (model_type, config fields)."""
BACKBONES = ("minilm", *SYNTHETIC_BACKBONES)
"""`--backbones` / `--backbone` choices: MiniLM (real weights) and the synthetic ones."""
DECODER_BACKBONES = frozenset(
    name for name, (model_type, _) in SYNTHETIC_BACKBONES.items() if model_type in ("gpt2", "llama")
)
"""Causal-LM backbones: M2A pools their last token and trains a causal-LM auxiliary term; the materialised arm (the
reference's BERT algorithm) does not apply to them."""

__all__ = ["BACKBONES", "DECODER_BACKBONES", "SYNTHETIC_BACKBONES"]
