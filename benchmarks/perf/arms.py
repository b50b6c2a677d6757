"""Benchmarked configurations ("arms"), one function each, and the child-process entry point that times one of them.

`run.py` starts one process per arm:

    python -m benchmarks.perf.arms --spec SPEC.json --result RESULT.json

The spec (written by `run.py`) fixes everything: arm, backbone, sequence length, batch size, attributes, steps, seed,
threads, device and dtype. The child builds the model, checks its trainable-parameter count against the closed form
(and fails loudly when they differ), times training steps (forward + backward + AdamW step) and inference batches, and
records the resident-memory peak of each phase.

Arms (see README.md for what each one measures):

    lora_r8, lora_r128     peft LoRA on AutoModelForSequenceClassification, M2A's coarse placement, head trainable
    full_ft                full fine-tuning of the same backbone
    m2a_joint              M2A, training_policy="joint"       (NN and NN† in one batched pass)
    m2a_stochastic         M2A, training_policy="stochastic"  (each sample routed to NN or NN†)
    m2a_fine               M2A, training_policy="fine"        (single view, every value known)
    m2a_unknown            M2A, training_policy="fine" with every attribute id -1 (the unknown LoRAs, NN†)
    materialised           the reference's algorithm (materialised.py): dense C⊗D per sample, two forwards, full MLM
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import logging
import math
import os
import random
import resource
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from torch import nn

from benchmarks.perf.backbones import BACKBONES, SYNTHETIC_BACKBONES


logger = logging.getLogger("perf.arms")

MASK_TOKEN_ID = 103  # [MASK] in the BERT uncased vocabulary (MiniLM's tokenizer uses the same one)

Batch = dict[str, torch.Tensor]


class ParamCountError(AssertionError):
    """The model's trainable-parameter count differs from the closed form."""


@dataclass
class Arm:
    """A built configuration: the model and how to run one training loss / one inference batch on it."""

    model: nn.Module
    loss_fn: Callable[[Batch], torch.Tensor]
    infer_fn: Callable[[Batch], torch.Tensor]
    expected: dict[str, int]  # closed-form parameter counts ("trainable" and, for M2A, the adapter groups)
    actual: dict[str, int]  # the same keys, counted on the model
    notes: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------------------------
# Backbones and data
# ----------------------------------------------------------------------------------------------------------------------
def minilm_path(spec: dict) -> str:
    """MiniLM's folder: the spec's `backbone_path` (run.py resolves it, so that this process does not import
    `m2a_hf.training` and its data libraries, which would add to every arm's memory), else the library's
    `default_backbone()`."""
    if spec.get("backbone_path"):
        return spec["backbone_path"]
    from m2a_hf.training import default_backbone

    return default_backbone()


def backbone_config(spec: dict):
    """MiniLM's real config, or the config of one of `SYNTHETIC_BACKBONES` (random weights: fine for timing).

    Decoders get `pad_token_id = eos_token_id` (what M2A assumes for them), so that the peft baseline's
    `*ForSequenceClassification` can find the last token of a batch too."""
    from transformers import AutoConfig

    if spec["backbone"] == "minilm":
        return AutoConfig.from_pretrained(minilm_path(spec))
    if spec["backbone"] not in SYNTHETIC_BACKBONES:
        raise ValueError(f"unknown backbone {spec['backbone']!r}; expected one of {list(BACKBONES)}.")
    model_type, fields = SYNTHETIC_BACKBONES[spec["backbone"]]
    cfg = AutoConfig.for_model(model_type, **fields)
    if is_decoder(cfg) and cfg.pad_token_id is None:
        cfg.pad_token_id = cfg.eos_token_id
    return cfg


def is_decoder(cfg) -> bool:
    """A causal-LM backbone (M2A then pools the last token and trains a causal-LM auxiliary term)."""
    from m2a_hf.modeling.configuration_m2a import CAUSAL_LM_MODEL_TYPES

    return cfg.model_type in CAUSAL_LM_MODEL_TYPES


@dataclass(frozen=True)
class Placement:
    """Where M2A puts its adapters on one transformer block (its family's default placement), as layer shapes.

    `m2a`: the multi-grained layers, (d_in, d_out, attribute d_out) — the attribute adapters of a fused QKV layer
    cover only its Q and V blocks; `lora`: the plain-LoRA layers, (d_in, d_out); `modules`: the module names of
    both (the peft baseline's `target_modules`); `norm_params`: the backbone's trainable LayerNorm parameters (M2A
    trains `nn.LayerNorm`s; Llama's RMSNorm is not one); `decoder`: a causal-LM family (no MLM head; the peft
    baseline's head is `score`)."""

    m2a: tuple[tuple[int, int, int], ...]
    lora: tuple[tuple[int, int], ...]
    modules: tuple[str, ...]
    norm_params: int
    decoder: bool


def placement(cfg) -> Placement:
    """The `Placement` of a BERT, GPT-2 or Llama config (what the closed-form counts below need)."""
    from m2a_hf.modeling.configuration_m2a import TRANSFORMERS_MODELS_TO_M2A_TARGET_MODULES_MAPPING as DEFAULTS

    hidden, layers = cfg.hidden_size, cfg.num_hidden_layers
    m2a_modules, lora_modules = DEFAULTS[cfg.model_type]
    modules = (*m2a_modules, *lora_modules)
    if cfg.model_type == "bert":
        inter = cfg.intermediate_size
        return Placement(((hidden, hidden, hidden),) * 2, ((hidden, hidden), (hidden, inter)), modules,
                         (1 + 2 * layers) * 2 * hidden, False)  # fmt: skip
    if cfg.model_type == "gpt2":
        inner = cfg.n_inner or 4 * hidden
        return Placement(((hidden, 3 * hidden, 2 * hidden),), ((hidden, hidden), (hidden, inner)), modules,
                         (1 + 2 * layers) * 2 * hidden, True)  # fmt: skip
    if cfg.model_type == "llama":
        kv = cfg.num_key_value_heads * (getattr(cfg, "head_dim", None) or hidden // cfg.num_attention_heads)
        return Placement(((hidden, hidden, hidden), (hidden, kv, kv)), ((hidden, hidden), (hidden, cfg.intermediate_size)),
                         modules, 0, True)  # fmt: skip
    raise ValueError(f"no closed-form placement for model_type {cfg.model_type!r}; expected bert, gpt2 or llama.")


def make_batches(spec: dict, vocab_size: int, count: int) -> list[Batch]:
    """`count` synthetic batches, identical for every arm of a run (own generator seeded from the spec).

    Every sequence is full length (`[CLS] tokens [SEP]`, no padding). MLM labels follow the reference's masking:
    `max(int(0.15·len), 1)` positions drawn uniformly with replacement from [1, len-2], labelled with the original id.
    """
    generator = torch.Generator().manual_seed(spec["seed"] + 1)
    bsz, length = spec["batch_size"], spec["seq_len"]
    sizes = list(spec["attributes"].values())
    batches = []
    for _ in range(count):
        ids = torch.randint(1000, vocab_size, (bsz, length), generator=generator)
        ids[:, 0], ids[:, -1] = 101, 102
        mlm_labels = torch.full((bsz, length), -100, dtype=torch.long)
        n_mask = max(int(0.15 * length), 1)
        pos = torch.randint(1, length - 1, (bsz, n_mask), generator=generator)
        mlm_labels.scatter_(1, pos, ids.gather(1, pos))
        attribute_ids = torch.stack([torch.randint(0, n, (bsz,), generator=generator) for n in sizes], dim=1)
        batches.append(
            {
                "input_ids": ids,
                "attention_mask": torch.ones(bsz, length, dtype=torch.long),
                "labels": torch.randint(0, spec["num_labels"], (bsz,), generator=generator),
                "mlm_labels": mlm_labels,
                "attribute_ids": attribute_ids,
            }
        )
    return batches


# ----------------------------------------------------------------------------------------------------------------------
# Closed-form parameter counts (README.md, "Trainable parameters")
# ----------------------------------------------------------------------------------------------------------------------
def default_kron_shape(d_in: int, d_out: int) -> tuple[int, int, int, int]:
    """(p, q, s, t): p = smallest divisor of d_in ≥ √d_in, s = largest divisor of d_out ≤ √d_out (M2A's default)."""
    p = min(d for d in range(1, d_in + 1) if d_in % d == 0 and d * d >= d_in)
    s = max(d for d in range(1, d_out + 1) if d_out % d == 0 and d * d <= d_out)
    return p, d_in // p, s, d_out // s


def closed_form_m2a(
    cfg, attributes: dict[str, int], num_labels: int, rank: int, attr_rank: int, value_embedding_dim: int | None = None
) -> dict[str, int]:
    """Trainable parameters of M2A at its family's default placement (`placement`).

    Per multi-grained layer (d_in → d_out, attribute part d_a): r(d_in+d_out) + A·[r_a(d_in+d_a) + E·p·s + q·t] with
    (p, q, s, t) the Kronecker shape of d_in × d_a; per plain-LoRA layer: r(d_in+d_out); plus Σ_a |a|·E value
    embeddings, the classification head (H·H + H + H·C + C), on encoders the MLM head (H·H + H + 2H + V: dense,
    LayerNorm, decoder bias; the decoder matrix is the frozen word embedding; decoders use their own frozen LM head)
    and the backbone's LayerNorms.
    """
    place = placement(cfg)
    hidden, layers, vocab = cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size
    num_attr, emb = len(attributes), value_embedding_dim or hidden  # E defaults to the hidden size
    coarse = layers * sum(rank * (i + o) for i, o, _ in place.m2a) + layers * sum(
        rank * (i + o) for i, o in place.lora
    )
    unknown = layers * sum(num_attr * attr_rank * (i + a) for i, _, a in place.m2a)
    fine = 0
    for i, _, a in place.m2a:
        p, q, s, t = default_kron_shape(i, a)
        fine += layers * num_attr * (emb * p * s + q * t)
    values = sum(attributes.values()) * emb
    head = hidden * hidden + hidden + hidden * num_labels + num_labels
    mlm_head = 0 if place.decoder else hidden * hidden + hidden + 2 * hidden + vocab
    return {
        "trainable": coarse + unknown + fine + values + head + mlm_head + place.norm_params,
        "coarse_lora": coarse,
        "unknown_lora": unknown,
        "fine": fine,
        "value_embeddings": values,
    }


def closed_form_lora(cfg, num_labels: int, rank: int) -> dict[str, int]:
    """peft LoRA at M2A's placement: Σ r(d_in+d_out) over its layers (a fused QKV layer whole), plus the trainable
    head: BERT's pooler (H·H + H) and classifier (H·C + C), a decoder's `score` (H·C, no bias)."""
    place = placement(cfg)
    hidden, layers = cfg.hidden_size, cfg.num_hidden_layers
    lora = layers * sum(rank * (i + o) for i, o in [(i, o) for i, o, _ in place.m2a] + list(place.lora))
    head = hidden * num_labels if place.decoder else hidden * hidden + hidden + hidden * num_labels + num_labels
    return {"trainable": lora + head}


def closed_form_bert_classifier(cfg, num_labels: int) -> dict[str, int]:
    """Every parameter of `BertForSequenceClassification` (full fine-tuning)."""
    hidden, inter, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    embeddings = (cfg.vocab_size + cfg.max_position_embeddings + cfg.type_vocab_size) * hidden + 2 * hidden
    layer = (
        4 * (hidden * hidden + hidden) + 2 * hidden + (hidden * inter + inter) + (inter * hidden + hidden) + 2 * hidden
    )
    pooler = hidden * hidden + hidden
    return {"trainable": embeddings + layers * layer + pooler + hidden * num_labels + num_labels}


def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------------------------------------------------
# Arms
# ----------------------------------------------------------------------------------------------------------------------
def _hf_classifier(spec: dict):
    from transformers import AutoModelForSequenceClassification

    cfg = backbone_config(spec)
    if spec["backbone"] == "minilm":
        return AutoModelForSequenceClassification.from_pretrained(
            minilm_path(spec), num_labels=spec["num_labels"]
        ), cfg
    cfg.num_labels = spec["num_labels"]
    return AutoModelForSequenceClassification.from_config(cfg), cfg


def _classifier_fns(model: nn.Module) -> tuple[Callable, Callable]:
    def loss_fn(b: Batch) -> torch.Tensor:
        return model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"]).loss

    def infer_fn(b: Batch) -> torch.Tensor:
        return model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits

    return loss_fn, infer_fn


def _peft_lora(spec: dict, rank: int) -> Arm:
    from peft import LoraConfig, TaskType, get_peft_model

    base, cfg = _hf_classifier(spec)
    place = placement(cfg)
    lora_config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=rank,
        lora_alpha=2 * rank,
        lora_dropout=0.1,
        target_modules=list(place.modules),
        # BERT's pooler + classifier = M2A's trainable head; a decoder's classifier is its `score` layer
        modules_to_save=["score"] if place.decoder else ["classifier", "pooler"],
        fan_in_fan_out=cfg.model_type == "gpt2",  # GPT-2's Conv1D stores (in, out)
    )
    model = get_peft_model(base, lora_config)
    lora_layers = sum(1 for n, _ in model.named_modules() if n.endswith(".lora_A"))
    expected_layers = cfg.num_hidden_layers * len(place.modules)
    if lora_layers != expected_layers:
        raise ParamCountError(f"peft placed LoRA on {lora_layers} layers, expected {expected_layers}.")
    loss_fn, infer_fn = _classifier_fns(model)
    return Arm(
        model,
        loss_fn,
        infer_fn,
        expected=closed_form_lora(cfg, spec["num_labels"], rank),
        actual={"trainable": count_trainable(model)},
        notes={"lora_layers": lora_layers},
    )


def lora_r8(spec: dict) -> Arm:
    """peft LoRA r=8 (alpha 16, dropout 0.1) at M2A's placement; pooler + classifier trainable."""
    return _peft_lora(spec, 8)


def lora_r128(spec: dict) -> Arm:
    """peft LoRA r=128 (alpha 256, dropout 0.1) at M2A's placement; the reference point of every ratio."""
    return _peft_lora(spec, 128)


def full_ft(spec: dict) -> Arm:
    """Full fine-tuning of `AutoModelForSequenceClassification` on the same backbone."""
    model, cfg = _hf_classifier(spec)
    for p in model.parameters():
        p.requires_grad_(True)
    loss_fn, infer_fn = _classifier_fns(model)
    return Arm(
        model,
        loss_fn,
        infer_fn,  # the closed form is BERT's; other families' counts are recorded unchecked
        expected=closed_form_bert_classifier(cfg, spec["num_labels"]) if cfg.model_type == "bert" else {},
        actual={"trainable": count_trainable(model)},
    )


def build_m2a(spec: dict, training_policy: str):
    """M2A with the reference's ranks (r = r_a = 128, alpha 256, dropout 0.1) and the spec's attributes."""
    from m2a_hf import M2AConfig, M2AForSequenceClassification

    kwargs = {
        "attributes": dict(spec["attributes"]),
        "num_labels": spec["num_labels"],
        "training_policy": training_policy,
        "lora_rank": spec["lora_rank"],
        "lora_alpha": 2 * spec["lora_rank"],
        "lora_dropout": 0.1,
        "value_embedding_dim": spec.get("value_embedding_dim"),
    }
    if spec.get("mlm_weight") is not None:  # 0: no auxiliary (masked-/causal-LM) term
        kwargs["mlm_weight"] = spec["mlm_weight"]
    if spec["backbone"] == "minilm":
        return M2AForSequenceClassification.from_backbone(minilm_path(spec), **kwargs)
    cfg = backbone_config(spec)
    if not is_decoder(cfg):  # an encoder's MLM term masks with [MASK]; a decoder's causal-LM term needs none
        kwargs["mask_token_id"] = MASK_TOKEN_ID
    return M2AForSequenceClassification(M2AConfig(backbone_config=cfg, **kwargs))


def _m2a_counts(model, spec: dict) -> tuple[dict[str, int], dict[str, int]]:
    from m2a_hf.adapters import num_parameters_by_group

    groups = num_parameters_by_group(model)
    expected = closed_form_m2a(
        model.config.backbone_config,
        dict(spec["attributes"]),
        spec["num_labels"],
        spec["lora_rank"],
        spec["lora_rank"],
        model.config.value_embedding_size,
    )
    actual = {k: groups[k] for k in expected}
    if count_trainable(model) != groups["trainable"]:
        raise ParamCountError("num_parameters_by_group(model)['trainable'] disagrees with requires_grad.")
    return expected, actual


def _m2a_arm(spec: dict, training_policy: str, unknown: bool = False) -> Arm:
    model = build_m2a(spec, training_policy)
    # a decoder's auxiliary term is the causal-LM loss on the text itself: no MLM labels
    aux = {} if model.config.is_causal_lm else {"mlm_labels": "mlm_labels"}

    def ids(b: Batch) -> torch.Tensor:
        return torch.full_like(b["attribute_ids"], -1) if unknown else b["attribute_ids"]

    def loss_fn(b: Batch) -> torch.Tensor:
        out = model(
            input_ids=b["input_ids"],
            attention_mask=b["attention_mask"],
            attribute_ids=ids(b),
            labels=b["labels"],
            **{k: b[v] for k, v in aux.items()},
        )
        return out.loss

    def infer_fn(b: Batch) -> torch.Tensor:
        return model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], attribute_ids=ids(b)).logits

    expected, actual = _m2a_counts(model, spec)
    return Arm(
        model, loss_fn, infer_fn, expected, actual, notes={"training_policy": training_policy, "unknown": unknown}
    )


def m2a_joint(spec: dict) -> Arm:
    """M2A `joint`: NN and NN† on every sample (one batched pass of 2×batch rows), loss L_NN + 0.5·L_NN†, MLM on."""
    return _m2a_arm(spec, "joint")


def m2a_stochastic(spec: dict) -> Arm:
    """M2A `stochastic`: one pass, each sample routed to NN† with probability λ/(1+λ) = 1/3, MLM on."""
    return _m2a_arm(spec, "stochastic")


def m2a_fine(spec: dict) -> Arm:
    """M2A single view (`fine`): one pass, every attribute value known (factorised Kronecker adapters), MLM on."""
    return _m2a_arm(spec, "fine")


def m2a_unknown(spec: dict) -> Arm:
    """M2A single view with every attribute id -1: the unknown LoRAs replace the fine adapters (NN†), MLM on."""
    return _m2a_arm(spec, "fine", unknown=True)


def materialised(spec: dict) -> Arm:
    """The reference's algorithm (materialised.py): per-sample dense C⊗D + bmm, two forwards, MLM on every token."""
    from benchmarks.perf.materialised import check_equivalence, patch_materialised, reference_joint_loss

    if is_decoder(backbone_config(spec)):
        raise ValueError(
            f"the materialised arm reproduces the reference's BERT algorithm; backbone {spec['backbone']!r} is a "
            "decoder (run it on minilm or bert-base)."
        )
    model = build_m2a(spec, "joint")
    patched = patch_materialised(model)
    max_diff = check_equivalence(model)

    def loss_fn(b: Batch) -> torch.Tensor:
        return reference_joint_loss(
            model, b["input_ids"], b["attention_mask"], b["attribute_ids"], b["labels"], b["mlm_labels"]
        )

    def infer_fn(b: Batch) -> torch.Tensor:  # the reference evaluates the fine view, classification only
        return model(
            input_ids=b["input_ids"], attention_mask=b["attention_mask"], attribute_ids=b["attribute_ids"]
        ).logits

    expected, actual = _m2a_counts(model, spec)
    return Arm(
        model,
        loss_fn,
        infer_fn,
        expected,
        actual,
        notes={"patched_layers": patched, "equivalence_max_abs_diff": max_diff},
    )


ARMS: dict[str, Callable[[dict], Arm]] = {
    "lora_r8": lora_r8,
    "lora_r128": lora_r128,
    "full_ft": full_ft,
    "m2a_joint": m2a_joint,
    "m2a_stochastic": m2a_stochastic,
    "m2a_fine": m2a_fine,
    "m2a_unknown": m2a_unknown,
    "materialised": materialised,
}


# ----------------------------------------------------------------------------------------------------------------------
# Measurement helpers
# ----------------------------------------------------------------------------------------------------------------------
MB = 2**20
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
TUNED_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: 2 GiB
TUNED_MMAP_THRESHOLD = 2**30  # 1 GiB: no tensor of these runs is larger, so none is mmapped and unmapped each step


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def tune_malloc() -> dict[str, Any]:
    """Raise glibc's trim and mmap thresholds: freed memory stays in the heap instead of being given back to the
    system and faulted in again on the next step, which otherwise inflates the timings of large-footprint arms.

    Same effect as the `MALLOC_TRIM_THRESHOLD_` / `MALLOC_MMAP_THRESHOLD_` environment variables, but applied after the
    memory probe: with these thresholds, `posix_memalign`'d tensors fragment the heap and the RSS peak overstates the
    live memory (see README.md, "Memory").
    """
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return {"applied": False, "reason": "no glibc mallopt"}
    ok_trim = libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(TUNED_TRIM_THRESHOLD))
    ok_mmap = libc.mallopt(M_MMAP_THRESHOLD, ctypes.c_int(TUNED_MMAP_THRESHOLD))
    return {
        "applied": bool(ok_trim and ok_mmap),
        "trim_threshold": TUNED_TRIM_THRESHOLD,
        "mmap_threshold": TUNED_MMAP_THRESHOLD,
    }


def _trim_heap() -> None:
    """Collect garbage and give free heap pages back to the system."""
    gc.collect()
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident-set high-water mark (VmHWM, and with it ru_maxrss) to the current RSS (Linux ≥ 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    """VmHWM (peak RSS since the last reset) in MiB; falls back to ru_maxrss."""
    with contextlib.suppress(OSError):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    return _ru_maxrss_mb()


def _ru_maxrss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / MB if sys.platform == "darwin" else rss / 1024


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / MB


class _MemoryWindow:
    """Peak memory over a window of work: RSS baseline after trimming, then the high-water mark since then (and the
    CUDA allocator's peak on a GPU)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        _trim_heap()
        self.hwm_reset = _reset_peak_rss()
        self.rss_base = _rss_mb()
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.gpu_base = torch.cuda.memory_allocated() / MB

    def result(self) -> dict[str, Any]:
        peak = _peak_rss_mb()
        out = {
            "rss_base_mb": round(self.rss_base, 1),
            "rss_peak_mb": round(peak, 1),
            "rss_increase_mb": round(peak - self.rss_base, 1),
            "ru_maxrss_mb": round(_ru_maxrss_mb(), 1),
            "peak_source": "VmHWM since window start" if self.hwm_reset else "ru_maxrss (process lifetime)",
        }
        if self.device.type == "cuda":
            gpu_peak = torch.cuda.max_memory_allocated() / MB
            out.update(
                gpu_base_mb=round(self.gpu_base, 1),
                gpu_peak_mb=round(gpu_peak, 1),
                gpu_increase_mb=round(gpu_peak - self.gpu_base, 1),
            )
        return out


def _autocast(device: torch.device, dtype: str):
    if dtype == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _to(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device) for k, v in batch.items()}


class _Timer:
    """Wall time of each call, plus the process's CPU time (all threads) and minor page faults as diagnostics: on a
    busy machine the wall time grows with contention while the CPU time stays closer to the work done."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.wall_ms: list[float] = []
        self.cpu_ms: list[float] = []
        self.minor_faults: list[int] = []

    def __call__(self, fn: Callable[[], Any]) -> None:
        _sync(self.device)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        cpu, start = time.process_time(), time.perf_counter()
        fn()
        _sync(self.device)
        self.wall_ms.append(1000 * (time.perf_counter() - start))
        self.cpu_ms.append(1000 * (time.process_time() - cpu))
        self.minor_faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)

    def summary(self, skip: int = 0) -> dict[str, Any]:
        wall, cpu = self.wall_ms[skip:], self.cpu_ms[skip:]
        return {
            "median_ms": round(statistics.median(wall), 1),
            "min_ms": round(min(wall), 1),
            "cpu_median_ms": round(statistics.median(cpu), 1),
            "all_ms": [round(t, 1) for t in self.wall_ms],
            "all_cpu_ms": [round(t, 1) for t in self.cpu_ms],
            "minor_faults": self.minor_faults,
            "skipped": skip,
        }


def _profile_step(step: Callable[[], Any], device: torch.device, path: Path, top: int = 25) -> list[dict[str, Any]]:
    """Profile one training step with torch.profiler; write the op table to `path`, return the top ops."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
    averages = prof.key_averages()
    path.write_text(averages.table(sort_by="self_cpu_time_total", row_limit=top) + "\n")
    total = sum(e.self_cpu_time_total for e in averages) or 1.0
    rows = sorted(averages, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return [
        {
            "op": e.key,
            "calls": e.count,
            "self_cpu_ms": round(e.self_cpu_time_total / 1000, 2),
            "self_cpu_pct": round(100 * e.self_cpu_time_total / total, 1),
        }
        for e in rows
    ]


# ----------------------------------------------------------------------------------------------------------------------
# One arm, in this process
# ----------------------------------------------------------------------------------------------------------------------
def run_arm(spec: dict, result: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the arm of `spec`, check its parameter count, then measure, in this order:

    1. inference warm-up batches (eval, no_grad): the inference memory peak, with glibc's default malloc settings;
    2. `warmup` training steps: the training memory peak (default malloc settings; from the second step on the AdamW
       states exist, so the peak includes them);
    3. malloc tuned (`spec["malloc"] == "tuned"`), one more untimed step, then `steps` timed training steps;
    4. one untimed and `infer_batches` timed inference batches.
    """
    device = torch.device(spec["device"])
    torch.set_num_threads(spec["threads"])
    seed_everything(spec["seed"])
    result = {} if result is None else result  # filled in place, so a failure keeps what was measured
    result.update(
        {
            "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "malloc_env": {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")},
            "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        }
    )

    t0 = time.perf_counter()
    arm = ARMS[spec["arm"]](spec)
    model = arm.model.to(device)
    result["build_s"] = round(time.perf_counter() - t0, 2)
    result["params"] = {
        "total": sum(p.numel() for p in model.parameters()),
        "trainable": count_trainable(model),
        "actual": arm.actual,
        "expected_closed_form": arm.expected,
    }
    result["notes"] = arm.notes
    mismatch = {k: (arm.actual.get(k), v) for k, v in arm.expected.items() if arm.actual.get(k) != v}
    result["params"]["check"] = (
        "n/a (no closed form)" if not arm.expected else "ok" if not mismatch else f"MISMATCH {mismatch}"
    )
    if mismatch:
        raise ParamCountError(
            f"{spec['arm']}: trainable parameters differ from the closed form (actual, expected): {mismatch}"
        )

    vocab = backbone_config(spec).vocab_size
    batches = [_to(b, device) for b in make_batches(spec, vocab, max(spec["warmup"] + spec["steps"] + 1, 2))]
    cursor = 0

    def next_batch() -> Batch:
        nonlocal cursor
        cursor += 1
        return batches[(cursor - 1) % len(batches)]

    def infer_batch() -> None:
        with torch.no_grad(), _autocast(device, spec["dtype"]):
            arm.infer_fn(next_batch())

    # 1. inference memory (default malloc)
    model.eval()
    window = _MemoryWindow(device)
    infer_probe = _Timer(device)
    for _ in range(spec["infer_warmup"]):
        infer_probe(infer_batch)
    infer_memory = window.result()

    # 2. training memory (default malloc), the warm-up steps
    optimizer = {"adamw": torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-5)}
    model.train()
    losses: list[float] = []

    def train_step() -> None:
        batch = next_batch()
        optimizer["adamw"].zero_grad(set_to_none=True)
        with _autocast(device, spec["dtype"]):
            loss = arm.loss_fn(batch)
        loss.backward()
        optimizer["adamw"].step()
        losses.append(float(loss.detach()))

    window = _MemoryWindow(device)
    probe = _Timer(device)
    for _ in range(spec["warmup"]):
        probe(train_step)
    train_memory = window.result()

    # 3. timed training steps (tuned malloc), after one more untimed step
    result["malloc"] = tune_malloc() if spec["malloc"] == "tuned" else {"applied": False, "mode": spec["malloc"]}
    window = _MemoryWindow(device)
    timer = _Timer(device)
    for _ in range(1 + spec["steps"]):
        timer(train_step)
    if not all(math.isfinite(x) for x in losses):
        raise FloatingPointError(f"non-finite training loss: {losses}")
    summary = timer.summary(skip=1)
    result["train"] = {
        "step_ms": summary.pop("median_ms"),
        **summary,
        "warmup_ms": [round(t, 1) for t in probe.wall_ms],
        "loss_first_last": [round(losses[0], 4), round(losses[-1], 4)],
        **train_memory,
        "timed_window_memory": window.result(),
    }
    if spec.get("profile"):
        path = Path(spec["profile_path"])
        result["profile"] = {"file": str(path), "top_ops": _profile_step(train_step, device, path)}

    optimizer.clear()  # free the AdamW states before the inference timing
    model.zero_grad(set_to_none=True)
    _trim_heap()

    # 4. timed inference, after one more untimed batch
    model.eval()
    timer = _Timer(device)
    for _ in range(1 + spec["infer_batches"]):
        timer(infer_batch)
    summary = timer.summary(skip=1)
    result["infer"] = {
        "samples_per_s": round(1000 * spec["batch_size"] / summary["median_ms"], 2),
        "batch_ms": summary.pop("median_ms"),
        **summary,
        "warmup_ms": [round(t, 1) for t in infer_probe.wall_ms],
        **infer_memory,
    }
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time one benchmark arm (child process of run.py).")
    parser.add_argument("--spec", required=True, help="JSON file with the arm's settings (written by run.py).")
    parser.add_argument("--result", required=True, help="where to write the result JSON.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    spec = json.loads(Path(args.spec).read_text())
    result: dict[str, Any] = {"spec": spec, "status": "ok"}
    code = 0
    try:
        run_arm(spec, result)
    except Exception as err:  # record the failure for the parent, which continues with the next arm
        result.update(status="error", error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc()[-4000:])
        if isinstance(err, ParamCountError):
            result["param_check_failed"] = True
        logger.error("arm %s failed: %s", spec.get("arm"), result["error"])
        code = 1
    Path(args.result).write_text(json.dumps(result, indent=2))
    return code


__all__ = ["ARMS", "Arm", "closed_form_bert_classifier", "closed_form_lora", "closed_form_m2a", "run_arm"]


if __name__ == "__main__":
    sys.exit(main())
