"""The reference implementation's algorithm, rebuilt on top of m2a-hf for the performance comparison (benchmarks only).

What the reference code (the authors' M2A release: `OurLinear.forward_with_node_mv` and `joint_train_epoch`) does per
training step, and what this module reproduces:

1. **Materialised Kronecker product.** For every sample `b` and attribute `a` of every adapted Q/V projection, the
   dense update `ΔW_b = C_{a,v_b} ⊗ D_a` is built as a `(batch, in, out)` tensor (`einsum("bql,nm->bqnlm")` then
   `.view(bs, in, out)`) and the input is multiplied by it (`bmm`). m2a-hf computes the same product in factorised
   form (`M2ALinear.fine_delta`); `patch_materialised` swaps that method, per layer instance, for the materialising
   version, so only the model it is applied to (in the baseline's own process) is affected.
2. **Two full forward passes per step**: NN (`global_version=False`, the fine view) then NN† (`global_version=True`,
   every attribute unknown), `loss = L_NN + 0.5 · L_NN†` (m2a-hf's `joint` policy runs both in one batched pass).
3. **Masked-LM over every token**: each view's loss is `CE + 0.5 · MLM`, and the reference's `lm_head` projects the
   whole sequence onto the vocabulary, `(batch, seq, vocab)` logits, before the cross-entropy ignores the unmasked
   positions (m2a-hf projects the masked positions only).

Nothing in `modeling/` is changed: the patch replaces bound methods on the layer objects of one model.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

from m2a_hf import M2AForSequenceClassification, M2ALinear


def materialised_fine_delta(
    self: M2ALinear, x: torch.Tensor, factor_c: torch.Tensor, factor_d: torch.Tensor
) -> torch.Tensor:
    """`x · (C_b ⊗ D)` per row b, the reference's way: build every `ΔW_b` densely, then `bmm`; with an attribute axis,
    one dense `ΔW` and one `bmm` per attribute, summed (the reference's `x·ΔW_user + x·ΔW_item`).

    Args:
        x: (n, L, in) inputs of the rows that take the fine path.
        factor_c: (n, p, s) per-row generated factor `C_b`, or (n, A, p, s) per row and attribute.
        factor_d: (q, t) shared factor `D`, or (A, q, t) one per attribute.

    Returns:
        (n, L, out).
    """
    n = x.shape[0]
    if factor_c.dim() == 3:  # a single attribute
        factor_c, factor_d = factor_c.unsqueeze(1), factor_d.unsqueeze(0)
    out = None
    for a in range(factor_c.shape[1]):
        # ΔW[b, (i, k), (j, l)] = C[b, i, j] · D[k, l]  ->  (n, p, q, s, t), then viewed as (n, p·q, s·t) = (n, in, out)
        delta_w = torch.einsum("bps,qt->bpqst", factor_c[:, a], factor_d[a])
        delta = torch.bmm(x, delta_w.reshape(n, self.in_features, self.out_features))  # (n, L, out)
        out = delta if out is None else out + delta
    return out


def patch_materialised(model: nn.Module) -> int:
    """Make every `M2ALinear` with attributes in `model` use `materialised_fine_delta`; return how many were patched."""
    patched = 0
    for module in model.modules():
        if isinstance(module, M2ALinear) and module.num_attributes:
            module.fine_delta = types.MethodType(materialised_fine_delta, module)
            patched += 1
    if not patched:
        raise ValueError("no M2ALinear layer with attributes found: nothing to materialise.")
    return patched


@torch.no_grad()
def check_equivalence(model: nn.Module, batch: int = 2, length: int = 3, seed: int = 0) -> float:
    """Compare the materialised and the factorised fine delta on random inputs for one patched layer of each distinct
    shape. Raises `AssertionError` when they differ; returns the largest absolute difference."""
    generator = torch.Generator().manual_seed(seed)
    worst, seen = 0.0, set()
    for module in model.modules():
        if not (isinstance(module, M2ALinear) and module.num_attributes) or module.kron_shape in seen:
            continue
        seen.add(module.kron_shape)
        p, q, s, t = module.kron_shape
        device, dtype = module.weight.device, torch.float32
        x = torch.randn(batch, length, module.in_features, generator=generator).to(device, dtype)
        c = torch.randn(batch, p, s, generator=generator).to(device, dtype)
        d = torch.randn(q, t, generator=generator).to(device, dtype)
        dense = materialised_fine_delta(module, x, c, d)
        factorised = M2ALinear.fine_delta(module, x, c, d)
        explicit = torch.stack([x[b] @ torch.kron(c[b], d) for b in range(batch)])
        torch.testing.assert_close(dense, explicit, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(factorised, explicit, rtol=1e-4, atol=1e-4)
        worst = max(worst, float((dense - factorised).abs().max()))
        # the forward's form: every attribute at once, summed
        cs = torch.randn(batch, module.num_attributes, p, s, generator=generator).to(device, dtype)
        ds = torch.randn(module.num_attributes, q, t, generator=generator).to(device, dtype)
        dense = materialised_fine_delta(module, x, cs, ds)
        factorised = M2ALinear.fine_delta(module, x, cs, ds)
        torch.testing.assert_close(dense, factorised, rtol=1e-4, atol=1e-4)
        worst = max(worst, float((dense - factorised).abs().max()))
    return worst


def reference_view_loss(
    model: M2AForSequenceClassification,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    attribute_ids: torch.Tensor,
    labels: torch.Tensor,
    mlm_labels: torch.Tensor,
    view: str | None,
    mlm_weight: float = 0.5,
) -> torch.Tensor:
    """One reference forward (`net(batch, mlm=True, cls=True, global_version=...)`): CE + α·MLM, MLM logits on every
    token. `input_ids` must already be masked (the classifier sees the masked input, as in the reference)."""
    hidden = model.m2a(
        input_ids=input_ids, attention_mask=attention_mask, attribute_ids=attribute_ids, view=view
    ).last_hidden_state  # (batch, seq, hidden)
    logits = model.classifier(hidden)  # (batch, num_labels)
    decoder = model.m2a.get_input_embeddings().weight
    mlm_logits = model.mlm_head(hidden, decoder)  # (batch, seq, vocab): every token, as the reference's lm_head
    cls_loss = F.cross_entropy(logits.float(), labels)
    mlm_loss = F.cross_entropy(mlm_logits.flatten(0, 1).float(), mlm_labels.flatten(), ignore_index=-100)
    return cls_loss + mlm_weight * mlm_loss


def reference_joint_loss(
    model: M2AForSequenceClassification,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    attribute_ids: torch.Tensor,
    labels: torch.Tensor,
    mlm_labels: torch.Tensor,
    coarse_weight: float = 0.5,
    mlm_weight: float = 0.5,
) -> torch.Tensor:
    """The reference's joint-training objective: two full forwards, `L_NN + λ·L_NN†` (λ = 0.5, KL unused)."""
    mask_token_id = model.config.mask_token_id
    if mask_token_id is None:
        raise ValueError("the model's `config.mask_token_id` is not set; the reference masks the MLM positions.")
    masked = input_ids.masked_fill(mlm_labels != -100, mask_token_id)
    args = (model, masked, attention_mask, attribute_ids, labels, mlm_labels)
    fine = reference_view_loss(*args, view=None, mlm_weight=mlm_weight)  # NN: global_version=False
    coarse = reference_view_loss(*args, view="coarse", mlm_weight=mlm_weight)  # NN†: global_version=True
    return fine + coarse_weight * coarse


__all__ = [
    "check_equivalence",
    "materialised_fine_delta",
    "patch_materialised",
    "reference_joint_loss",
    "reference_view_loss",
]
