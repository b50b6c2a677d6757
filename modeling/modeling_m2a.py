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
from transformers.utils import ModelOutput, cached_file, logging

from .configuration_m2a import TRANSFORMERS_MODELS_TO_M2A_TARGET_MODULES_MAPPING, M2AConfig
from .pipeline_m2a import CUSTOM_PIPELINES, parse_attribute_vocab


logger = logging.get_logger(__name__)

VIEWS = (None, "fine", "coarse", "iid")
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
# Routing: which rows of the batch take which path, set once per forward and read by every adapted layer
# ----------------------------------------------------------------------------------------------------------------------
Rows = slice | torch.Tensor | None  # None: no row; slice: a contiguous range (slice(None) = all); tensor: row indices


@dataclass
class _AttributeRoute:
    fine_rows: Rows  # rows whose value is known (fine adapter)
    coarse_rows: Rows  # rows whose value is unknown (unknown LoRA)
    embeddings: torch.Tensor | None  # (n_fine, E) value embeddings of the fine rows


@dataclass
class _Routing:
    iid: bool
    attributes: list[_AttributeRoute]


class _Router:
    """Holds the routing of the current forward. Deliberately not cleared after the forward: gradient checkpointing
    re-runs layers during backward and must see the same routing."""

    def __init__(self) -> None:
        self.state: _Routing | None = None


def _rows(mask: torch.Tensor, count: int, first: int, last: int) -> Rows:
    """The rows where `mask` (batch,) is true, given their number and the first and last of them (host integers).

    Contiguous rows become a slice; scattered ones a tensor of indices in order, found with a stable sort rather than
    `nonzero`, whose data-dependent size would cost another host sync.
    """
    if count == 0:
        return None
    if count == mask.shape[0]:
        return slice(None)
    if last - first + 1 == count:
        return slice(first, last + 1)
    return torch.argsort((~mask).to(torch.uint8), stable=True)[:count]


def _select(x: torch.Tensor, rows: Rows) -> torch.Tensor:
    return x[rows] if isinstance(rows, slice) else x.index_select(0, rows)


def _add_parts(out: torch.Tensor, parts: list[tuple[Rows, torch.Tensor]]) -> torch.Tensor:
    """`out` plus row-disjoint pieces that together cover all its rows (an attribute's known and unknown rows).
    Contiguous pieces (the joint [NN; NN†] batch, a batch of one kind) are concatenated and added once, which is
    cheaper in the backward than in-place adds into row slices; scattered rows (`stochastic`) use `index_add_`."""
    parts = [(rows, delta) for rows, delta in parts if rows is not None]
    if all(isinstance(rows, slice) for rows, _ in parts):
        if len(parts) == 1 and parts[0][0] == slice(None):
            return out + parts[0][1]
        return out + torch.cat([delta for _, delta in sorted(parts, key=lambda part: part[0].start)], dim=0)
    for rows, delta in parts:
        if isinstance(rows, slice):
            rows = torch.arange(out.shape[0], device=out.device)[rows]
        out = out.index_add_(0, rows, delta)
    return out


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
        """`x · (C_b ⊗ D)` per row b without building the Kronecker product.

        Args: x (n, L, in); factor_c (n, p, s), one per row; factor_d (q, t), shared. Returns (n, L, out).
        """
        p, q, s, t = self.kron_shape
        n, length = x.shape[0], x.shape[1]
        xr = x.reshape(n, length, p, q)
        if self._c_first:
            z = torch.einsum("nlpq,nps->nlsq", xr, factor_c)  # (n, L, s, q)
            y = torch.matmul(z, factor_d)  # (n, L, s, t)
        else:
            z = torch.matmul(xr, factor_d)  # (n, L, p, t)
            y = torch.einsum("nlpt,nps->nlst", z, factor_c)  # (n, L, s, t)
        return y.reshape(n, length, s * t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.base_weight, self.bias)
        state = self._router.state if self._router is not None else None
        h = self.lora_dropout(x)
        if state is None or state.iid or not self.num_attributes:
            return out + self.scaling * F.linear(F.linear(h, self.m2a_lora_A), self.m2a_lora_B)
        squeeze = x.dim() == 2
        if squeeze:  # (batch, in) inputs, e.g. a pooled vector
            x, h, out = x.unsqueeze(1), h.unsqueeze(1), out.unsqueeze(1)

        all_unknown = all(r.fine_rows is None for r in state.attributes)
        if all_unknown:
            # NN† for the whole batch: one fused low-rank product over [A; A_1; ...] and [s·B, s_a·B_1, ...]
            # (the coarse LoRA and every unknown LoRA).
            lora_a = torch.cat([self.m2a_lora_A, self.m2a_unknown_lora_A.flatten(0, 1)], dim=0)
            lora_b = torch.cat(
                [
                    self.scaling * self.m2a_lora_B,
                    self._place_attribute_delta(
                        self.unknown_scaling * self.m2a_unknown_lora_B.permute(1, 0, 2).flatten(1).T
                    ).T,
                ],
                dim=1,
            )
            out = out + F.linear(F.linear(h, lora_a), lora_b)
        else:
            out = out + self.scaling * F.linear(F.linear(h, self.m2a_lora_A), self.m2a_lora_B)
            for a, route in enumerate(state.attributes):
                parts: list[tuple[Rows, torch.Tensor]] = []
                if route.coarse_rows is not None:
                    hs = _select(h, route.coarse_rows)
                    d = F.linear(F.linear(hs, self.m2a_unknown_lora_A[a]), self.m2a_unknown_lora_B[a])
                    d = self.unknown_scaling * d
                    parts.append((route.coarse_rows, self._place_attribute_delta(d)))
                if route.fine_rows is not None:
                    p, _, s, _ = self.kron_shape
                    factor_c = (route.embeddings @ self.m2a_fine_gen[a]).view(-1, p, s)
                    d = self.fine_delta(_select(x, route.fine_rows), factor_c, self.m2a_fine_shared[a])
                    parts.append((route.fine_rows, self._place_attribute_delta(d)))
                out = _add_parts(out, parts)
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
    hidden = config.backbone_config.hidden_size
    embedding_dim = config.value_embedding_dim or hidden
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
        dim = config.value_embedding_dim or config.backbone_config.hidden_size
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
        the value range costs one host sync.
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
        if not names or attribute_ids.numel() == 0:
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

    def route(self, attribute_ids: torch.Tensor | None, batch_size: int, view: str | None) -> _Routing:
        """Compute which rows take the fine and which the coarse path, per attribute.

        One host sync: the number of known rows and the first and last known and unknown row of every attribute
        come to the host in a single transfer; scattered rows are then indexed without another one.
        """
        if view == "iid":
            return _Routing(iid=True, attributes=[])
        num = self.config.num_attributes
        if view == "coarse" or attribute_ids is None:
            return _Routing(iid=False, attributes=[_AttributeRoute(None, slice(None), None)] * num)
        if batch_size == 0:
            return _Routing(iid=False, attributes=[_AttributeRoute(None, None, None)] * num)
        known = attribute_ids >= 0  # (batch, A)
        rows = torch.arange(batch_size, device=known.device)[:, None]  # (batch, 1)
        bounds = torch.stack(
            [
                known.sum(0),
                torch.where(known, rows, batch_size).amin(0),
                torch.where(known, rows, -1).amax(0),
                torch.where(known, batch_size, rows).amin(0),
                torch.where(known, -1, rows).amax(0),
            ]
        ).tolist()  # (5, A): the host sync
        routes = []
        for a, (count, first, last, first_unknown, last_unknown) in enumerate(zip(*bounds, strict=True)):
            fine = _rows(known[:, a], count, first, last)
            coarse = _rows(~known[:, a], batch_size - count, first_unknown, last_unknown)
            emb = None
            if fine is not None:
                emb = self.value_embeddings[a](_select(attribute_ids[:, a], fine))
            routes.append(_AttributeRoute(fine, coarse, emb))
        return _Routing(iid=False, attributes=routes)

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
        """
        batch_size = _input_shape(input_ids, inputs_embeds)[0]
        if validate_attribute_ids:
            self.check_attribute_ids(attribute_ids, batch_size, view)
            self.missing_attribute_ids(attribute_ids, view)  # None routes every attribute coarse (see `route`)
        self._router.state = self.route(attribute_ids, batch_size, view)
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
        if self.m2a.missing_attribute_ids(attribute_ids, view):
            device = (input_ids if input_ids is not None else inputs_embeds).device
            attribute_ids = torch.full((shape[0], self.config.num_attributes), -1, dtype=torch.long, device=device)
        self._check_labels(labels, mlm_labels, shape)
        policy = self._training_policy(labels, view)
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
        if labels is not None:
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
        `coarse`: every id unknown; `fine` or no policy: the ids as given.
        """
        if attribute_ids is None or policy in (None, "fine"):
            return attribute_ids, False
        unknown = torch.full_like(attribute_ids, -1)
        if policy == "joint":
            return torch.cat([attribute_ids, unknown], 0), True
        if policy == "stochastic":
            draw = torch.rand(attribute_ids.shape[0], device=attribute_ids.device)
            coarse = draw < self.config.effective_stochastic_coarse_prob
            return torch.where(coarse[:, None], unknown, attribute_ids), False
        return unknown, False

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
        """The auxiliary LM loss at the positions where `mlm_labels != -100`: masked-LM (encoders) or causal-LM
        (decoders, whose labels are the next tokens, see `_causal_lm_labels`)."""
        selected = mlm_labels != -100
        if not bool(selected.any()):
            return hidden.new_zeros(())
        head = self.clm_head if self.config.is_causal_lm else self.mlm_head
        logits = head(hidden[selected], self.m2a.get_input_embeddings().weight)  # (n_selected, vocab)
        return F.cross_entropy(logits.float(), mlm_labels[selected])

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
