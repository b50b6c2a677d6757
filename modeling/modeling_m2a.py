"""M2A: Multi-Attribute Multi-Grained Adaptation of a frozen pre-trained encoder (AAAI 2025).

Self-contained (torch + transformers only): this file is copied into every saved checkpoint and runs as remote code.
It holds what loading, inference and the training forward need; everything else (building a model on a pretrained
backbone, adapter-only checkpoints, exports, parameter counts) lives in the `m2a_hf` library.

Every adapted linear layer (`M2ALinear`, a drop-in `nn.Linear`, so the backbone's weight names are unchanged):

            x ──────────── W (frozen) ─────────────────────────────┐
            │                                                       │
            ├─ dropout ─ A ─ B ·(α/r) ─────── coarse LoRA w^(c) ───┤  always on
            │                                                       │
            │   per sample b, per attribute a:                      ├──► y
            ├─ value v known:   X ↦ C_{a,v}ᵀ · X · D_a  (fine)  ───┤  C_{a,v} = G_a · e_{a,v}  (p×s, generated)
            └─ value unknown:   dropout ─ A_a ─ B_a ·(α/r) ────────┘  D_a shared by the values  (q×t)
                                (unknown LoRA, `m2a_unknown_lora_*`)

The fine adapter is the Kronecker product ΔW = C ⊗ D applied in factorised form: with x reshaped to X (p×q),
x·(C ⊗ D) = vec(Cᵀ X D), so no (in × out) matrix — let alone one per sample — is ever built. The unknown LoRA of an
attribute is the paper's coarse module w^(a,c′).

A forward's `view` says how it routes: `None` (per-sample: the fine adapter for known values, the unknown LoRA for
unknown ones), `"coarse"` (NN†: every attribute unknown) or `"iid"` (the coarse LoRA alone). In training,
`config.training_policy` says which views a forward trains: `joint` runs NN and NN† on every sample in one batched
pass, `stochastic` routes each sample to one of them, `fine` / `coarse` run one.

Backbone families: the adapted layers are those of `config.m2a_target_modules` / `lora_target_modules`, by default
the family's (`TRANSFORMERS_MODELS_TO_M2A_TARGET_MODULES_MAPPING`). GPT-2 `Conv1D` layers are wrapped like
`nn.Linear`; on a fused QKV layer (GPT-2 `c_attn`, ModernBERT `Wqkv`) the attribute adapters update only Q and V.
Decoders (`config.is_causal_lm`) pool the last non-pad token and train a causal-LM auxiliary term.

Routing runs at fixed shapes, without a host sync, so that a forward compiles into one graph (`torch.compile`) and
every adapter takes part in every backward (`DistributedDataParallel(find_unused_parameters=False)`): an unknown value
gets a zero value embedding (its fine update is exactly 0) and a gate of 1 on its unknown LoRA (0 where the value is
known). The coarse LoRA and every unknown LoRA run as one gated low-rank pair, every attribute's fine update as one
batched contraction. Only static information (view, training policy) skips a path: `view="coarse"`, no
`attribute_ids` outside training and the `coarse` policy skip the fine adapters, `joint` runs them on its NN half only.
Inside a compiled region the data-dependent input checks (id and label ranges) are skipped: compiled runs rely on the
collator (or an eager first batch) for valid ids and labels.
"""

from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.pytorch_utils import Conv1D
from transformers.utils import ModelOutput, cached_file, is_torchdynamo_compiling, logging

from .configuration_m2a import TRANSFORMERS_MODELS_TO_M2A_TARGET_MODULES_MAPPING, M2AConfig
from .pipeline_m2a import CUSTOM_PIPELINES, parse_attribute_vocab


logger = logging.get_logger(__name__)

VIEWS = (None, "fine", "coarse", "iid")
# Inside a compiled region the masked-LM head runs on this fraction of a batch's tokens plus one per row (a fixed
# shape); `M2ADataCollator` masks max(int(mlm_probability·n), 1) of a row's n tokens, which fits for
# mlm_probability ≤ 0.25 (default 0.15). More masked positions fail an assertion instead of being dropped.
COMPILED_MLM_CAPACITY = 0.25
_SIGNED_INTEGER_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64)
AUTO_MAP = {
    "AutoConfig": "configuration_m2a.M2AConfig",
    "AutoModel": "modeling_m2a.M2AModel",
    "AutoModelForSequenceClassification": "modeling_m2a.M2AForSequenceClassification",
}
# Parameter names of checkpoints written before the unknown LoRAs were named `m2a_unknown_lora_*`, as `from_pretrained`
# `key_mapping` patterns (old name -> new name).
LEGACY_KEY_MAPPING = {"m2a_attr_A": "m2a_unknown_lora_A", "m2a_attr_B": "m2a_unknown_lora_B"}


# ----------------------------------------------------------------------------------------------------------------------
# Kronecker factor shapes
# ----------------------------------------------------------------------------------------------------------------------
def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def kron_shapes(
    in_features: int, out_features: int, kron_factors: list[int] | None = None
) -> tuple[int, int, int, int]:
    """Return `(p, q, s, t)` with `in = p·q`, `out = s·t`: `C_v` is p×s (per value), `D` is q×t (shared).

    Default: p = smallest divisor of `in` ≥ √in, s = largest divisor of `out` ≤ √out (768→768: the reference's
    C 32×24, D 24×32).
    """
    if kron_factors is not None:
        p, s = kron_factors
        if in_features % p or out_features % s:
            raise ValueError(
                f"`kron_factors` {list(kron_factors)} do not fit a {in_features}→{out_features} layer: p={p} must "
                f"divide in_features={in_features} and s={s} must divide out_features={out_features} "
                f"(divisors of {in_features}: {_divisors(in_features)}; of {out_features}: {_divisors(out_features)})."
            )
    else:
        p = min(d for d in _divisors(in_features) if d * d >= in_features)
        s = max(d for d in _divisors(out_features) if d * d <= out_features)
    return p, in_features // p, s, out_features // s


# ----------------------------------------------------------------------------------------------------------------------
# Routing: which rows take which path, set once per forward and read by every adapted layer
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class _Routing:
    """The routing of one forward, at fixed shapes (no host sync, no data-dependent shape: one compiled graph).

    A row whose value of attribute `a` is unknown gets a zero value embedding, so its fine update is exactly 0, and
    a gate of 1 on `a`'s unknown LoRA (0 where the value is known): every adapter runs on every row it may apply to
    and stays in the autograd graph (zero-weighted where unused), which `DistributedDataParallel` needs. The cheap
    special cases are decided by static information only (the view, the training policy), never by the ids.

    Fields:
        iid: the coarse LoRA alone (`view="iid"`).
        unknown: `(batch, num_attributes)` 1.0 where the value is unknown, 0.0 where known; `None`: every value
            unknown (`view="coarse"`, no `attribute_ids`), the fine adapters do not run.
        embeddings: `(fine_rows, num_attributes, E)` value embeddings, zero where the value is unknown; `None` when
            `unknown` is.
        fine_rows: the fine adapters run on the first `fine_rows` rows only (`joint`: the rest is NN†, all unknown);
            `None`: every row.
        known_rows: eager forwards only (one host sync): when every value of the first `fine_rows` rows is known,
            their number, and the unknown LoRAs skip those rows (zero-weighted in training, so that they stay in the
            graph); 0 otherwise and inside a compiled region, where every row is gated.
    """

    iid: bool = False
    unknown: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None
    fine_rows: int | None = None
    known_rows: int = 0


class _Router:
    """Holds the routing of the current forward. Deliberately not cleared after the forward: gradient checkpointing
    re-runs layers during backward and must see the same routing."""

    def __init__(self) -> None:
        self.state: _Routing | None = None


# ----------------------------------------------------------------------------------------------------------------------
# The adapted linear layer
# ----------------------------------------------------------------------------------------------------------------------
class M2ALinear(nn.Linear):
    """A frozen `nn.Linear` with a coarse LoRA and, when `num_attributes > 0`, per-attribute unknown LoRAs and fine
    Kronecker adapters. Parameters: `weight`/`bias` (the backbone's, unchanged names) and `m2a_*` adapters.

    With `base_layer`, the layer wraps that `nn.Linear`'s (or GPT-2 `Conv1D`'s) own `weight` and `bias` (the same
    tensors, no copy) and creates its adapters on their device and dtype; otherwise it initialises a weight of its own
    like `nn.Linear`. A `Conv1D` stores its weight as (in, out): `fan_in_fan_out` is then set and the weight is used
    transposed (a view).

    With `fused_qkv=True` the layer is a fused query/key/value projection (output `[Q; K; V]`, three equal blocks):
    the coarse LoRA adapts the whole output, the fine adapters and unknown LoRAs only the Q and V blocks (their
    output size `attribute_out_features` is 2/3 of `out_features`; `_place_attribute_delta` puts them in place).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        rank: int,
        alpha: float,
        dropout: float,
        num_attributes: int = 0,
        attribute_rank: int | None = None,
        attribute_alpha: float | None = None,
        embedding_dim: int | None = None,
        kron_factors: list[int] | None = None,
        router: _Router | None = None,
        base_layer: nn.Linear | Conv1D | None = None,
        fused_qkv: bool = False,
    ) -> None:
        if base_layer is None:
            super().__init__(in_features, out_features, bias=bias)
        else:
            base_in, base_out = _linear_sizes(base_layer)
            if (base_in, base_out) != (in_features, out_features):
                raise ValueError(f"`base_layer` is {base_in}→{base_out}, not {in_features}→{out_features}.")
            # nn.Linear's own weight goes to the meta device (nothing allocated), then the backbone's replaces it.
            super().__init__(in_features, out_features, bias=base_layer.bias is not None, device="meta")
            self.weight, self.bias = base_layer.weight, base_layer.bias
        self.fan_in_fan_out = isinstance(base_layer, Conv1D)
        if fused_qkv and out_features % 3:
            raise ValueError(
                f"a fused query/key/value layer must have 3 equal output blocks; out_features={out_features} is not "
                "divisible by 3."
            )
        self.fused_qkv = fused_qkv
        self.attribute_out_features = 2 * out_features // 3 if fused_qkv else out_features
        attr_out = self.attribute_out_features
        factory = {"device": self.weight.device, "dtype": self.weight.dtype}
        self.rank, self.scaling = rank, alpha / rank
        self.num_attributes = num_attributes
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.m2a_lora_A = nn.Parameter(torch.empty(rank, in_features, **factory))
        self.m2a_lora_B = nn.Parameter(torch.empty(out_features, rank, **factory))
        self._router = router
        if num_attributes:
            attribute_rank = attribute_rank or rank
            attribute_alpha = attribute_alpha if attribute_alpha is not None else alpha
            self.unknown_scaling = attribute_alpha / attribute_rank
            p, q, s, t = kron_shapes(in_features, attr_out, kron_factors)
            self.kron_shape = (p, q, s, t)
            # Order of the two small contractions: pick the cheaper one per token.
            self._c_first = s * p * q + s * q * t <= p * q * t + p * s * t
            self.m2a_unknown_lora_A = nn.Parameter(torch.empty(num_attributes, attribute_rank, in_features, **factory))
            self.m2a_unknown_lora_B = nn.Parameter(torch.empty(num_attributes, attr_out, attribute_rank, **factory))
            self.m2a_fine_gen = nn.Parameter(torch.empty(num_attributes, embedding_dim, p * s, **factory))
            self.m2a_fine_shared = nn.Parameter(torch.empty(num_attributes, q, t, **factory))
        self.reset_adapter_parameters()

    @torch.no_grad()
    def reset_adapter_parameters(self) -> None:
        """LoRA: A kaiming-uniform, B zero (the update starts at 0). Fine: generator and shared factor kaiming (the
        zero-initialised value embeddings make the fine update start at 0)."""
        nn.init.kaiming_uniform_(self.m2a_lora_A, a=math.sqrt(5))
        nn.init.zeros_(self.m2a_lora_B)
        if self.num_attributes:
            for i in range(self.num_attributes):
                nn.init.kaiming_uniform_(self.m2a_unknown_lora_A[i], a=math.sqrt(5))
                nn.init.kaiming_uniform_(self.m2a_fine_gen[i].T, a=math.sqrt(5))
                nn.init.kaiming_uniform_(self.m2a_fine_shared[i], a=math.sqrt(5))
            nn.init.zeros_(self.m2a_unknown_lora_B)

    def adapter_parameters(self) -> dict[str, nn.Parameter]:
        """The layer's adapter parameters by name (coarse LoRA; with attributes also unknown LoRAs and fine)."""
        names = ["m2a_lora_A", "m2a_lora_B"]
        if self.num_attributes:
            names += ["m2a_unknown_lora_A", "m2a_unknown_lora_B", "m2a_fine_gen", "m2a_fine_shared"]
        return {n: getattr(self, n) for n in names}

    @property
    def base_weight(self) -> torch.Tensor:
        """The frozen weight as (out, in): `weight` itself, or its transposed view for a GPT-2 `Conv1D` (no copy)."""
        return self.weight.T if self.fan_in_fan_out else self.weight

    def _place_attribute_delta(self, delta: torch.Tensor) -> torch.Tensor:
        """An attribute update (fine or unknown LoRA, last dim `attribute_out_features`) laid out as the layer's output.

        Unchanged for a plain layer; for a fused QKV layer the update is `[ΔQ; ΔV]` and becomes `[ΔQ; 0; ΔV]`.
        """
        if not self.fused_qkv:
            return delta
        block = self.out_features // 3
        zeros = delta.new_zeros(*delta.shape[:-1], block)
        return torch.cat([delta[..., :block], zeros, delta[..., block:]], dim=-1)

    def fine_delta(self, x: torch.Tensor, factor_c: torch.Tensor, factor_d: torch.Tensor) -> torch.Tensor:
        """`x · (C_b ⊗ D)` per row b without building the Kronecker product; with an attribute axis, the sum
        `Σ_a x · (C_{b,a} ⊗ D_a)` of every attribute's update in one batched contraction.

        Args: x (n, L, in); factor_c (n, p, s) one per row, or (n, A, p, s) one per row and attribute; factor_d
        (q, t) shared, or (A, q, t) one per attribute. Returns (n, L, out).
        """
        p, q, s, t = self.kron_shape
        n, length = x.shape[0], x.shape[1]
        if factor_c.dim() == 3:  # a single attribute
            factor_c, factor_d = factor_c.unsqueeze(1), factor_d.unsqueeze(0)
        xr = x.reshape(n, length, p, q)
        if self._c_first:
            z = torch.einsum("nlpq,naps->nlasq", xr, factor_c)  # (n, L, A, s, q)
            y = torch.einsum("nlasq,aqt->nlst", z, factor_d)  # (n, L, s, t), summed over the attributes
        else:
            z = torch.einsum("nlpq,aqt->nlapt", xr, factor_d)  # (n, L, A, p, t)
            y = torch.einsum("nlapt,naps->nlst", z, factor_c)  # (n, L, s, t), summed over the attributes
        return y.reshape(n, length, s * t)

    def _lora_deltas(self, h: torch.Tensor, unknown: torch.Tensor | None) -> torch.Tensor:
        """The coarse LoRA plus every attribute's unknown LoRA, in one pair of matmuls.

        The A matrices are concatenated along the rank ([A; A_1; ...], rank r + num_attributes·r_a), and so are the B
        matrices. Each rank block is scaled by its LoRA scaling and, per row, by its gate: 1 for the coarse LoRA, and
        for attribute a's unknown LoRA `unknown[:, a]` (1 where the value is unknown, 0 where it is known). With
        `unknown=None` (every value unknown) the scalings are folded into B and nothing is gated.

        Args: h (n, L, in) the dropped-out input; unknown (n, A) or None. Returns (n, L, out).
        """
        lora_a = torch.cat([self.m2a_lora_A, self.m2a_unknown_lora_A.flatten(0, 1)], dim=0)  # (r + A·r_a, in)
        unknown_b = self.m2a_unknown_lora_B.permute(1, 0, 2).flatten(1)  # (attribute_out, A·r_a)
        unknown_b = self._place_attribute_delta(unknown_b.T).T  # (out, A·r_a): zero rows for a fused layer's K
        if unknown is None:
            lora_b = torch.cat([self.scaling * self.m2a_lora_B, self.unknown_scaling * unknown_b], dim=1)
            return F.linear(F.linear(h, lora_a), lora_b)
        lora_b = torch.cat([self.m2a_lora_B, unknown_b], dim=1)  # (out, r + A·r_a)
        z = F.linear(h, lora_a)  # (n, L, r + A·r_a)
        attribute_rank = self.m2a_unknown_lora_A.shape[1]
        gate = torch.cat(
            [
                z.new_full((z.shape[0], self.rank), self.scaling),
                (self.unknown_scaling * unknown.to(z.dtype)).repeat_interleave(attribute_rank, dim=1),
            ],
            dim=1,
        )  # (n, r + A·r_a)
        return F.linear(z * gate.unsqueeze(1), lora_b)

    def _known_rows_lora_deltas(self, h: torch.Tensor, known_rows: int) -> torch.Tensor:
        """`_lora_deltas` when the first `known_rows` rows have every value known: the coarse LoRA alone on them, and
        the coarse + unknown LoRAs (every value unknown) on the rest (`joint`'s NN† half). When no row takes the
        unknown LoRAs, a training forward adds them zero-weighted, so that they still take part in the backward
        (`DistributedDataParallel(find_unused_parameters=False)`)."""
        delta = self.scaling * F.linear(F.linear(h[:known_rows], self.m2a_lora_A), self.m2a_lora_B)
        if known_rows < h.shape[0]:
            return torch.cat([delta, self._lora_deltas(h[known_rows:], None)], dim=0)
        if torch.is_grad_enabled() and self.m2a_unknown_lora_A.requires_grad:
            delta = delta + 0.0 * (self.m2a_unknown_lora_A.sum() + self.m2a_unknown_lora_B.sum())
        return delta

    def _fine_delta(self, x: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """Every attribute's fine update of the rows of `x`, from their value embeddings (zero where the value is
        unknown, which makes that attribute's update exactly 0).

        Args: x (n, L, in); embeddings (n, A, E). Returns (n, L, out).
        """
        p, _, s, _ = self.kron_shape
        factor_c = torch.einsum("nae,aef->naf", embeddings, self.m2a_fine_gen)  # (n, A, p·s): C = e · G
        return self.fine_delta(x, factor_c.unflatten(-1, (p, s)), self.m2a_fine_shared)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.base_weight, self.bias)
        state = self._router.state if self._router is not None else None
        h = self.lora_dropout(x)
        if state is None or state.iid or not self.num_attributes:
            return out + self.scaling * F.linear(F.linear(h, self.m2a_lora_A), self.m2a_lora_B)
        squeeze = x.dim() == 2
        if squeeze:  # (batch, in) inputs, e.g. a pooled vector
            x, h, out = x.unsqueeze(1), h.unsqueeze(1), out.unsqueeze(1)
        if state.known_rows:  # eager, the first rows' values all known: their unknown LoRAs are skipped
            out = out + self._known_rows_lora_deltas(h, state.known_rows)
        else:
            out = out + self._lora_deltas(h, state.unknown)
        if state.embeddings is not None:
            rows = state.fine_rows
            if rows is None:
                out = out + self._place_attribute_delta(self._fine_delta(x, state.embeddings))
            else:  # only the first `rows` rows may hold known values (`joint`: NN rows, then NN† rows)
                fine = self._place_attribute_delta(self._fine_delta(x[:rows], state.embeddings))
                out = torch.cat([out[:rows] + fine, out[rows:]], dim=0)
        return out.squeeze(1) if squeeze else out

    def extra_repr(self) -> str:
        text = f"{super().extra_repr()}, rank={self.rank}"
        if self.fan_in_fan_out:
            text += ", fan_in_fan_out=True"
        if self.num_attributes:
            text += f", attributes={self.num_attributes}, kron={self.kron_shape}"
        if self.fused_qkv:
            text += f", fused_qkv=True (attributes adapt Q and V: {self.attribute_out_features} outputs)"
        return text


def _linear_sizes(module: nn.Module) -> tuple[int, int]:
    """`(in_features, out_features)` of an `nn.Linear` or a GPT-2 `Conv1D` (whose weight is (in, out))."""
    if isinstance(module, Conv1D):
        return module.weight.shape[0], module.weight.shape[1]
    return module.in_features, module.out_features


def _matches(name: str, suffixes: list[str]) -> str | None:
    for suffix in suffixes:
        if name == suffix or name.endswith("." + suffix):
            return suffix
    return None


def _inject_adapters(backbone: nn.Module, config: M2AConfig, router: _Router) -> tuple[list[str], list[str]]:
    """Replace the targeted `nn.Linear` (or GPT-2 `Conv1D`) layers of `backbone` by `M2ALinear`, chosen by module-name
    suffix; each wraps the layer's own weight and bias (no copy). Returns the placement used: the config's lists, or
    its backbone family's defaults (`M2AConfig.resolved_target_modules`); a family without defaults and no list in
    the config is an error that lists the backbone's linear layers."""
    m2a_targets, lora_targets = config.resolved_target_modules()
    embedding_dim = config.value_embedding_size
    linear_names = [n for n, m in backbone.named_modules() if isinstance(m, (nn.Linear, Conv1D))]
    suffixes = sorted({n.split(".")[-1] for n in linear_names} | {".".join(n.split(".")[-2:]) for n in linear_names})
    if m2a_targets is None or lora_targets is None:
        unset = [
            f for f, v in (("m2a_target_modules", m2a_targets), ("lora_target_modules", lora_targets)) if v is None
        ]
        raise ValueError(
            f"the backbone family {config.backbone_model_type!r} ({type(backbone).__name__}) has no default adapter "
            f"placement (known families: {sorted(TRANSFORMERS_MODELS_TO_M2A_TARGET_MODULES_MAPPING)}). Pass "
            f"{' and '.join(f'`{f}`' for f in unset)} with suffixes of its linear layers, e.g. {suffixes[:12]}."
        )
    fused = config.fused_qkv_modules
    found: dict[str, int] = dict.fromkeys(m2a_targets + lora_targets, 0)
    for name, module in list(backbone.named_modules()):
        if isinstance(module, M2ALinear):
            continue
        m2a_suffix = _matches(name, m2a_targets)
        lora_suffix = _matches(name, lora_targets)
        if m2a_suffix is None and lora_suffix is None:
            continue
        if not isinstance(module, (nn.Linear, Conv1D)):
            raise ValueError(
                f"target module {name!r} is a {type(module).__name__}; M2A adapts `nn.Linear` and GPT-2 `Conv1D` "
                "layers only."
            )
        found[m2a_suffix or lora_suffix] += 1
        in_features, out_features = _linear_sizes(module)
        new = M2ALinear(
            in_features,
            out_features,
            rank=config.lora_rank,
            alpha=config.lora_alpha,
            dropout=config.lora_dropout,
            num_attributes=config.num_attributes if m2a_suffix else 0,
            attribute_rank=config.attribute_lora_rank,
            attribute_alpha=config.attribute_lora_alpha,
            embedding_dim=embedding_dim,
            kron_factors=config.kron_factors,
            router=router,
            base_layer=module,
            fused_qkv=m2a_suffix is not None and _matches(name, fused) is not None,
        )
        parent_name, _, child = name.rpartition(".")
        setattr(backbone.get_submodule(parent_name) if parent_name else backbone, child, new)
    missing = [s for s, n in found.items() if n == 0]
    if missing:
        raise ValueError(
            f"the backbone ({type(backbone).__name__}) has no linear layer matching target module(s) {missing}. "
            f"Pass `m2a_target_modules` / `lora_target_modules` with suffixes of its linear layers, e.g. {suffixes[:12]}."
        )
    return m2a_targets, lora_targets


# ----------------------------------------------------------------------------------------------------------------------
# Heads and outputs
# ----------------------------------------------------------------------------------------------------------------------
class M2AClassificationHead(nn.Module):
    """dropout → dense → tanh → dropout → out_proj on one token: the first (`pooling="first"`, encoders; the RoBERTa
    head, equal to BERT's pooler + classifier, which lets `m2a_hf.adapters.export_coarse` write a plain checkpoint of
    either architecture) or the last non-pad token (`pooling="last"`, decoders; found from `attention_mask`, so left
    and right padding give the same result)."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float, pooling: str = "first") -> None:
        super().__init__()
        if pooling not in ("first", "last"):
            raise ValueError(f"`pooling` must be 'first' or 'last', got {pooling!r}.")
        self.pooling = pooling
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.pooling == "first":
            x = hidden_states[:, 0]
        elif attention_mask is None:
            x = hidden_states[:, -1]
        else:  # the last position whose mask is set, per row (batch,)
            positions = torch.arange(hidden_states.shape[1], device=hidden_states.device)
            last = (attention_mask.to(torch.long) * positions).argmax(-1)
            x = hidden_states[torch.arange(hidden_states.shape[0], device=hidden_states.device), last]
        x = torch.tanh(self.dense(self.dropout(x)))
        return self.out_proj(self.dropout(x))


class M2ACausalLMHead(nn.Module):
    """The decoder's LM head (frozen): the word-embedding matrix when the backbone ties them, else a matrix of its
    own (`weight`, vocab × hidden, copied from the checkpoint's LM head by `from_backbone`). Applied to the positions
    that have a next-token target only."""

    def __init__(self, backbone_config: Any) -> None:
        super().__init__()
        self.tied = bool(getattr(backbone_config, "tie_word_embeddings", True))
        if not self.tied:
            self.weight = nn.Parameter(torch.empty(backbone_config.vocab_size, backbone_config.hidden_size))

    def forward(self, hidden_states: torch.Tensor, input_embeddings: torch.Tensor) -> torch.Tensor:
        return F.linear(hidden_states, input_embeddings if self.tied else self.weight)


class M2AMLMHead(nn.Module):
    """dense → activation → LayerNorm → tied decoder (the word-embedding matrix, frozen) + bias. Applied to the masked
    positions only, never to every token."""

    def __init__(self, backbone_config: Any) -> None:
        super().__init__()
        hidden = backbone_config.hidden_size
        act = getattr(backbone_config, "hidden_act", "gelu")
        self.dense = nn.Linear(hidden, hidden)
        self.act = ACT2FN[act] if isinstance(act, str) else act
        eps = getattr(backbone_config, "layer_norm_eps", getattr(backbone_config, "norm_eps", 1e-12))
        self.layer_norm = nn.LayerNorm(hidden, eps=eps)
        self.bias = nn.Parameter(torch.zeros(backbone_config.vocab_size))

    def forward(self, hidden_states: torch.Tensor, decoder_weight: torch.Tensor) -> torch.Tensor:
        x = self.layer_norm(self.act(self.dense(hidden_states)))
        return F.linear(x, decoder_weight, self.bias)


class M2AValueEmbedding(nn.Embedding):
    """Per-value embedding of one attribute; zero-initialised, so an untrained value adds nothing to the fine view."""


@dataclass
class M2ASequenceClassifierOutput(ModelOutput):
    """Output of `M2AForSequenceClassification`.

    Args:
        loss (`torch.FloatTensor` of shape `(1,)`, *optional*): training objective of the configured training policy
            (classification + α·MLM [+ λ·NN† + β·KL]) in training; classification loss in evaluation.
        logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`): per-sample routed view (NN).
        coarse_logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`, *optional*): NN† logits (`joint` only).
        mlm_loss (`torch.FloatTensor`, *optional*): the auxiliary LM loss, when computed: masked-LM, or causal-LM for a
            decoder backbone.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): encoder hidden states.
        attentions (`tuple(torch.FloatTensor)`, *optional*): attention weights.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    coarse_logits: torch.FloatTensor | None = None
    mlm_loss: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


# ----------------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------------
M2A_ADAPTER_CONFIG_NAME = "m2a_adapter_config.json"  # written by m2a_hf.adapters.save_adapter


def _holds_m2a_adapter(path: Any, kwargs: dict[str, Any]) -> bool:
    """Whether `path` (folder or Hub repo id) holds an M2A adapter (`m2a_adapter_config.json`) and no `config.json`."""
    lookup = {
        "subfolder": kwargs.get("subfolder") or "",
        "revision": kwargs.get("revision"),
        "token": kwargs.get("token"),
        "cache_dir": kwargs.get("cache_dir"),
        "local_files_only": kwargs.get("local_files_only", False),
        "_raise_exceptions_for_missing_entries": False,
        "_raise_exceptions_for_connection_errors": False,
    }
    try:
        return (
            cached_file(str(path), M2A_ADAPTER_CONFIG_NAME, **lookup) is not None
            and cached_file(str(path), "config.json", **lookup) is None
        )
    except (OSError, ValueError):
        return False


class M2APreTrainedModel(PreTrainedModel):
    config_class = M2AConfig
    base_model_prefix = "m2a"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = getattr(self.config.backbone_config, "initializer_range", 0.02)
        if isinstance(module, M2ALinear):
            module.reset_adapter_parameters()
        elif isinstance(module, M2AValueEmbedding):
            module.weight.zero_()
        elif isinstance(module, M2AClassificationHead):
            for layer in (module.dense, module.out_proj):
                layer.weight.normal_(0.0, std)
                layer.bias.zero_()
        elif isinstance(module, M2ACausalLMHead) and not module.tied:
            module.weight.normal_(0.0, std)
        elif isinstance(module, M2AMLMHead):
            module.dense.weight.normal_(0.0, std)
            module.dense.bias.zero_()
            module.layer_norm.weight.fill_(1.0)
            module.layer_norm.bias.zero_()
            module.bias.zero_()

    def save_pretrained(
        self, save_directory: str | os.PathLike, *args: Any, attribute_vocab: Any = None, **kwargs: Any
    ) -> Any:
        """`PreTrainedModel.save_pretrained`, with `config.json` written once and complete (never rewritten later).

        The config gets the complete `auto_map` (`register_for_auto_class` writes only the saved class) and
        `custom_pipelines`, so that `transformers.pipeline(model=..., trust_remote_code=True)` finds `pipeline_m2a.py`
        (copied along because this file imports it relatively), and `attribute_vocab` when one is available.

        Args:
            save_directory: Target folder.
            attribute_vocab: The attribute vocabulary (`attribute_vocab.json` format, or anything with `to_dict()`);
                validated, then stored as `config.attribute_vocab` (kept for later saves). Default: the config's own.
        """
        self.config.auto_map = dict(AUTO_MAP)
        self.config.custom_pipelines = copy.deepcopy(CUSTOM_PIPELINES)
        if attribute_vocab is not None:
            vocab = attribute_vocab.to_dict() if hasattr(attribute_vocab, "to_dict") else attribute_vocab
            parse_attribute_vocab(vocab)  # validate before anything is written
            self.config.attribute_vocab = json.loads(json.dumps(vocab))
        return super().save_pretrained(save_directory, *args, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, *args: Any, **kwargs: Any) -> Any:
        """`PreTrainedModel.from_pretrained`, also reading checkpoints whose unknown LoRAs are still named
        `m2a_attr_A`/`m2a_attr_B` (see `LEGACY_KEY_MAPPING`; a `key_mapping` passed in is applied as well). An
        adapter-only folder (`m2a_adapter_config.json`, no backbone) is refused with a pointer to `from_adapter`."""
        kwargs["key_mapping"] = {**LEGACY_KEY_MAPPING, **(kwargs.get("key_mapping") or {})}
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except (OSError, ValueError) as err:
            if _holds_m2a_adapter(pretrained_model_name_or_path, kwargs):
                raise OSError(
                    f"{pretrained_model_name_or_path} holds an M2A adapter (no backbone); load it with "
                    "m2a_hf.adapters.from_adapter(...) (`pip install m2a-hf`), which rebuilds the model on its "
                    "backbone."
                ) from err
            raise


class M2AModel(M2APreTrainedModel):
    """The backbone encoder with M2A adapters; returns the encoder's hidden states (`BaseModelOutputWithPooling`).

    `pooler_output` is the backbone's pooled output where it has a pooler and `None` otherwise; BERT's pooler is
    dropped when the model is built (the classification head pools the first token itself), so it is `None` for
    BERT backbones. Without `attribute_ids` every attribute is unknown (the coarse path), so
    `AutoModel.from_pretrained(path, trust_remote_code=True)(**tokenizer(texts, return_tensors="pt"))` works.

    Example:

    ```python
    >>> import torch
    >>> from transformers import BertConfig
    >>> config = M2AConfig(
    ...     backbone_config=BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128),
    ...     attributes={"user": 10},
    ...     lora_rank=4,
    ... )
    >>> model = M2AModel(config)
    >>> out = model(input_ids=torch.tensor([[101, 7592, 102]]), attribute_ids=torch.tensor([[3]]))
    >>> out.last_hidden_state.shape
    torch.Size([1, 3, 64])
    ```
    """

    # `AutoModel` on an `M2AForSequenceClassification` checkpoint: its heads are not part of the encoder
    _keys_to_ignore_on_load_unexpected = [r"^classifier\.", r"^mlm_head\.", r"^clm_head\."]

    def __init__(self, config: M2AConfig) -> None:
        super().__init__(config)
        backbone = AutoModel.from_config(config.backbone_config)
        if getattr(backbone, "pooler", None) is not None:
            backbone.pooler = None  # unused: the classification head pools the first token itself
        self._router = _Router()
        self._logged_missing_attribute_ids = False
        # the family defaults are written into the config, so a saved config.json names its placement
        config.m2a_target_modules, config.lora_target_modules = _inject_adapters(backbone, config, self._router)
        self.backbone = backbone
        dim = config.value_embedding_size
        self.value_embeddings = nn.ModuleList([M2AValueEmbedding(n, dim) for n in config.attribute_sizes])
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.backbone.set_input_embeddings(value)

    def adapted_layers(self) -> list[tuple[str, M2ALinear]]:
        """`(name, layer)` of every `M2ALinear` in the backbone."""
        return [(n, m) for n, m in self.backbone.named_modules() if isinstance(m, M2ALinear)]

    def check_attribute_ids(self, attribute_ids: torch.Tensor | None, batch_size: int, view: str | None) -> None:
        """Raise a `ValueError` naming the problem when `view` or `attribute_ids` does not fit this model.

        `attribute_ids=None` is valid (every attribute unknown); given ids must be a signed integer tensor of shape
        `(batch_size, num_attributes)` with values in `[-1, num_values)`. Shape and dtype are checked on the host;
        the value range costs one host sync, and is skipped inside a compiled region (`torch.compile`), which relies
        on the collator (`M2ADataCollator` / `AttributeVocab` map values to valid ids) or on an eager first batch.
        """
        names, sizes = self.config.attribute_names, self.config.attribute_sizes
        if view not in VIEWS:
            raise ValueError(f"`view` must be one of {list(VIEWS)}, got {view!r}.")
        if attribute_ids is None:  # every attribute unknown (`missing_attribute_ids`)
            return
        if not isinstance(attribute_ids, torch.Tensor):
            raise ValueError(f"`attribute_ids` must be a torch.LongTensor, got {type(attribute_ids).__name__}.")
        if attribute_ids.dtype not in _SIGNED_INTEGER_DTYPES:  # uint8 cannot hold -1 (it wraps to 255)
            raise ValueError(
                f"`attribute_ids` must be a signed integer tensor (torch.long), -1 for an unknown value; got dtype "
                f"{attribute_ids.dtype}."
            )
        if attribute_ids.dim() != 2 or attribute_ids.shape != (batch_size, len(names)):
            raise ValueError(
                f"`attribute_ids` must have shape (batch, num_attributes) = ({batch_size}, {len(names)}) with columns "
                f"{names}, got shape {tuple(attribute_ids.shape)}."
            )
        if not names or attribute_ids.numel() == 0 or is_torchdynamo_compiling():
            return
        limits = torch.tensor(sizes, device=attribute_ids.device)
        bad = (attribute_ids < -1) | (attribute_ids >= limits)
        if bool(bad.any()):
            row, col = (int(i) for i in bad.nonzero()[0])
            raise ValueError(
                f"`attribute_ids`[{row}, {col}] = {int(attribute_ids[row, col])} is out of range for attribute "
                f"{names[col]!r}: expected -1 (unknown) or an id in [0, {sizes[col] - 1}]."
            )

    def missing_attribute_ids(self, attribute_ids: torch.Tensor | None, view: str | None) -> bool:
        """Whether this forward routes by attributes but got no `attribute_ids`, so every attribute is unknown.

        That is the coarse path (NN†, the same as `view="coarse"` and as an all `-1` `attribute_ids`), the one the
        model was trained for when nothing is known about a sample: `AutoModel` / `pipeline("feature-extraction")` /
        sentence-transformers call the model with the tokenizer's output alone. Logged once per model instance.
        """
        if attribute_ids is not None or view not in (None, "fine") or not self.config.attribute_names:
            return False
        if not self._logged_missing_attribute_ids:
            self._logged_missing_attribute_ids = True
            logger.info(
                "No `attribute_ids` given: every attribute (%s) is treated as unknown, i.e. the coarse unknown-value "
                "adapters are used (the same as `view='coarse'`). Pass `attribute_ids` (-1 for an unknown value) for "
                "attribute-aware predictions.",
                ", ".join(self.config.attribute_names),
            )
        return True

    def route(
        self, attribute_ids: torch.Tensor | None, batch_size: int, view: str | None, fine_rows: int | None = None
    ) -> _Routing:
        """The routing of a forward, at fixed shapes and without a host sync (see `_Routing`).

        Unknown ids (-1) are looked up as id 0 and their embedding multiplied by 0, so every row takes both paths
        with the unused one zero-weighted. `fine_rows`: only the first `fine_rows` rows may hold known values (the
        rest are routed as unknown whatever their ids, and the fine adapters skip them); `None`: every row.
        """
        if view == "iid":
            return _Routing(iid=True)
        if view == "coarse" or attribute_ids is None or not self.config.num_attributes:
            return _Routing()
        if fine_rows is not None and not 0 <= fine_rows <= batch_size:
            raise ValueError(f"`fine_rows` must be in [0, {batch_size}] (the batch size), got {fine_rows}.")
        ids = attribute_ids if fine_rows is None else attribute_ids[:fine_rows]
        known = ids >= 0  # (fine_rows, A)
        looked_up = ids.clamp_min(0)
        embeddings = torch.stack([table(looked_up[:, a]) for a, table in enumerate(self.value_embeddings)], dim=1)
        embeddings = embeddings * known.unsqueeze(-1).to(embeddings.dtype)  # (fine_rows, A, E), zero where unknown
        unknown = (~known).to(embeddings.dtype)
        if fine_rows is not None and fine_rows < batch_size:
            unknown = torch.cat([unknown, unknown.new_ones(batch_size - fine_rows, unknown.shape[1])], dim=0)
        known_rows = 0
        if not is_torchdynamo_compiling() and ids.shape[0] and bool(known.all()):  # eager: one host sync
            known_rows = ids.shape[0]
        return _Routing(unknown=unknown, embeddings=embeddings, fine_rows=fine_rows, known_rows=known_rows)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        attribute_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        view: str | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        validate_attribute_ids: bool = True,
        fine_rows: int | None = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPooling | tuple:
        r"""
        attribute_ids (`torch.LongTensor` of shape `(batch_size, num_attributes)`, *optional*):
            Value id of each attribute in `config.attribute_names` order; `-1` means unknown (that attribute's
            unknown LoRA is used instead of the fine adapter). Omitted: every attribute unknown, the same as all
            `-1` and as `view="coarse"` (logged once, at info level), so the tokenizer's output alone is a valid
            input (`AutoModel`, `pipeline("feature-extraction")`, sentence-transformers).
        view (`str`, *optional*):
            `None`/`"fine"`: per-sample routing; `"coarse"`: every attribute treated as unknown (NN†); `"iid"`: the
            coarse LoRA alone.
        validate_attribute_ids (`bool`, *optional*, defaults to `True`):
            Check `view` and `attribute_ids` (`check_attribute_ids`). `M2AForSequenceClassification` checks the
            caller's ids itself, before its training policy rewrites them, and passes `False`.
        fine_rows (`int`, *optional*):
            Only the first `fine_rows` rows may hold known values; the others are routed as unknown whatever their
            ids, and the fine adapters skip them (the `joint` policy's NN† half). `None`: every row.
        """
        batch_size = _input_shape(input_ids, inputs_embeds)[0]
        if validate_attribute_ids:
            self.check_attribute_ids(attribute_ids, batch_size, view)
            self.missing_attribute_ids(attribute_ids, view)  # None routes every attribute coarse (see `route`)
        self._router.state = self.route(attribute_ids, batch_size, view, fine_rows)
        if self.config.is_causal_lm:
            kwargs.setdefault("use_cache", False)
            if position_ids is None and attention_mask is not None:  # left padding: positions count real tokens
                position_ids = (attention_mask.to(torch.long).cumsum(-1) - 1).clamp_min(0)
        backbone_kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        if position_ids is not None:  # not every backbone takes them (DistilBERT)
            backbone_kwargs["position_ids"] = position_ids
        outputs = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            **backbone_kwargs,
            **kwargs,
        )
        result = BaseModelOutputWithPooling(
            last_hidden_state=outputs.last_hidden_state,
            pooler_output=getattr(outputs, "pooler_output", None),
            hidden_states=getattr(outputs, "hidden_states", None),
            attentions=getattr(outputs, "attentions", None),
        )
        return result if return_dict is not False else result.to_tuple()


class M2AForSequenceClassification(M2APreTrainedModel):
    """M2A encoder + classification head (+ MLM head for the masked-LM term; for a decoder backbone, last-token
    pooling and the frozen LM head for the causal-LM term).

    Build one on a pretrained backbone with `m2a_hf` (`M2AForSequenceClassification.from_backbone`, available once
    `m2a_hf` is imported), train it with the stock `transformers.Trainer`, save it with `save_pretrained` and load it
    anywhere with `AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True)`.
    """

    keys_to_ignore_at_inference = ["coarse_logits", "mlm_loss", "hidden_states", "attentions"]

    def __init__(self, config: M2AConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.m2a = M2AModel(config)
        dropout = config.classifier_dropout
        if dropout is None:
            dropout = getattr(config.backbone_config, "hidden_dropout_prob", 0.1)
        hidden = config.backbone_config.hidden_size
        pooling = "last" if config.is_causal_lm else "first"
        self.classifier = M2AClassificationHead(hidden, config.num_labels, dropout, pooling=pooling)
        if config.is_causal_lm:  # the auxiliary loss is the causal-LM loss, on the decoder's own (frozen) LM head
            self.clm_head = M2ACausalLMHead(config.backbone_config)
        else:
            self.mlm_head = M2AMLMHead(config.backbone_config)
        self._logged_ignored_mlm_labels = False
        self.training_stage = 1
        self.post_init()
        self.set_stage(1)

    # ------------------------------------------------------------------ trainable parameters and stages
    def adapter_parameter_names(self, stage: int = 1) -> list[str]:
        """Names of the parameters M2A trains (stage 1), or only the unknown LoRAs (stage 2)."""
        names = []
        for layer_name, layer in self.m2a.adapted_layers():
            for pname in layer.adapter_parameters():
                if stage == 1 or pname.startswith("m2a_unknown_lora_"):
                    names.append(f"m2a.backbone.{layer_name}.{pname}")
        if stage == 1:
            names += [n for n, _ in self.named_parameters() if n.startswith(("m2a.value_embeddings.", "classifier."))]
            if self.config.train_mlm_head:
                names += [n for n, _ in self.named_parameters() if n.startswith("mlm_head.")]
            if self.config.train_layer_norms:
                for mod_name, module in self.m2a.backbone.named_modules():
                    if isinstance(module, nn.LayerNorm):
                        names += [f"m2a.backbone.{mod_name}.{p}" for p, _ in module.named_parameters()]
        return names

    def set_stage(self, stage: int) -> None:
        """Stage 1: joint training of adapters, value embeddings, heads (and LayerNorms), or everything when
        `full_finetune`. Stage 2 ("continue learning"): only the unknown LoRAs train, on the coarse view."""
        if stage not in (1, 2):
            raise ValueError(f"`stage` must be 1 (joint training) or 2 (the unknown LoRAs only), got {stage!r}.")
        self.training_stage = stage
        if stage == 1 and self.config.full_finetune:
            trainable = None
        else:
            trainable = set(self.adapter_parameter_names(stage))
        word_embeddings = self.m2a.get_input_embeddings().weight
        for name, param in self.named_parameters():
            param.requires_grad_(trainable is None or name in trainable)
        if trainable is not None:
            word_embeddings.requires_grad_(False)

    @property
    def mlm_head_trains(self) -> bool:
        """Whether the masked-LM head has trainable parameters (a decoder's causal-LM head is frozen)."""
        head = getattr(self, "mlm_head", None)
        return head is not None and any(p.requires_grad for p in head.parameters())

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        attribute_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        mlm_labels: torch.LongTensor | None = None,
        view: str | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> M2ASequenceClassifierOutput | tuple:
        r"""
        attribute_ids (`torch.LongTensor` of shape `(batch_size, num_attributes)`, *optional*):
            Value ids in `config.attribute_names` order, `-1` = unknown. Omitted: every attribute unknown, exactly as
            an all `-1` tensor (training policies included), logged once at info level.
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Class ids in `[0, num_labels)`.
        mlm_labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Original token ids at the positions to mask, -100 elsewhere (see `M2ADataCollator`). In training those
            positions are replaced by the mask token (the classifier sees the masked input, as in the reference) and
            the masked-LM loss is added with weight α; in evaluation they are ignored and the input stays clean.
            Decoder backbones (`config.is_causal_lm`) ignore them: their auxiliary loss is the causal-LM loss on the
            unmasked text, whose targets the model takes from `input_ids` and `attention_mask` itself (the next token
            at every position where both it and the next one are not padding).
        view (`str`, *optional*):
            How this forward routes: `None` (per sample), `"coarse"` (NN†, attributes ignored) or `"iid"`. A training
            forward with labels and no `view` follows `config.training_policy` instead.
        return_dict (`bool`, *optional*):
            `False` returns `M2ASequenceClassifierOutput.to_tuple()`: the fields that are set, in field order.
        """
        shape = _input_shape(input_ids, inputs_embeds)
        self.m2a.check_attribute_ids(attribute_ids, shape[0], view)  # the caller's ids, once per forward
        policy = self._training_policy(labels, view)
        # Missing ids: every attribute unknown. Outside training the encoder routes `None` statically (the coarse
        # path); a training policy gets an all -1 tensor to rewrite (`joint` still doubles the batch).
        if self.m2a.missing_attribute_ids(attribute_ids, view) and policy is not None:
            device = (input_ids if input_ids is not None else inputs_embeds).device
            attribute_ids = torch.full((shape[0], self.config.num_attributes), -1, dtype=torch.long, device=device)
        self._check_labels(labels, mlm_labels, shape)
        if self.config.is_causal_lm:
            if mlm_labels is not None and not self._logged_ignored_mlm_labels:
                self._logged_ignored_mlm_labels = True
                logger.info(
                    "`mlm_labels` are ignored with a decoder backbone: the auxiliary loss is the causal-LM loss, taken "
                    "from `input_ids` (pass `mlm_probability=0` to `M2ADataCollator` to skip them)."
                )
            use_lm = policy is not None and input_ids is not None and self.config.mlm_weight > 0
            mlm_labels = _causal_lm_labels(input_ids, attention_mask) if use_lm else None
        use_mlm = policy is not None and mlm_labels is not None and self.config.mlm_weight > 0
        if use_mlm and input_ids is not None and not self.config.is_causal_lm:
            if self.config.mask_token_id is None:
                raise ValueError("`mlm_labels` were given but `config.mask_token_id` is not set.")
            input_ids = input_ids.masked_fill(mlm_labels != -100, self.config.mask_token_id)
        if policy is not None and not use_mlm and not self.config.is_causal_lm and self.mlm_head_trains:
            # No MLM term in this batch (no `mlm_labels`, or `mlm_weight=0`), but a trainable MLM head: it runs on no
            # position (zero gradients), so that every trainable parameter takes part in every training backward
            # (`DistributedDataParallel(find_unused_parameters=False)`).
            device = (input_ids if input_ids is not None else inputs_embeds).device
            mlm_labels, use_mlm = torch.full(shape, -100, dtype=torch.long, device=device), True
        attribute_ids, doubled = self._apply_training_policy(attribute_ids, policy)

        def rows(t: torch.Tensor | None) -> torch.Tensor | None:  # `joint`: the batch twice, NN rows then NN† rows
            return torch.cat([t, t], 0) if (doubled and t is not None) else t

        outputs = self.m2a(
            input_ids=rows(input_ids),
            attention_mask=rows(attention_mask),
            token_type_ids=rows(token_type_ids),
            attribute_ids=attribute_ids,
            position_ids=rows(position_ids),
            inputs_embeds=rows(inputs_embeds),
            view=None if view == "fine" else view,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            validate_attribute_ids=False,
            fine_rows=shape[0] if doubled else None,
            **kwargs,
        )
        hidden = outputs.last_hidden_state
        all_logits = self.classifier(hidden, rows(attention_mask))
        logits, coarse_logits = all_logits.chunk(2) if doubled else (all_logits, None)
        loss = mlm_loss = None
        if labels is not None:
            loss, mlm_loss = self._loss(all_logits, hidden, labels, mlm_labels if use_mlm else None, doubled)
        output = M2ASequenceClassifierOutput(
            loss=loss,
            logits=logits,
            coarse_logits=coarse_logits,
            mlm_loss=mlm_loss,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return output.to_tuple() if return_dict is False else output

    def _check_labels(
        self, labels: torch.Tensor | None, mlm_labels: torch.Tensor | None, input_shape: tuple[int, ...]
    ) -> None:
        # The label range needs a host sync: skipped inside a compiled region (the collator's labels are trusted).
        if labels is not None and not is_torchdynamo_compiling():
            valid = labels != -100
            if bool(((labels[valid] < 0) | (labels[valid] >= self.num_labels)).any()):
                bad = labels[valid][(labels[valid] < 0) | (labels[valid] >= self.num_labels)][0]
                raise ValueError(
                    f"label {int(bad)} is out of range: this model has num_labels={self.num_labels}, so labels must "
                    f"be in [0, {self.num_labels - 1}] (or -100 to ignore)."
                )
        if mlm_labels is not None and tuple(mlm_labels.shape) != tuple(input_shape):
            raise ValueError(
                f"`mlm_labels` must have the shape of `input_ids` {tuple(input_shape)}, got {tuple(mlm_labels.shape)}."
            )

    def _training_policy(self, labels: torch.Tensor | None, view: str | None) -> str | None:
        """The training policy of this forward: `config.training_policy` (`coarse` in stage 2) for a training forward
        with labels and no explicit `view`; `None` otherwise (evaluation, inference, a forced view)."""
        if not (self.training and labels is not None and view is None):
            return None
        return "coarse" if self.training_stage == 2 else self.config.training_policy

    def _apply_training_policy(
        self, attribute_ids: torch.Tensor | None, policy: str | None
    ) -> tuple[torch.Tensor | None, bool]:
        """The attribute ids the encoder routes by under `policy`, and whether the batch is doubled.

        `joint`: the ids, then every id unknown (NN rows then NN† rows, one pass over twice the batch);
        `stochastic`: each row's ids replaced by unknowns with probability `effective_stochastic_coarse_prob`;
        `coarse`: `None` (every id unknown, which the encoder routes statically: the fine adapters do not run);
        `fine` or no policy: the ids as given.
        """
        if attribute_ids is None or policy in (None, "fine"):
            return attribute_ids, False
        if policy == "coarse":
            return None, False
        unknown = torch.full_like(attribute_ids, -1)
        if policy == "joint":
            return torch.cat([attribute_ids, unknown], 0), True
        draw = torch.rand(attribute_ids.shape[0], device=attribute_ids.device)  # `stochastic`
        coarse = draw < self.config.effective_stochastic_coarse_prob
        return torch.where(coarse[:, None], unknown, attribute_ids), False

    def _loss(
        self,
        all_logits: torch.Tensor,
        hidden: torch.Tensor,
        labels: torch.Tensor,
        mlm_labels: torch.Tensor | None,
        doubled: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The objective and the masked-LM loss of the routed view (`None` without `mlm_labels`).

        Each view costs classification + α·MLM; a doubled (`joint`) batch adds them as L_NN + λ·L_NN†, plus
        β·T²·KL(NN ‖ NN†) when `kl_weight > 0`.
        """
        config = self.config
        views = 2 if doubled else 1
        valid = labels != -100
        ce = F.cross_entropy(all_logits.float(), labels.repeat(views), reduction="none")
        terms, mlm_losses = [], []
        for ce_view, hidden_view in zip(ce.chunk(views), hidden.chunk(views), strict=True):
            term = _masked_mean(ce_view, valid)
            if mlm_labels is not None:
                mlm_losses.append(self._mlm_loss(hidden_view, mlm_labels))
                term = term + config.mlm_weight * mlm_losses[-1]
            terms.append(term)
        loss = terms[0]
        if doubled:
            loss = loss + config.coarse_weight * terms[1]
            if config.kl_weight > 0:
                loss = loss + config.kl_weight * self._distillation_loss(*all_logits.chunk(2))
        return loss, (mlm_losses[0] if mlm_losses else None)

    def _mlm_loss(self, hidden: torch.Tensor, mlm_labels: torch.Tensor) -> torch.Tensor:
        """The auxiliary LM loss: mean cross-entropy over the positions where `mlm_labels != -100` (0 when there is
        none); masked-LM for encoders, causal-LM for decoders (their labels are the next tokens, `_causal_lm_labels`).

        The MLM head runs on the masked positions only: in eager mode gathered by index (one host sync); inside a
        compiled region on a fixed number of positions, the first of them sorted masked-first (see
        `COMPILED_MLM_CAPACITY`), the rest ignored by the cross-entropy. Either way the head stays in the autograd
        graph when no position is masked (zero gradients, as `DistributedDataParallel` needs).
        """
        labels = mlm_labels.flatten()  # (batch·seq,)
        selected = labels != -100
        count = selected.sum()
        if is_torchdynamo_compiling():
            capacity = min(labels.numel(), math.ceil(COMPILED_MLM_CAPACITY * labels.numel()) + mlm_labels.shape[0])
            if self.config.is_causal_lm:  # every real token is a causal-LM target
                capacity = labels.numel()
            torch._assert_async(
                count <= capacity,
                f"more masked positions than a compiled forward's MLM capacity ({capacity}: "
                f"{COMPILED_MLM_CAPACITY:.0%} of the tokens plus one per row); lower `mlm_probability`",
            )
            positions = torch.argsort((~selected).to(torch.uint8), stable=True)[:capacity]
        else:
            positions = selected.nonzero().squeeze(1)
        rows = hidden.flatten(0, 1).index_select(0, positions)  # (positions, hidden)
        head = self.clm_head if self.config.is_causal_lm else self.mlm_head
        logits = head(rows, self.m2a.get_input_embeddings().weight)  # (positions, vocab)
        loss = F.cross_entropy(logits.float(), labels.index_select(0, positions), reduction="sum")
        return loss / count.clamp_min(1)

    def _distillation_loss(self, logits: torch.Tensor, coarse_logits: torch.Tensor) -> torch.Tensor:
        """T²·KL(NN ‖ NN†) at temperature T = `kl_temperature`; NN (detached) teaches NN†."""
        t = self.config.kl_temperature
        kl = F.kl_div(
            F.log_softmax(coarse_logits.float() / t, -1),
            F.softmax(logits.detach().float() / t, -1),
            reduction="batchmean",
        )
        return (t * t) * kl


def _input_shape(input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None) -> tuple[int, int]:
    """`(batch, sequence)` of the input, from `input_ids` or else `inputs_embeds`."""
    if input_ids is not None:
        return tuple(input_ids.shape)
    if inputs_embeds is not None:
        return tuple(inputs_embeds.shape[:2])
    raise ValueError("You have to specify either `input_ids` or `inputs_embeds`.")


def _causal_lm_labels(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Next-token targets aligned with the positions that predict them (batch, seq): `input_ids[:, t + 1]` at
    position t where tokens t and t + 1 are both real (attention mask set), -100 elsewhere (the last position, and
    padding on either side)."""
    labels = torch.full_like(input_ids, -100)
    labels[:, :-1] = input_ids[:, 1:]
    if attention_mask is not None:
        mask = attention_mask.bool()
        valid = torch.zeros_like(mask)
        valid[:, :-1] = mask[:, :-1] & mask[:, 1:]
        labels = labels.masked_fill(~valid, -100)
    return labels


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


__all__ = [
    "M2ACausalLMHead",
    "M2AClassificationHead",
    "M2AForSequenceClassification",
    "M2ALinear",
    "M2AMLMHead",
    "M2AModel",
    "M2APreTrainedModel",
    "M2ASequenceClassifierOutput",
    "kron_shapes",
]
