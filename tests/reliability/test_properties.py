"""Property tests (hypothesis) of the adapter math and the per-sample routing, on tiny random BERT-config M2A models.

Random layer sizes, Kronecker factor shapes, embedding sizes, batch sizes and patterns of unknown (-1) attribute
values. Written against the model-level API (``M2AForSequenceClassification(config)`` and its forward), ``kron_shapes``,
``M2ALinear.fine_delta`` and the factor parameters (``m2a_fine_gen``, ``m2a_fine_shared``, the value embeddings); the
per-sample Kronecker matrices are materialised here only. Models run in float64 in eval mode (dropout off).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import BertConfig

from m2a_hf.modeling import M2AConfig, M2AForSequenceClassification, M2ALinear, kron_shapes


NUM_LABELS = 3
VOCAB = 100
TOLERANCE = {"rtol": 1e-9, "atol": 1e-9}


@dataclass(frozen=True)
class Sizes:
    """A tiny model's shape: hidden/intermediate sizes, attributes, Kronecker factors and adapter sizes."""

    heads: int
    hidden: int
    intermediate: int
    attributes: tuple[int, ...]
    kron_factors: tuple[int, int] | None
    embedding_dim: int | None
    rank: int


def _divisors(n: int) -> list[int]:
    """The positive divisors of ``n``."""
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def sizes(draw: st.DrawFn) -> Sizes:
    """Random sizes; the fine adapters sit on ``query``/``value`` (hidden→hidden) and ``intermediate.dense``
    (hidden→intermediate), so ``kron_factors`` [p, s] need p | hidden and s | gcd(hidden, intermediate)."""
    heads = draw(st.integers(1, 2))
    hidden = heads * draw(st.integers(1, 8))
    intermediate = draw(st.integers(1, 24))
    factors = draw(
        st.none()
        | st.tuples(st.sampled_from(_divisors(hidden)), st.sampled_from(_divisors(math.gcd(hidden, intermediate))))
    )
    return Sizes(
        heads=heads,
        hidden=hidden,
        intermediate=intermediate,
        attributes=tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3))),
        kron_factors=factors,
        embedding_dim=draw(st.none() | st.integers(1, 6)),
        rank=draw(st.integers(1, 3)),
    )


def _perturb(model: torch.nn.Module, seed: int) -> None:
    """Gives every adapter and value embedding non-zero values (several start at zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".m2a_" in name or "value_embeddings" in name:
                param.copy_(torch.randn(param.shape, generator=generator, dtype=param.dtype) * 0.3)


def build_model(
    size: Sizes, *, seed: int = 0, m2a_targets: tuple[str, ...] = ("query", "value", "intermediate.dense")
) -> M2AForSequenceClassification:
    """A tiny float64 M2A classifier in eval mode, its adapters perturbed."""
    torch.manual_seed(seed)
    backbone = BertConfig(
        vocab_size=VOCAB,
        hidden_size=size.hidden,
        num_hidden_layers=2,
        num_attention_heads=size.heads,
        intermediate_size=size.intermediate,
        max_position_embeddings=32,
    )
    config = M2AConfig(
        backbone_config=backbone,
        attributes={f"attr{i}": n for i, n in enumerate(size.attributes)},
        lora_rank=size.rank,
        lora_alpha=2.0 * size.rank,
        m2a_target_modules=list(m2a_targets),
        lora_target_modules=["attention.output.dense"],
        kron_factors=list(size.kron_factors) if size.kron_factors else None,
        value_embedding_dim=size.embedding_dim,
        num_labels=NUM_LABELS,
    )
    model = M2AForSequenceClassification(config).double().eval()
    _perturb(model, seed)
    return model


def fine_layers(model: torch.nn.Module) -> list[tuple[str, M2ALinear]]:
    """The adapted layers that carry fine (Kronecker) adapters."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, M2ALinear) and hasattr(m, "m2a_fine_gen")]


def kron_factors_of(
    model: M2AForSequenceClassification, layer: M2ALinear, attribute: int, values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fine factors of ``values`` of one attribute in one layer: C_v = (G_a e_{a,v}) as p×s (one per value) and
    the shared D_a (q×t), with (p, q, s, t) from ``kron_shapes``."""
    p, q, s, t = kron_shapes(layer.in_features, layer.out_features, model.config.kron_factors)
    embeddings = model.m2a.value_embeddings[attribute].weight[values]  # (n, E)
    factor_c = (embeddings @ layer.m2a_fine_gen[attribute]).reshape(-1, p, s)
    factor_d = layer.m2a_fine_shared[attribute]
    assert factor_d.shape == (q, t)
    return factor_c, factor_d


def slow_fine_delta(x: torch.Tensor, factor_c: torch.Tensor, factor_d: torch.Tensor) -> torch.Tensor:
    """``x_b · (C_b ⊗ D)`` with the (in × out) Kronecker matrix of every row built explicitly."""
    return torch.stack([x[b] @ torch.kron(factor_c[b], factor_d) for b in range(x.shape[0])])


@contextmanager
def recording(layers: list[tuple[str, torch.nn.Module]]) -> Iterator[dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Records ``{name: (input, output)}`` of the layers' forwards."""
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    handles = [
        module.register_forward_hook(lambda _m, args, out, name=name: seen.__setitem__(name, (args[0], out)))
        for name, module in layers
    ]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def attribute_ids(draw: st.DrawFn, batch: int, attribute_sizes: tuple[int, ...]) -> torch.Tensor:
    """Random ids with random -1 (unknown) patterns: per column, all known, all unknown or mixed."""
    columns = []
    for size in attribute_sizes:
        pattern = draw(st.sampled_from(["known", "unknown", "mixed"]))
        low = 0 if pattern == "known" else -1
        high = -1 if pattern == "unknown" else size - 1
        columns.append(draw(st.lists(st.integers(low, high), min_size=batch, max_size=batch)))
    return torch.tensor(columns, dtype=torch.long).T.reshape(batch, len(attribute_sizes))


def token_batch(draw: st.DrawFn, batch: int, max_length: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token ids with right padding: ``(input_ids, attention_mask)``, every row at least one token."""
    lengths = draw(st.lists(st.integers(1, max_length), min_size=batch, max_size=batch))
    width = max(lengths)
    ids = draw(st.lists(st.integers(1, VOCAB - 1), min_size=batch * width, max_size=batch * width))
    input_ids = torch.tensor(ids, dtype=torch.long).reshape(batch, width)
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    return input_ids * mask, mask


# ---------------------------------------------------------------------------------------------- (a) shapes
@settings(max_examples=25, deadline=None)
@given(size=sizes(), data=st.data())
def test_output_shapes_are_kept(size: Sizes, data: st.DataObject) -> None:
    """Every adapted layer maps (..., in) to (..., out); the model gives (batch, labels) logits in every view."""
    model = build_model(size)
    batch = data.draw(st.integers(1, 5), label="batch")
    input_ids, mask = token_batch(data.draw, batch)
    ids = attribute_ids(data.draw, batch, size.attributes)
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, M2ALinear)]
    assert len(fine_layers(model)) == 3 * 2  # query, value, intermediate.dense in 2 layers
    with torch.no_grad(), recording(layers) as seen:
        for view in (None, "coarse", "iid"):
            seen.clear()
            logits = model(input_ids=input_ids, attention_mask=mask, attribute_ids=ids, view=view).logits
            assert logits.shape == (batch, NUM_LABELS) and torch.isfinite(logits).all()
            assert set(seen) == {name for name, _ in layers}
            for name, module in layers:
                x, out = seen[name]
                assert out.shape == (*x.shape[:-1], module.out_features), name
        hidden = model.m2a(input_ids=input_ids, attention_mask=mask, attribute_ids=ids).last_hidden_state
    assert hidden.shape == (batch, input_ids.shape[1], size.hidden)


# ---------------------------------------------------------------------------------------------- (b) Kronecker math
@settings(max_examples=25, deadline=None)
@given(size=sizes(), data=st.data())
def test_fine_delta_equals_explicit_kronecker_of_generated_factors(size: Sizes, data: st.DataObject) -> None:
    """``fine_delta`` with the factors generated from value embeddings equals ``x · kron(C_v, D)`` built explicitly."""
    model = build_model(size)
    batch = data.draw(st.integers(1, 5), label="batch")
    length = data.draw(st.integers(1, 4), label="length")
    for _, layer in fine_layers(model):
        p, q, s, t = kron_shapes(layer.in_features, layer.out_features, model.config.kron_factors)
        assert (p * q, s * t) == (layer.in_features, layer.out_features)
        if size.kron_factors is not None:
            assert (p, s) == size.kron_factors
        x = torch.randn(batch, length, layer.in_features, dtype=torch.float64)
        for attribute, num_values in enumerate(size.attributes):
            values = torch.tensor(
                data.draw(st.lists(st.integers(0, num_values - 1), min_size=batch, max_size=batch)), dtype=torch.long
            )
            with torch.no_grad():
                factor_c, factor_d = kron_factors_of(model, layer, attribute, values)
                fast = layer.fine_delta(x, factor_c, factor_d)
            assert fast.shape == (batch, length, layer.out_features)
            torch.testing.assert_close(fast, slow_fine_delta(x, factor_c, factor_d), **TOLERANCE)


@settings(max_examples=25, deadline=None)
@given(size=sizes(), data=st.data())
def test_routed_fine_update_in_the_model_is_the_explicit_kronecker(size: Sizes, data: st.DataObject) -> None:
    """Inside a forward, changing one attribute's known values changes a first-layer projection's output by exactly
    ``x_b · (kron(C_new, D) - kron(C_old, D))`` on those rows and by nothing on the rows where it is unknown, whatever
    the other attributes hold (the first layer's query/value see the same embeddings in both forwards)."""
    model = build_model(size)
    batch = data.draw(st.integers(1, 5), label="batch")
    input_ids, mask = token_batch(data.draw, batch)
    before = attribute_ids(data.draw, batch, size.attributes)
    attribute = data.draw(st.integers(0, len(size.attributes) - 1), label="attribute")
    new_values = data.draw(st.lists(st.integers(0, size.attributes[attribute] - 1), min_size=batch, max_size=batch))
    after = before.clone()
    known = before[:, attribute] >= 0
    after[:, attribute] = torch.where(known, torch.tensor(new_values), before[:, attribute])
    first = [(n, m) for n, m in fine_layers(model) if ".layer.0.attention.self." in n]
    assert len(first) == 2
    outputs = []
    with torch.no_grad():
        for ids in (before, after):
            with recording(first) as seen:
                model(input_ids=input_ids, attention_mask=mask, attribute_ids=ids)
            outputs.append(dict(seen))
        for name, layer in first:
            (x, out_before), (x_after, out_after) = outputs[0][name], outputs[1][name]
            torch.testing.assert_close(x_after, x, rtol=0, atol=0)
            expected = torch.zeros_like(out_before)
            if known.any():
                rows = known.nonzero().squeeze(1)
                old_c, d = kron_factors_of(model, layer, attribute, before[rows, attribute])
                new_c, _ = kron_factors_of(model, layer, attribute, after[rows, attribute])
                expected[rows] = slow_fine_delta(x[rows], new_c, d) - slow_fine_delta(x[rows], old_c, d)
            torch.testing.assert_close(out_after - out_before, expected, **TOLERANCE)


# ---------------------------------------------------------------------------------------------- (c) routing
@functools.cache
def _classifier() -> M2AForSequenceClassification:
    """The tiny model of the routing test: hidden 32, 2 layers, 2 heads, intermediate 64, vocab 100, 3 attributes."""
    size = Sizes(heads=2, hidden=32, intermediate=64, attributes=(6, 4, 3), kron_factors=None, embedding_dim=8, rank=4)
    return build_model(size, seed=1, m2a_targets=("query", "value"))


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_mixed_batch_logits_equal_each_row_alone(data: st.DataObject) -> None:
    """A batch mixing known and unknown values gives each row the logits it gets alone (its padding dropped), and a
    row with every value unknown gets the NN† (``view="coarse"``) logits."""
    model = _classifier()
    batch = data.draw(st.integers(1, 6), label="batch")
    input_ids, mask = token_batch(data.draw, batch)
    ids = attribute_ids(data.draw, batch, tuple(model.config.attribute_sizes))
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=mask, attribute_ids=ids).logits
        for row in range(batch):
            length = int(mask[row].sum())
            alone = model(
                input_ids=input_ids[row : row + 1, :length],
                attention_mask=mask[row : row + 1, :length],
                attribute_ids=ids[row : row + 1],
            ).logits
            torch.testing.assert_close(logits[row : row + 1], alone, **TOLERANCE)
            if bool((ids[row] == -1).all()):
                coarse = model(
                    input_ids=input_ids[row : row + 1, :length],
                    attention_mask=mask[row : row + 1, :length],
                    attribute_ids=ids[row : row + 1],
                    view="coarse",
                ).logits
                torch.testing.assert_close(alone, coarse, **TOLERANCE)
