"""Backbone families (issue 16): the default adapter placement per `model_type`, GPT-2 `Conv1D` and fused-QKV layers,
and decoders (last-token pooling, causal-LM auxiliary loss), on tiny random configs of each family."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from helpers import BLOCK_M2A_HF, perturb, thread_env
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM
from transformers.pytorch_utils import Conv1D

from m2a_hf import M2AConfig, M2AForSequenceClassification, M2ALinear
from m2a_hf.adapters import export_coarse
from m2a_hf.modeling.configuration_m2a import TRANSFORMERS_MODELS_TO_M2A_TARGET_MODULES_MAPPING
from m2a_hf.modeling.modeling_m2a import _causal_lm_labels, _inject_adapters, _Router, _Routing


VOCAB = 99
ATTRS = {"user": 3, "item": 2}
ATTRIBUTE_IDS = torch.tensor([[0, 1], [-1, 0], [2, -1], [-1, -1]])  # known and unknown values mixed per row
_ENCODER = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
_SPECIAL = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
FAMILIES = {
    "bert": _ENCODER,
    "roberta": {**_ENCODER, "pad_token_id": 1},
    "distilbert": {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64},
    "deberta-v2": _ENCODER,
    "modernbert": {**_ENCODER, **_SPECIAL, "cls_token_id": 1, "sep_token_id": 2},
    "gpt2": {"n_embd": 32, "n_layer": 2, "n_head": 2, "bos_token_id": 1, "eos_token_id": 2},
    "llama": {**_ENCODER, "num_key_value_heads": 1, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": None},
}
DECODERS = ("gpt2", "llama")
FUSED = {"gpt2": "c_attn", "modernbert": "Wqkv"}
NO_DROPOUT = {  # train-mode comparisons need deterministic backbones
    "gpt2": {"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0},
    "llama": {"attention_dropout": 0.0},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def backbone_config(family: str, **overrides):
    return AutoConfig.for_model(family, vocab_size=VOCAB, **{**FAMILIES[family], **overrides})


def build(family: str, seed: int = 0, **overrides) -> M2AForSequenceClassification:
    """A tiny M2A classifier on a random `family` backbone at its default placement, adapters perturbed, eval mode."""
    torch.manual_seed(seed)
    config = M2AConfig(
        backbone_config=backbone_config(family, **NO_DROPOUT.get(family, {})),
        attributes=ATTRS,
        num_labels=3,
        lora_rank=2,
        lora_alpha=4,
        lora_dropout=0.0,
        classifier_dropout=0.0,
        mask_token_id=3,
        **overrides,
    )
    model = M2AForSequenceClassification(config)
    perturb(model, scale=0.2, seed=seed)
    return model.eval()


def token_ids(rows: int = 4, length: int = 7, seed: int = 0) -> torch.Tensor:
    return torch.randint(3, VOCAB, (rows, length), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------- placement
@pytest.mark.parametrize("family", FAMILIES)
def test_default_placement_is_found_and_written_into_the_config(family):
    config = M2AConfig(backbone_config=backbone_config(family), attributes=ATTRS, lora_rank=2)
    assert config.m2a_target_modules is None and config.lora_target_modules is None  # "the family's default"
    unresolved = M2AConfig.from_dict(config.to_dict())  # a config.json written before any model was built
    assert unresolved.m2a_target_modules is None
    assert unresolved.resolved_target_modules() == TRANSFORMERS_MODELS_TO_M2A_TARGET_MODULES_MAPPING[family]
    model = M2AForSequenceClassification(config)
    m2a_targets, lora_targets = TRANSFORMERS_MODELS_TO_M2A_TARGET_MODULES_MAPPING[family]
    assert (model.config.m2a_target_modules, model.config.lora_target_modules) == (m2a_targets, lora_targets)
    assert M2AConfig.from_dict(model.config.to_dict()).m2a_target_modules == m2a_targets  # config.json is explicit

    layers = model.m2a.adapted_layers()
    multi = sorted(n for n, layer in layers if layer.num_attributes)
    plain = sorted(n for n, layer in layers if not layer.num_attributes)
    assert len(multi) == 2 * len(m2a_targets) and len(plain) == 2 * len(lora_targets)  # 2 layers each
    assert all(any(n.endswith(t) for t in m2a_targets) for n in multi)
    assert all(any(n.endswith(t) for t in lora_targets) for n in plain)
    fused = {n for n, layer in layers if layer.fused_qkv}
    assert fused == ({n for n in multi if n.endswith(FUSED[family])} if family in FUSED else set())
    assert all(layer.fan_in_fan_out == (family == "gpt2") for _, layer in layers)


def test_an_unknown_family_needs_explicit_modules_and_lists_its_linear_layers():
    opt = AutoConfig.for_model(
        "opt", vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, ffn_dim=64,
        word_embed_proj_dim=32,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"family 'opt' .*no default adapter placement.*'q_proj'") as err:
        M2AForSequenceClassification(M2AConfig(backbone_config=opt, attributes=ATTRS, lora_rank=2))
    assert "`m2a_target_modules` and `lora_target_modules`" in str(err.value)
    model = M2AForSequenceClassification(
        M2AConfig(
            backbone_config=opt, attributes=ATTRS, lora_rank=2, m2a_target_modules=["q_proj"], lora_target_modules=[]
        )
    )
    assert sorted(n for n, _ in model.m2a.adapted_layers()) == [f"decoder.layers.{i}.self_attn.q_proj" for i in (0, 1)]


def test_explicit_lists_still_override_the_family_default():
    config = M2AConfig(
        backbone_config=backbone_config("gpt2"), attributes=ATTRS, lora_rank=2, lora_target_modules=["mlp.c_proj"]
    )
    model = M2AForSequenceClassification(config)
    assert model.config.m2a_target_modules == ["c_attn"] and model.config.lora_target_modules == ["mlp.c_proj"]
    assert {n for n, layer in model.m2a.adapted_layers() if not layer.num_attributes} == {
        "h.0.mlp.c_proj",
        "h.1.mlp.c_proj",
    }


# ---------------------------------------------------------------------------------------------- Conv1D and fused QKV
def test_conv1d_is_wrapped_in_place_and_starts_as_the_backbone():
    backbone = AutoModel.from_config(backbone_config("gpt2"))
    names = ("h.0.attn.c_attn", "h.0.attn.c_proj", "h.1.mlp.c_fc")  # each takes the hidden size (32) as input
    convs = {n: backbone.get_submodule(n) for n in names}
    assert all(isinstance(m, Conv1D) for m in convs.values())
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        before = {n: m(x) for n, m in convs.items()}
    config = M2AConfig(backbone_config=backbone.config, attributes=ATTRS, lora_rank=2)
    _inject_adapters(backbone, config, _Router())
    for name in names:
        layer = backbone.get_submodule(name)
        assert isinstance(layer, M2ALinear) and layer.fan_in_fan_out
        assert layer.weight is convs[name].weight and layer.bias is convs[name].bias  # the same tensors, no copy
        assert layer.base_weight.data_ptr() == convs[name].weight.data_ptr()  # transposed view
        assert tuple(layer.weight.shape) == (layer.in_features, layer.out_features)  # the checkpoint's (in, out)
        with torch.no_grad():
            torch.testing.assert_close(layer(x), before[name])  # B = 0: the adapted layer starts as the backbone
    assert "h.0.attn.c_attn.weight" in backbone.state_dict()  # checkpoint key names unchanged


def test_fused_qkv_layer_gives_the_attribute_updates_to_q_and_v_only():
    torch.manual_seed(0)
    block = 8
    router = _Router()
    layer = M2ALinear(
        12, 3 * block, rank=2, alpha=2, dropout=0.0, num_attributes=1, embedding_dim=4, router=router,
        base_layer=nn.Linear(12, 3 * block), fused_qkv=True,
    )  # fmt: skip
    assert layer.attribute_out_features == 2 * block
    p, q, s, t = layer.kron_shape
    assert (p * q, s * t) == (12, 2 * block)  # Kronecker shapes from (in, attribute out)
    with torch.no_grad():  # the B matrices start at zero
        for param in layer.adapter_parameters().values():
            param.add_(0.3 * torch.randn(param.shape))
    x = torch.randn(2, 3, 12)
    embedding = torch.randn(1, 4)
    with torch.no_grad():
        router.state = _Routing(iid=True)
        coarse = layer(x)
        # row 0: the value is known (fine adapter); row 1: unknown (zero embedding, gate 1 on the unknown LoRA)
        embeddings = torch.cat([embedding, torch.zeros_like(embedding)]).unsqueeze(1)  # (rows, attributes, E)
        router.state = _Routing(unknown=torch.tensor([[0.0], [1.0]]), embeddings=embeddings)
        routed = layer(x) - coarse
        router.state = _Routing(unknown=None)  # every value unknown: the fused all-unknown product
        all_unknown = layer(x) - coarse
    for delta in (routed, all_unknown):
        k_block = delta[..., block : 2 * block]  # K untouched (up to the rounding of the fused all-unknown product)
        torch.testing.assert_close(k_block, torch.zeros_like(k_block), rtol=0, atol=1e-6)
        assert delta[..., :block].abs().min() > 0 and delta[..., 2 * block :].abs().min() > 0
    # the fine row against the naive Kronecker product, [ΔQ; ΔV] = x · (C ⊗ D)
    factor_c = (embedding @ layer.m2a_fine_gen[0]).view(p, s)
    naive = x[0] @ torch.kron(factor_c, layer.m2a_fine_shared[0])
    torch.testing.assert_close(torch.cat([routed[0, :, :block], routed[0, :, 2 * block :]], -1), naive)
    # the unknown row against its LoRA
    lora = layer.unknown_scaling * x[1] @ layer.m2a_unknown_lora_A[0].T @ layer.m2a_unknown_lora_B[0].T
    torch.testing.assert_close(torch.cat([routed[1, :, :block], routed[1, :, 2 * block :]], -1), lora)
    torch.testing.assert_close(all_unknown[1], routed[1])  # the fused all-unknown product: the same update


# ---------------------------------------------------------------------------------------------- every family
@pytest.mark.parametrize("family", FAMILIES)
def test_mixed_batch_equals_each_row_alone(family):
    model = build(family)
    ids = token_ids()
    with torch.no_grad():
        batch = model(input_ids=ids, attention_mask=torch.ones_like(ids), attribute_ids=ATTRIBUTE_IDS).logits
        alone = [model(input_ids=ids[i : i + 1], attribute_ids=ATTRIBUTE_IDS[i : i + 1]).logits for i in range(4)]
        coarse = model(input_ids=ids, view="coarse").logits
    torch.testing.assert_close(batch, torch.cat(alone), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(batch[:3], coarse[:3], atol=1e-4)  # rows with a known value use their fine adapters
    torch.testing.assert_close(batch[3], coarse[3], rtol=1e-5, atol=1e-5)  # all unknown: the coarse view


@pytest.mark.parametrize("family", FAMILIES)
def test_gradients_reach_exactly_the_adapters(family):
    model = build(family).train()
    ids = token_ids()
    mlm_labels = torch.full_like(ids, -100)
    mlm_labels[:, 2] = ids[:, 2]
    out = model(
        input_ids=ids, attention_mask=torch.ones_like(ids), attribute_ids=ATTRIBUTE_IDS,
        labels=torch.tensor([0, 1, 2, 1]), mlm_labels=mlm_labels,
    )  # fmt: skip
    assert out.mlm_loss is not None and out.mlm_loss > 0  # masked-LM, or causal-LM for a decoder
    out.loss.backward()
    trainable = set(model.adapter_parameter_names(1))
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad == trainable == {n for n, p in model.named_parameters() if p.requires_grad}
    for name, layer in model.m2a.adapted_layers():
        assert layer.weight.grad is None and not layer.weight.requires_grad  # the frozen base weight
        for pname, param in layer.adapter_parameters().items():
            assert param.grad.abs().sum() > 0, f"{name}.{pname} got no gradient"


@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_checkpointing_gives_the_same_gradients(family):
    """Checkpointed layers re-run their forward in the backward: the routing (and a decoder's position ids) must be
    the same the second time."""
    ids = token_ids()
    grads = []
    for checkpointing in (False, True):
        model = build(family).train()
        if checkpointing:
            model.activation_checkpointing_enable()  # what Trainer(gradient_checkpointing=True) calls
            assert model.is_activation_checkpointing
        torch.manual_seed(1)  # the same dropout draws
        labels = torch.tensor([0, 1, 2, 1])
        model(
            input_ids=ids, attention_mask=torch.ones_like(ids), attribute_ids=ATTRIBUTE_IDS, labels=labels
        ).loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-6, msg=name)


# ---------------------------------------------------------------------------------------------- decoders
def _padded(ids: torch.Tensor, lengths: list[int], side: str, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = ids.shape[1]
    out, mask = torch.full_like(ids, pad), torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        cols = slice(0, n) if side == "right" else slice(width - n, width)
        out[row, cols], mask[row, cols] = ids[row, :n], 1
    return out, mask


@pytest.mark.parametrize("family", DECODERS)
def test_decoder_left_and_right_padding_give_the_same_logits_and_loss(family):
    model = build(family)
    assert model.config.pad_token_id == 2  # no pad token in the backbone: its eos token
    assert model.classifier.pooling == "last" and not hasattr(model, "mlm_head")
    ids, lengths = token_ids(), [7, 4, 2, 5]
    right, right_mask = _padded(ids, lengths, "right", model.config.pad_token_id)
    left, left_mask = _padded(ids, lengths, "left", model.config.pad_token_id)
    with torch.no_grad():
        logits_right = model(input_ids=right, attention_mask=right_mask, attribute_ids=ATTRIBUTE_IDS).logits
        logits_left = model(input_ids=left, attention_mask=left_mask, attribute_ids=ATTRIBUTE_IDS).logits
        alone = [
            model(input_ids=ids[i : i + 1, :n], attribute_ids=ATTRIBUTE_IDS[i : i + 1]).logits
            for i, n in enumerate(lengths)
        ]
    torch.testing.assert_close(logits_left, logits_right, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits_right, torch.cat(alone), rtol=1e-5, atol=1e-5)  # the last real token is read
    model.train()
    labels = torch.tensor([0, 1, 2, 1])
    losses = [
        model(input_ids=i, attention_mask=m, attribute_ids=ATTRIBUTE_IDS, labels=labels)
        for i, m in ((right, right_mask), (left, left_mask))
    ]
    torch.testing.assert_close(losses[0].mlm_loss, losses[1].mlm_loss)  # padding is never a causal-LM target
    torch.testing.assert_close(losses[0].loss, losses[1].loss)


def test_causal_lm_labels_are_the_next_real_tokens():
    ids = torch.tensor([[5, 6, 7, 0], [0, 0, 8, 9]])
    mask = torch.tensor([[1, 1, 1, 0], [0, 0, 1, 1]])
    assert _causal_lm_labels(ids, mask).tolist() == [[6, 7, -100, -100], [-100, -100, 9, -100]]
    assert _causal_lm_labels(ids, None).tolist() == [[6, 7, 0, -100], [0, 8, 9, -100]]


@pytest.mark.parametrize("family", DECODERS)
def test_decoder_causal_lm_loss_matches_the_stock_lm_head(family, tmp_path):
    """`from_backbone` on an `AutoModelForCausalLM` checkpoint: backbone and LM head loaded, so at initialisation (zero
    adapter updates) M2A's causal-LM term equals the checkpoint's own LM loss."""
    torch.manual_seed(0)
    reference = AutoModelForCausalLM.from_config(backbone_config(family, **NO_DROPOUT[family])).eval()
    reference.save_pretrained(tmp_path)
    model = M2AForSequenceClassification.from_backbone(
        tmp_path, attributes=ATTRS, num_labels=3, lora_rank=2, lora_dropout=0.0, training_policy="coarse"
    )
    assert model.config.mask_token_id is None and model.config.m2a_target_modules == list(
        TRANSFORMERS_MODELS_TO_M2A_TARGET_MODULES_MAPPING[family][0]
    )
    assert model.clm_head.tied == (family == "gpt2")
    if family == "llama":  # untied: a frozen copy of the checkpoint's LM head
        torch.testing.assert_close(model.clm_head.weight, reference.lm_head.weight)
        assert not model.clm_head.weight.requires_grad
    ids, mask = _padded(token_ids(), [7, 4, 2, 5], "right", 2)
    labels = ids.masked_fill(mask == 0, -100)
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask, labels=labels).loss
    out = model.train()(input_ids=ids, attention_mask=mask, attribute_ids=ATTRIBUTE_IDS, labels=torch.zeros(4).long())
    torch.testing.assert_close(out.mlm_loss, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", [f for f in FAMILIES if f not in DECODERS])
def test_encoder_masked_lm_loss_matches_the_stock_mlm_head(family, tmp_path):
    """`from_backbone` on an `AutoModelForMaskedLM` checkpoint of each encoder family loads the backbone and the MLM
    head (ModernBERT's has no biases), so at initialisation M2A's masked-LM term equals the checkpoint's own."""
    torch.manual_seed(0)
    reference = AutoModelForMaskedLM.from_config(backbone_config(family)).eval()
    reference.save_pretrained(tmp_path)
    model = M2AForSequenceClassification.from_backbone(
        tmp_path, attributes=ATTRS, num_labels=3, lora_rank=2, mask_token_id=3, training_policy="coarse"
    ).train()
    for module in model.modules():  # a training forward, without dropout
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    ids = token_ids()
    mlm_labels = torch.full_like(ids, -100)
    mlm_labels[:, 2] = ids[:, 2]
    with torch.no_grad():
        expected = reference(input_ids=ids.masked_fill(mlm_labels != -100, 3), labels=mlm_labels).loss
    out = model(input_ids=ids, attribute_ids=ATTRIBUTE_IDS, labels=torch.zeros(4).long(), mlm_labels=mlm_labels)
    torch.testing.assert_close(out.mlm_loss, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", DECODERS)
def test_decoder_adapter_checkpoint_round_trip(family, tmp_path):
    """An adapter-only checkpoint leaves the frozen LM head out and `from_adapter` reloads it from the backbone."""
    from m2a_hf.adapters import from_adapter, save_adapter

    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(backbone_config(family)).save_pretrained(tmp_path / "backbone")
    model = M2AForSequenceClassification.from_backbone(
        tmp_path / "backbone", attributes=ATTRS, num_labels=3, lora_rank=2
    )
    perturb(model, scale=0.2)
    save_adapter(model, tmp_path / "adapter")
    reloaded = from_adapter(tmp_path / "adapter").eval()
    ids = token_ids()
    with torch.no_grad():
        expected = model.eval()(input_ids=ids, attribute_ids=ATTRIBUTE_IDS).logits
        torch.testing.assert_close(reloaded(input_ids=ids, attribute_ids=ATTRIBUTE_IDS).logits, expected)
    if family == "llama":
        torch.testing.assert_close(reloaded.clm_head.weight, model.clm_head.weight)


@pytest.mark.parametrize("family", ["roberta", "deberta-v2"])
def test_export_coarse_folds_the_coarse_view_of_bert_style_families(family):
    model = build(family)
    plain = export_coarse(model)
    ids = token_ids()
    with torch.no_grad():
        expected = model(input_ids=ids, view="coarse").logits
        torch.testing.assert_close(plain(input_ids=ids).logits, expected, rtol=1e-5, atol=1e-5)


def test_export_coarse_refuses_families_without_a_bert_style_head():
    for family in ("gpt2", "llama", "modernbert", "distilbert"):
        with pytest.raises(NotImplementedError, match=f"backbone is '{family}'"):
            export_coarse(build(family))


# ---------------------------------------------------------------------------------------------- slow: Trainer, reload
@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_a_trainer_step(family, tmp_path):
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments, default_data_collator

    model = build(family).train()
    ids = token_ids(8, seed=1)
    data = Dataset.from_dict(
        {
            "input_ids": ids.tolist(),
            "attention_mask": torch.ones_like(ids).tolist(),
            "attribute_ids": torch.cat([ATTRIBUTE_IDS, ATTRIBUTE_IDS]).tolist(),
            "labels": [0, 1, 2, 1, 0, 1, 2, 1],
        }
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=1, learning_rate=1e-2, report_to=[],
        save_strategy="no", use_cpu=True,
    )  # fmt: skip
    result = Trainer(model=model, args=args, train_dataset=data, data_collator=default_data_collator).train()
    assert torch.isfinite(torch.tensor(result.training_loss))
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= set(model.adapter_parameter_names(1))


REMOTE_CHECK = BLOCK_M2A_HF + textwrap.dedent(
    """
    import torch
    from transformers import AutoModelForSequenceClassification
    refs = torch.load(sys.argv[1], weights_only=True)
    for family, ref in refs.items():
        model = AutoModelForSequenceClassification.from_pretrained(ref["path"], trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        with torch.no_grad():
            logits = model(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"],
                           attribute_ids=ref["attribute_ids"]).logits
        torch.testing.assert_close(logits, ref["logits"], rtol=1e-5, atol=1e-6)
        print("REMOTE-OK", family)
    """
)


@pytest.mark.slow
def test_save_and_reload_with_remote_code_without_m2a_hf(tmp_path):
    refs = {}
    for family in FAMILIES:
        model = build(family)
        ids, mask = _padded(token_ids(), [7, 4, 2, 5], "right", model.config.pad_token_id or 0)
        path = tmp_path / family
        model.save_pretrained(path)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask, attribute_ids=ATTRIBUTE_IDS).logits
        refs[family] = {
            "path": str(path), "input_ids": ids, "attention_mask": mask, "attribute_ids": ATTRIBUTE_IDS,
            "logits": logits,
        }  # fmt: skip
    torch.save(refs, tmp_path / "refs.pt")
    result = subprocess.run(
        [sys.executable, "-I", "-c", REMOTE_CHECK, str(tmp_path / "refs.pt")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **thread_env()},
        timeout=600,
        check=False,
    )
    assert [line for line in result.stdout.splitlines() if line.startswith("REMOTE-OK")] == [
        f"REMOTE-OK {family}" for family in FAMILIES
    ], result.stderr[-3000:]


def _decoder_tokenizer():
    """A word-level fast tokenizer with an eos token and no pad token (as GPT-2's), on the tiny vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(3, VOCAB)]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def test_the_collator_pads_a_decoder_batch_with_the_eos_token():
    from m2a_hf.collator import M2ADataCollator

    tokenizer = _decoder_tokenizer()
    assert tokenizer.pad_token is None
    collator = M2ADataCollator(tokenizer, mlm_probability=0.0)
    assert tokenizer.pad_token == "</s>" and tokenizer.pad_token_id == 2
    model = build("gpt2")
    assert model.config.pad_token_id == tokenizer.pad_token_id
    texts = ["w5 w6 w7 w8", "w9 w10", "w11 w12 w13", "w14"]
    features = [
        {**tokenizer(t), "attribute_ids": ids, "labels": 1}
        for t, ids in zip(texts, ATTRIBUTE_IDS.tolist(), strict=True)
    ]
    batch = collator(features)
    assert "mlm_labels" not in batch and batch["attention_mask"].sum(1).tolist() == [4, 2, 3, 1]
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        alone = [
            model(**tokenizer(t, return_tensors="pt"), attribute_ids=ATTRIBUTE_IDS[i : i + 1]).logits
            for i, t in enumerate(texts)
        ]
    torch.testing.assert_close(logits, torch.cat(alone), rtol=1e-5, atol=1e-5)
    assert torch.isfinite(model.train()(**batch).loss)
