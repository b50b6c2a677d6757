"""The M2A model: factorised Kronecker adapter, per-sample routing, trainable parameters per stage, gradient
checkpointing, outputs, remote-code reload, old checkpoints and input validation.

Built on the tiny random backbone (`tiny_backbone`); the test that the pretrained weights are what the adapted encoder
starts from uses the real MiniLM (`minilm_path`)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap

import pytest
import torch
from helpers import BLOCK_M2A_HF, TINY_BACKBONE, perturb, thread_env
from safetensors.torch import load_file, save_file
from transformers import BertConfig, BertModel, RobertaConfig, RobertaForMaskedLM

from m2a_hf import M2AConfig, M2AForSequenceClassification, M2ALinear
from m2a_hf.modeling import M2AModel, kron_shapes
from m2a_hf.modeling.modeling_m2a import _inject_adapters, _Router


ATTRS = {"user": 7, "item": 5}


@pytest.fixture(scope="module")
def batch(tiny_tokenizer):
    texts = ["a great product", "terrible, it broke after a day", "fine i guess", "love it, would buy again"]
    enc = tiny_tokenizer(texts, padding=True, return_tensors="pt")
    attribute_ids = torch.tensor([[1, 2], [-1, 3], [4, -1], [-1, -1]])
    return dict(enc), attribute_ids


@pytest.fixture(scope="module")
def built(tiny_backbone):
    return M2AForSequenceClassification.from_backbone(
        tiny_backbone, attributes=ATTRS, num_labels=3, lora_rank=8, lora_alpha=16
    )


@pytest.fixture
def model(built):
    """A fresh M2A classifier on the tiny backbone: a copy per test (tests perturb and train it)."""
    return copy.deepcopy(built)


# ---------------------------------------------------------------------------------------------- Kronecker adapter
@pytest.mark.parametrize(
    ("in_features", "out_features", "factors"),
    [(12, 12, None), (12, 20, None), (24, 8, [6, 2]), (6, 15, [3, 5]), (7, 9, None), (16, 16, [1, 16])],
)
def test_factorised_kronecker_equals_explicit_kron(in_features, out_features, factors):
    torch.manual_seed(0)
    layer = M2ALinear(
        in_features,
        out_features,
        rank=2,
        alpha=4,
        dropout=0.0,
        num_attributes=1,
        embedding_dim=3,
        kron_factors=factors,
    )
    p, q, s, t = layer.kron_shape
    assert (p * q, s * t) == (in_features, out_features)
    x = torch.randn(3, 5, in_features)
    factor_c = torch.randn(3, p, s)
    factor_d = torch.randn(q, t)
    expected = torch.stack([x[b] @ torch.kron(factor_c[b], factor_d) for b in range(3)])
    torch.testing.assert_close(layer.fine_delta(x, factor_c, factor_d), expected, rtol=1e-5, atol=1e-5)
    # both contraction orders give the same result
    layer._c_first = not layer._c_first
    torch.testing.assert_close(layer.fine_delta(x, factor_c, factor_d), expected, rtol=1e-5, atol=1e-5)


def test_default_kron_shapes_match_reference_and_any_size():
    assert kron_shapes(768, 768) == (32, 24, 24, 32)  # reference: C 32x24 per value, D 24x32 shared
    for d_in, d_out in [(384, 384), (384, 1536), (1024, 4096), (4096, 1024), (300, 500)]:
        p, q, s, t = kron_shapes(d_in, d_out)
        assert p * q == d_in and s * t == d_out
    with pytest.raises(ValueError, match=r"p=5 must divide in_features=384"):
        kron_shapes(384, 384, [5, 16])


def test_adapted_layers_wrap_the_backbone_weights_without_allocating_new_ones(monkeypatch):
    tiny = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    config = M2AConfig(backbone_config=tiny, attributes={"user": 3}, lora_rank=2)
    backbone = BertModel(tiny)
    originals = {n: (m.weight, m.bias) for n, m in backbone.named_modules() if isinstance(m, torch.nn.Linear)}
    initialised = []  # the device of every nn.Linear weight initialised during the injection
    reset = torch.nn.Linear.reset_parameters

    def recording_reset(layer: torch.nn.Linear) -> None:
        initialised.append(layer.weight.device.type)
        reset(layer)

    monkeypatch.setattr(torch.nn.Linear, "reset_parameters", recording_reset)
    _inject_adapters(backbone, config, _Router())
    adapted = {n: m for n, m in backbone.named_modules() if isinstance(m, M2ALinear)}
    assert len(adapted) == 8  # 2 layers x (query, value, attention.output.dense, intermediate.dense)
    for name, layer in adapted.items():
        weight, bias = originals[name]
        assert layer.weight is weight and layer.bias is bias
        assert layer.weight.untyped_storage().data_ptr() == weight.untyped_storage().data_ptr()
    assert initialised and set(initialised) == {"meta"}  # no full-size weight was allocated, let alone initialised


# ---------------------------------------------------------------------------------------------- routing
def test_route_gates_unknown_values_at_fixed_shapes(model):
    perturb(model)
    ids = torch.tensor([[1, -1], [-1, -1], [2, 3], [-1, 4], [0, 1]])
    state = model.m2a.route(ids, 5, None)
    dim = model.config.value_embedding_size
    assert state.unknown.tolist() == [[0, 1], [1, 1], [0, 0], [1, 0], [0, 0]]
    assert state.embeddings.shape == (5, 2, dim) and state.fine_rows is None
    for (row, a), value in zip(((0, 0), (2, 0), (4, 0), (2, 1), (3, 1), (4, 1)), (1, 2, 0, 3, 4, 1), strict=True):
        torch.testing.assert_close(state.embeddings[row, a], model.m2a.value_embeddings[a].weight[value])
    unknown = state.embeddings[ids < 0]  # the unknown values' embeddings are exactly zero: no fine update
    assert unknown.shape == (4, dim) and not unknown.any()
    # static cases: no embeddings at all (the fine adapters do not run)
    assert model.m2a.route(ids, 5, "coarse").embeddings is None and model.m2a.route(None, 5, None).unknown is None
    assert model.m2a.route(ids, 5, "iid").iid
    # `joint`: the rows after `fine_rows` are unknown whatever their ids, and only the first rows get embeddings
    doubled = model.m2a.route(torch.cat([ids, ids]), 10, None, fine_rows=5)
    assert doubled.embeddings.shape == (5, 2, dim) and doubled.fine_rows == 5
    assert doubled.unknown[:5].tolist() == state.unknown.tolist() and doubled.unknown[5:].eq(1).all()
    with pytest.raises(ValueError, match=r"`fine_rows` must be in \[0, 10\]"):
        model.m2a.route(ids, 10, None, fine_rows=11)


def test_mixed_batch_rows_equal_rows_alone_and_unknown_equals_coarse(model, batch):
    enc, attribute_ids = batch
    perturb(model)
    model.eval()
    with torch.no_grad():
        mixed = model(**enc, attribute_ids=attribute_ids).logits
        alone = torch.cat(
            [
                model(**{k: v[i : i + 1] for k, v in enc.items()}, attribute_ids=attribute_ids[i : i + 1]).logits
                for i in range(len(attribute_ids))
            ]
        )
        coarse = model(**enc, view="coarse").logits
        iid = model(**enc, view="iid").logits
    torch.testing.assert_close(mixed, alone, rtol=1e-4, atol=1e-5)
    # row 3 has every value unknown: it is exactly the coarse view (NN†)
    torch.testing.assert_close(mixed[3], coarse[3], rtol=1e-5, atol=1e-6)
    # known values really do change the output (the adapters are live)
    assert (mixed[0] - coarse[0]).abs().max() > 1e-4
    assert (coarse - iid).abs().max() > 1e-4


def test_attribute_order_matters(model, batch):
    enc, _ = batch
    perturb(model)
    model.eval()
    with torch.no_grad():
        a = model(**enc, attribute_ids=torch.tensor([[1, 2]] * 4)).logits
        b = model(**enc, attribute_ids=torch.tensor([[2, 1]] * 4)).logits
    assert (a - b).abs().max() > 1e-5


def test_fresh_fine_adapters_change_nothing(model, batch):
    enc, attribute_ids = batch
    perturb(model)
    with torch.no_grad():  # back to fresh value embeddings: zero, as initialised
        for emb in model.m2a.value_embeddings:
            emb.weight.zero_()
    model.eval()
    known = torch.tensor([[1, 2], [0, 3], [4, 0], [6, 4]])
    with torch.no_grad():
        routed = model(**enc, attribute_ids=known).logits
        iid = model(**enc, view="iid").logits
    torch.testing.assert_close(routed, iid, rtol=1e-5, atol=1e-6)


def test_fresh_model_equals_backbone_plus_head(minilm_path, minilm_tokenizer):
    """All LoRA B matrices and value embeddings start at zero: the adapted encoder is the pretrained encoder. On the
    real MiniLM: its checkpoint (a sentence-transformers `BertModel` folder) is what `from_backbone` must load."""
    from transformers import AutoModel

    texts = ["a great product", "terrible, it broke after a day", "fine i guess", "love it, would buy again"]
    enc = dict(minilm_tokenizer(texts, padding=True, return_tensors="pt"))
    attribute_ids = torch.tensor([[1, 2], [-1, 3], [4, -1], [-1, -1]])
    model = M2AForSequenceClassification.from_backbone(minilm_path, attributes=ATTRS, num_labels=3, lora_rank=4)
    backbone = AutoModel.from_pretrained(minilm_path).eval()
    model.eval()
    with torch.no_grad():
        ours = model.m2a(**enc, attribute_ids=attribute_ids).last_hidden_state
        ref = backbone(**enc).last_hidden_state
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------- training behaviour
def _train_batch(enc, attribute_ids):
    labels = torch.tensor([0, 1, 2, 1])
    mlm_labels = torch.full_like(enc["input_ids"], -100)
    mlm_labels[:, 1] = enc["input_ids"][:, 1]
    return {**enc, "attribute_ids": attribute_ids, "labels": labels, "mlm_labels": mlm_labels}


def _grad_names(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_only_intended_parameters_get_gradients_stage1(model, batch):
    perturb(model)
    model.train()
    out = model(**_train_batch(*batch))
    out.loss.backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(model.adapter_parameter_names(1))
    got = _grad_names(model)
    assert got <= trainable
    assert any(".m2a_fine_gen" in n for n in got) and any(".m2a_unknown_lora_A" in n for n in got)
    assert any("value_embeddings" in n for n in got) and any(n.startswith("classifier.") for n in got)
    assert any("LayerNorm" in n for n in got) and any(n.startswith("mlm_head.") for n in got)
    # the frozen backbone: no query/key/value weight, no word embedding
    assert not any(n.endswith(("query.weight", "key.weight", "word_embeddings.weight")) for n in trainable)


def test_stage2_trains_only_unknown_value_loras_and_keeps_fine_view(model, batch):
    enc, attribute_ids = batch
    perturb(model)
    model.set_stage(2)
    model.train()
    model(**_train_batch(enc, attribute_ids)).loss.backward()
    got = _grad_names(model)
    assert got and all(".m2a_unknown_lora_" in n for n in got)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(model.adapter_parameter_names(2))
    # Changing the unknown LoRAs leaves the all-known (fine) view untouched
    known = torch.tensor([[1, 2]] * 4)
    model.eval()
    with torch.no_grad():
        before = model(**enc, attribute_ids=known).logits
        for layer in model.modules():
            if isinstance(layer, M2ALinear) and layer.num_attributes:
                layer.m2a_unknown_lora_B.add_(0.1)
        after = model(**enc, attribute_ids=known).logits
    torch.testing.assert_close(before, after)
    model.set_stage(1)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(model.adapter_parameter_names(1))


def test_full_finetune_trains_everything(tiny_backbone, batch):
    model = M2AForSequenceClassification.from_backbone(
        tiny_backbone, attributes=ATTRS, num_labels=3, lora_rank=4, full_finetune=True
    )
    assert all(p.requires_grad for p in model.parameters())
    model.train()
    model(**_train_batch(*batch)).loss.backward()
    got = _grad_names(model)
    assert any(n.endswith("query.weight") for n in got) and any("word_embeddings" in n for n in got)
    model.set_stage(2)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(model.adapter_parameter_names(2))


@pytest.mark.parametrize("policy", ["joint", "stochastic", "fine", "coarse"])
def test_gradient_checkpointing_gives_same_loss_and_gradients(tiny_backbone, batch, policy):
    def run(checkpointing: bool):
        torch.manual_seed(0)
        model = M2AForSequenceClassification.from_backbone(
            tiny_backbone, attributes=ATTRS, num_labels=3, lora_rank=4, training_policy=policy, kl_weight=0.5
        )
        perturb(model)
        if checkpointing:  # what Trainer(gradient_checkpointing=True) calls (non-reentrant by default)
            model.activation_checkpointing_enable()
            assert model.is_activation_checkpointing
        model.train()
        torch.manual_seed(123)
        out = model(**_train_batch(*batch))
        out.loss.backward()
        return out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    loss_a, grads_a = run(False)
    loss_b, grads_b = run(True)
    torch.testing.assert_close(loss_a, loss_b)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 10
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-4, atol=1e-6, msg=name)


def test_joint_loss_is_fine_plus_lambda_coarse(model, batch):
    """joint = L_NN + λ·L_NN† (+ α·MLM in each), computed in one batched pass; eval loss is plain CE."""
    enc, attribute_ids = batch
    perturb(model)
    model.config.lora_dropout = 0.0
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    inputs = _train_batch(enc, attribute_ids)
    model.train()
    joint = model(**inputs)
    model.config.training_policy = "fine"
    fine = model(**inputs)
    model.config.training_policy = "coarse"
    coarse = model(**inputs)
    torch.testing.assert_close(joint.loss, fine.loss + 0.5 * coarse.loss, rtol=1e-4, atol=1e-5)
    model.eval()
    with torch.no_grad():
        ev = model(**inputs)
    assert ev.mlm_loss is None and ev.coarse_logits is None
    torch.testing.assert_close(ev.loss, torch.nn.functional.cross_entropy(ev.logits, inputs["labels"]))


def test_tuple_output_keeps_every_field_that_is_set(model, batch):
    """`return_dict=False` is `to_tuple()`: loss, logits, coarse logits and the MLM loss in training."""
    enc, attribute_ids = batch
    inputs = _train_batch(enc, attribute_ids)
    model.train()
    torch.manual_seed(0)
    as_dict = model(**inputs)
    torch.manual_seed(0)
    as_tuple = model(**inputs, return_dict=False)
    assert as_dict.mlm_loss is not None and as_dict.coarse_logits is not None
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 4
    for got, expected in zip(as_tuple, as_dict.to_tuple(), strict=True):
        torch.testing.assert_close(got, expected)
    torch.testing.assert_close(as_tuple[3], as_dict.mlm_loss)
    model.eval()
    with torch.no_grad():
        logits, hidden_states = model(**enc, attribute_ids=attribute_ids, output_hidden_states=True, return_dict=False)
    assert (
        logits.shape == (4, 3) and len(hidden_states) == 1 + TINY_BACKBONE["num_hidden_layers"]
    )  # embeddings + layers


def test_attribute_ids_are_validated_once_per_forward(model, batch, monkeypatch):
    enc, attribute_ids = batch
    calls = []
    check = M2AModel.check_attribute_ids

    def counting_check(self, *args):
        calls.append(args)
        return check(self, *args)

    monkeypatch.setattr(M2AModel, "check_attribute_ids", counting_check)
    model.eval()
    with torch.no_grad():
        model(**enc, attribute_ids=attribute_ids)
    assert len(calls) == 1
    model.train()
    model(**_train_batch(enc, attribute_ids))  # joint: the encoder runs on twice the batch, checked once
    assert len(calls) == 2 and calls[-1][0] is attribute_ids and calls[-1][1] == 4
    with torch.no_grad():
        model.m2a(**enc, attribute_ids=attribute_ids)  # the encoder alone checks its input itself
    assert len(calls) == 3


# ---------------------------------------------------------------------------------------------- save / reload
REMOTE_CHECK = BLOCK_M2A_HF + textwrap.dedent(
    """
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification
    ckpt, ref = sys.argv[1], torch.load(sys.argv[2], weights_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(ckpt, trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    with torch.no_grad():
        logits = model(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"],
                       attribute_ids=ref["attribute_ids"]).logits
        hidden = AutoModel.from_pretrained(ckpt, trust_remote_code=True).eval()(
            input_ids=ref["input_ids"], attention_mask=ref["attention_mask"], attribute_ids=ref["attribute_ids"]
        ).last_hidden_state
    assert torch.get_num_threads() == int(sys.argv[3]), (torch.get_num_threads(), sys.argv[3])
    torch.testing.assert_close(logits, ref["logits"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(hidden, ref["hidden"], rtol=1e-5, atol=1e-6)
    print("REMOTE-OK")
    """
)


@pytest.mark.slow
def test_save_and_reload_through_auto_classes_without_m2a_hf(model, batch, tmp_path):
    enc, attribute_ids = batch
    perturb(model)
    model.eval()
    ckpt = tmp_path / "ckpt"
    model.save_pretrained(ckpt)
    assert {"config.json", "model.safetensors", "configuration_m2a.py", "modeling_m2a.py"} <= {
        p.name for p in ckpt.iterdir()
    }
    assert not list(ckpt.glob("*.bin"))
    config = M2AConfig.from_pretrained(ckpt)
    assert set(config.auto_map) == {"AutoConfig", "AutoModel", "AutoModelForSequenceClassification"}
    assert config.attribute_names == ["user", "item"] and config.attribute_sizes == [7, 5]
    with torch.no_grad():
        ref = {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            "attribute_ids": attribute_ids,
            "logits": model(
                input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], attribute_ids=attribute_ids
            ).logits,
            "hidden": model.m2a(
                input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], attribute_ids=attribute_ids
            ).last_hidden_state,
        }
    torch.save(ref, tmp_path / "ref.pt")
    threads = thread_env()  # the child computes with the parent's number of threads
    result = subprocess.run(
        [sys.executable, "-I", "-c", REMOTE_CHECK, str(ckpt), str(tmp_path / "ref.pt"), threads["OMP_NUM_THREADS"]],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **threads},
        timeout=300,
    )
    assert "REMOTE-OK" in result.stdout, result.stderr[-3000:]


def test_checkpoint_with_the_old_unknown_lora_names_loads(model, batch, tmp_path):
    """Checkpoints written before the rename name the unknown LoRAs `m2a_attr_A` / `m2a_attr_B`."""
    enc, attribute_ids = batch
    perturb(model)
    model.eval()
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    old = {k.replace(".m2a_unknown_lora_", ".m2a_attr_"): v for k, v in load_file(weights).items()}
    assert any(k.endswith(".m2a_attr_A") for k in old) and not any("unknown_lora" in k for k in old)
    save_file(old, weights, metadata={"format": "pt"})
    reloaded = M2AForSequenceClassification.from_pretrained(tmp_path).eval()
    encoder = M2AModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        for view, ids in ((None, attribute_ids), ("coarse", None)):
            expected = model(**enc, attribute_ids=ids, view=view).logits
            assert torch.equal(reloaded(**enc, attribute_ids=ids, view=view).logits, expected), view
        hidden = model.m2a(**enc, attribute_ids=attribute_ids).last_hidden_state
        assert torch.equal(encoder(**enc, attribute_ids=attribute_ids).last_hidden_state, hidden)


def test_value_embedding_dim_defaults_to_64_and_old_checkpoints_keep_the_hidden_size(model, batch, tmp_path):
    """64 is the default; `None` means the backbone's hidden size (the reference), which is what every checkpoint
    saved before the default changed records (`"value_embedding_dim": null`) and must come back with."""
    enc, attribute_ids = batch
    assert model.config.value_embedding_dim == 64
    assert [emb.weight.shape[1] for emb in model.m2a.value_embeddings] == [64] * len(model.config.attribute_sizes)
    old = M2AForSequenceClassification(M2AConfig(**{**model.config.to_dict(), "value_embedding_dim": None})).eval()
    hidden = TINY_BACKBONE["hidden_size"]
    assert old.config.value_embedding_size == hidden and old.m2a.value_embeddings[0].weight.shape[1] == hidden
    perturb(old)
    old.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["value_embedding_dim"] is None
    reloaded = M2AForSequenceClassification.from_pretrained(tmp_path).eval()
    assert reloaded.config.value_embedding_dim is None and reloaded.m2a.value_embeddings[0].weight.shape[1] == hidden
    with torch.no_grad():
        expected = old(**enc, attribute_ids=attribute_ids).logits
        assert torch.equal(reloaded(**enc, attribute_ids=attribute_ids).logits, expected)


def test_config_json_with_training_view_loads_as_training_policy(tmp_path):
    tiny = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    M2AConfig(backbone_config=tiny, attributes={"user": 3}, training_policy="stochastic").save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    data = json.loads(path.read_text())
    data["training_view"] = data.pop("training_policy")  # a config.json written before the rename
    path.write_text(json.dumps(data))
    with pytest.warns(FutureWarning, match=r"`training_view` is deprecated and was renamed `training_policy`"):
        config = M2AConfig.from_pretrained(tmp_path)
    assert config.training_policy == "stochastic" and config.training_view == "stochastic"
    config.save_pretrained(tmp_path / "again")
    saved = json.loads((tmp_path / "again" / "config.json").read_text())
    assert saved["training_policy"] == "stochastic" and "training_view" not in saved
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match=r"disagree; pass only `training_policy`"):
        M2AConfig(backbone_config=tiny, training_policy="fine", training_view="coarse")


# ---------------------------------------------------------------------------------------------- other backbones
def test_roberta_family_backbone(tmp_path):
    """Placement by suffix works on RoBERTa, and its MLM head weights are loaded into the M2A MLM head."""
    config = RobertaConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=40,
        pad_token_id=1,
    )
    torch.manual_seed(0)
    RobertaForMaskedLM(config).save_pretrained(tmp_path / "roberta")
    model = M2AForSequenceClassification.from_backbone(
        tmp_path / "roberta", attributes={"user": 3}, num_labels=2, lora_rank=4, mask_token_id=4
    )
    names = {n for n, m in model.named_modules() if isinstance(m, M2ALinear)}
    assert sum(n.endswith(("query", "value")) for n in names) == 4
    assert sum(n.endswith(("attention.output.dense", "intermediate.dense")) for n in names) == 4
    reference = RobertaForMaskedLM.from_pretrained(tmp_path / "roberta")
    torch.testing.assert_close(model.mlm_head.dense.weight, reference.lm_head.dense.weight)
    x = torch.tensor([[0, 5, 6, 7, 2], [0, 8, 9, 2, 1]])
    out = model(
        input_ids=x,
        attention_mask=(x != 1).long(),
        attribute_ids=torch.tensor([[2], [-1]]),
        labels=torch.tensor([0, 1]),
    )
    assert out.logits.shape == (2, 2) and torch.isfinite(out.loss)


def test_custom_target_modules_and_missing_targets(tiny_backbone):
    model = M2AForSequenceClassification.from_backbone(
        tiny_backbone, attributes={"user": 2}, lora_rank=2, m2a_target_modules=["key"], lora_target_modules=[]
    )
    names = [n for n, m in model.named_modules() if isinstance(m, M2ALinear)]
    assert len(names) == TINY_BACKBONE["num_hidden_layers"] and all(n.endswith("key") for n in names)
    with pytest.raises(ValueError, match=r"no linear layer matching target module\(s\) \['q_proj'\]"):
        M2AForSequenceClassification.from_backbone(
            tiny_backbone, attributes={"user": 2}, m2a_target_modules=["q_proj"]
        )


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("attribute_ids", "message"),
    [
        (torch.tensor([1, 2, 3, 4]), r"shape \(batch, num_attributes\) = \(4, 2\).*got shape \(4,\)"),
        (torch.zeros(4, 3, dtype=torch.long), r"= \(4, 2\) with columns \['user', 'item'\], got shape \(4, 3\)"),
        (torch.zeros(4, 2), r"signed integer tensor \(torch.long\), -1 for an unknown value; got dtype torch.float32"),
        (
            torch.tensor([[1, 2], [7, 0], [0, 0], [0, 0]]),
            r"\[1, 0\] = 7 is out of range for attribute 'user'.*\[0, 6\]",
        ),
        (torch.tensor([[1, 2], [0, 0], [0, -2], [0, 0]]), r"\[2, 1\] = -2 is out of range for attribute 'item'"),
    ],
)
def test_bad_attribute_ids_raise_clear_errors(model, batch, attribute_ids, message):
    enc, _ = batch
    with pytest.raises(ValueError, match=message):
        model(**enc, attribute_ids=attribute_ids)


def test_bad_labels_view_and_config_raise_clear_errors(model, batch):
    enc, attribute_ids = batch
    with pytest.raises(ValueError, match=r"label 3 is out of range: this model has num_labels=3"):
        model(**enc, attribute_ids=attribute_ids, labels=torch.tensor([0, 1, 3, 0]))
    with pytest.raises(ValueError, match=r"`view` must be one of"):
        model(**enc, attribute_ids=attribute_ids, view="global")
    with pytest.raises(ValueError, match=r"`mlm_labels` must have the shape of `input_ids`"):
        model.train()
        model(
            **enc, attribute_ids=attribute_ids, labels=torch.tensor([0, 1, 2, 0]), mlm_labels=torch.zeros(4, 2).long()
        )
    tiny = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    with pytest.raises(
        ValueError, match=r"`training_policy` must be one of \['joint', 'stochastic', 'fine', 'coarse'\]"
    ):
        M2AConfig(backbone_config=tiny, training_policy="both")
    with pytest.raises(ValueError, match=r"attribute 'user': `num_values` must be an integer >= 0, got -3"):
        M2AConfig(backbone_config=tiny, attributes={"user": -3})
    with pytest.raises(ValueError, match=r"`stage` must be 1"):
        model.set_stage(3)
