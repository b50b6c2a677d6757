"""A tiny saved M2A checkpoint for the command-line tests: random 1-layer BERT, nothing trained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import BertConfig

from m2a_hf.hub import save_for_hub
from m2a_hf.modeling import M2AConfig, M2AForSequenceClassification


VOCAB = {"user": ["u0", "u1", "u2"], "item": ["i0", "i1"]}
ID2LABEL = {0: "neg", 1: "pos"}
MAX_POSITIONS = 64


def tiny_backbone_config() -> BertConfig:
    """A 1-layer BERT config with MiniLM's vocabulary size and room for `MAX_POSITIONS` tokens."""
    return BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=MAX_POSITIONS,
    )


def tiny_model() -> M2AForSequenceClassification:
    """A random M2A classifier on `tiny_backbone_config`, with non-zero adapters (so attributes change outputs)."""
    torch.manual_seed(0)
    config = M2AConfig(
        backbone_config=tiny_backbone_config(),
        attributes={name: len(values) for name, values in VOCAB.items()},
        id2label=ID2LABEL,
        lora_rank=2,
        lora_alpha=4,
        lora_dropout=0.0,
    )
    model = M2AForSequenceClassification(config)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    return model.eval()


def save_tiny_checkpoint(folder: Path, tokenizer: Any) -> Path:
    """Save `tiny_model` with `tokenizer` and the vocabulary `VOCAB` as a pipeline-ready folder."""
    return save_for_hub(tiny_model(), folder, tokenizer=tokenizer, attribute_vocab=VOCAB)
