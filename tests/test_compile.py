"""`torch.compile` and distributed training: the forward compiles into one graph (routing at fixed shapes, no host
sync, no boolean indexing), compiled and eager outputs agree, a `Trainer` run with `torch_compile=True` trains, and
every trainable adapter takes part in the autograd graph whatever the batch holds (`DistributedDataParallel` with
`find_unused_parameters=False` needs every parameter to get a gradient in every step).

Built on the tiny random backbone (`tiny_backbone`)."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import Trainer, TrainingArguments

from m2a_hf import M2AForSequenceClassification
from m2a_hf.modeling.modeling_m2a import COMPILED_MLM_CAPACITY


ATTRS = {"user": 7, "item": 5}
MIXED = torch.tensor([[1, 2], [-1, 3], [4, -1], [-1, -1]])  # known and unknown values in both columns


def perturb(model: torch.nn.Module, scale: float = 0.05, seed: int = 0) -> None:
    """Non-zero adapters, B matrices and value embeddings (all start at zero contribution)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".m2a_" in name or "value_embeddings" in name:
                param.add_(torch.randn(param.shape, generator=gen) * scale)


def build(tiny_backbone: str, **overrides) -> M2AForSequenceClassification:
    """A perturbed M2A classifier; dropout off everywhere so that compiled and eager runs are comparable."""
    model = M2AForSequenceClassification.from_backbone(
        tiny_backbone,
        attributes=ATTRS,
        num_labels=3,
        lora_rank=8,
        lora_alpha=16,
        lora_dropout=0.0,
        classifier_dropout=0.0,
        **overrides,
    )
    model.config.backbone_config.hidden_dropout_prob = 0.0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    perturb(model)
    return model


@pytest.fixture(scope="module")
def enc(tiny_tokenizer):
    texts = ["a great product", "terrible, it broke after a day", "fine i guess", "love it, would buy again"]
    return dict(tiny_tokenizer(texts, padding=True, return_tensors="pt"))


def train_batch(enc: dict, attribute_ids: torch.Tensor = MIXED) -> dict:
    mlm_labels = torch.full_like(enc["input_ids"], -100)
    mlm_labels[:, 1] = enc["input_ids"][:, 1]
    mlm_labels[0, 2] = enc["input_ids"][0, 2]
    return {**enc, "attribute_ids": attribute_ids, "labels": torch.tensor([0, 1, 2, 0]), "mlm_labels": mlm_labels}


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


# ---------------------------------------------------------------------------------------------- one graph
@pytest.mark.parametrize("policy", ["joint", "stochastic"])
def test_training_forward_has_no_graph_break(tiny_backbone, enc, policy):
    model = build(tiny_backbone, training_policy=policy).train()
    explained = torch._dynamo.explain(model)(**train_batch(enc))
    assert explained.graph_break_count == 0, [str(b.reason) for b in explained.break_reasons]
    assert explained.graph_count == 1


def test_eval_forward_has_no_graph_break(tiny_backbone, enc):
    model = build(tiny_backbone).eval()
    explained = torch._dynamo.explain(model)(**enc, attribute_ids=MIXED)
    assert explained.graph_break_count == 0, [str(b.reason) for b in explained.break_reasons]
    assert explained.graph_count == 1


# ---------------------------------------------------------------------------------------------- compiled == eager
# `aot_eager` traces what inductor would compile (the joint forward/backward graph) without generating C++; inductor
# itself (minutes on one core) runs in the slow tier.
BACKENDS = ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_eval_logits_equal_eager(tiny_backbone, enc, backend):
    model = build(tiny_backbone).eval()
    compiled = torch.compile(model, backend=backend, fullgraph=True)
    with torch.no_grad():  # fullgraph: a graph break in any view fails
        for ids, view in ((MIXED, None), (torch.tensor([[1, 2]] * 4), None), (MIXED, "coarse"), (MIXED, "iid")):
            eager = model(**enc, attribute_ids=ids, view=view).logits
            got = compiled(**enc, attribute_ids=ids, view=view).logits
            torch.testing.assert_close(got, eager, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("policy", "backend"),
    [("joint", "aot_eager"), ("fine", "aot_eager"), pytest.param("joint", "inductor", marks=pytest.mark.slow)],
)
def test_compiled_training_loss_and_gradients_equal_eager(tiny_backbone, enc, policy, backend):
    model = build(tiny_backbone, training_policy=policy, kl_weight=0.5).train()
    batch = train_batch(enc)
    eager = model(**batch)
    eager.loss.backward()
    eager_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    compiled = torch.compile(model, backend=backend, fullgraph=True)(**batch)
    compiled.loss.backward()
    torch.testing.assert_close(compiled.loss, eager.loss, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(compiled.mlm_loss, eager.mlm_loss, rtol=1e-4, atol=1e-5)
    compiled_grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert compiled_grads.keys() == eager_grads.keys()
    for name, grad in eager_grads.items():
        torch.testing.assert_close(compiled_grads[name], grad, rtol=1e-3, atol=1e-5, msg=name)


def test_compiled_mlm_loss_over_a_fixed_capacity_equals_the_gathered_one(tiny_backbone, enc):
    """The compiled MLM loss sorts the masked positions first and keeps a fixed number: the same loss as the eager
    gather for any number of masked positions up to the capacity, including none."""
    model = build(tiny_backbone).train()
    hidden = torch.randn(*enc["input_ids"].shape, model.config.backbone_config.hidden_size)
    compiled = torch.compile(model._mlm_loss, backend="aot_eager", fullgraph=True)
    capacity = int(COMPILED_MLM_CAPACITY * hidden.shape[0] * hidden.shape[1]) + hidden.shape[0]
    gen = torch.Generator().manual_seed(0)
    for count in (0, 1, 5, capacity):
        mlm_labels = torch.full(hidden.shape[:2], -100)
        positions = torch.randperm(mlm_labels.numel(), generator=gen)[:count]
        mlm_labels.view(-1)[positions] = torch.randint(0, 100, (count,), generator=gen)
        eager = model._mlm_loss(hidden, mlm_labels)
        torch.testing.assert_close(compiled(hidden, mlm_labels), eager, rtol=1e-4, atol=1e-5)
        assert (eager == 0) == (count == 0)


# ---------------------------------------------------------------------------------------------- DDP safety
ALL_KNOWN = torch.tensor([[1, 2]] * 4)
ALL_UNKNOWN = torch.full((4, 2), -1)


@pytest.mark.parametrize(
    ("overrides", "stage", "attribute_ids"),
    [
        ({"training_policy": "stochastic", "stochastic_coarse_prob": 0.0}, 1, ALL_KNOWN),  # no row takes NN†
        ({"training_policy": "stochastic", "stochastic_coarse_prob": 1.0}, 1, ALL_KNOWN),  # every row takes NN†
        ({"training_policy": "stochastic"}, 1, ALL_UNKNOWN),
        ({"training_policy": "fine"}, 1, ALL_KNOWN),
        ({"training_policy": "fine"}, 1, ALL_UNKNOWN),
        ({"training_policy": "joint"}, 1, ALL_UNKNOWN),
        ({"training_policy": "fine"}, 2, ALL_KNOWN),  # stage 2: the unknown LoRAs, trained on the coarse view
    ],
    ids=[
        "stochastic-none-coarse",
        "stochastic-all-coarse",
        "stochastic-unknown",
        "fine-known",
        "fine-unknown",
        "joint-unknown",
        "stage2",
    ],
)
def test_every_trainable_parameter_gets_a_gradient_whatever_the_batch(
    tiny_backbone, enc, overrides, stage, attribute_ids
):
    model = build(tiny_backbone, **overrides)
    model.set_stage(stage)
    model.train()
    batch = train_batch(enc, attribute_ids)
    batch["mlm_labels"] = torch.full_like(batch["mlm_labels"], -100)  # not even a masked position
    model(**batch).loss.backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(model.adapter_parameter_names(stage))
    missing = sorted(n for n, p in model.named_parameters() if p.requires_grad and p.grad is None)
    assert not missing, f"no gradient (DDP would fail): {missing}"


@pytest.mark.parametrize("mlm", ["no_mlm_labels", "mlm_weight_0"])
def test_a_trainable_mlm_head_gets_a_gradient_without_the_mlm_term(tiny_backbone, enc, mlm):
    """`--mlm_probability 0` (no `mlm_labels`) or `mlm_weight=0` under DDP: the trainable MLM head still takes part."""
    model = build(tiny_backbone, training_policy="stochastic", mlm_weight=0.0 if mlm == "mlm_weight_0" else 0.5)
    assert model.mlm_head_trains
    model.train()
    batch = train_batch(enc)
    if mlm == "no_mlm_labels":
        del batch["mlm_labels"]
    model(**batch).loss.backward()
    missing = sorted(n for n, p in model.named_parameters() if p.requires_grad and p.grad is None)
    assert not missing, f"no gradient (DDP would fail): {missing}"
    head_grads = [p.grad for p in model.mlm_head.parameters()]
    assert all(bool((g == 0).all()) for g in head_grads)  # zero-weighted: the head is not trained by this batch


# ---------------------------------------------------------------------------------------------- Trainer
@pytest.mark.slow
def test_trainer_with_torch_compile_trains(tiny_backbone, enc, tmp_path):
    model = build(tiny_backbone, training_policy="joint")
    before = copy.deepcopy(model.state_dict())
    batch = train_batch(enc)
    rows = [{k: v[i] for k, v in batch.items()} for i in range(len(batch["labels"]))]
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        max_steps=2,
        learning_rate=1e-2,
        torch_compile=True,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        remove_unused_columns=False,
    )
    result = Trainer(model=model, args=args, train_dataset=rows).train()
    assert result.global_step == 2 and torch.isfinite(torch.tensor(result.training_loss))
    changed = [n for n, p in model.state_dict().items() if not torch.equal(p, before[n])]
    assert any(".m2a_fine_gen" in n for n in changed) and any(".m2a_unknown_lora_B" in n for n in changed)
