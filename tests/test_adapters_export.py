"""Building on a backbone, adapter-only checkpoints, the vanilla and peft coarse-view exports and growing an attribute
after training (`m2a_hf.adapters`), on the tiny random backbone (and the real MiniLM for the peft export)."""

from __future__ import annotations

import copy
import json
import logging
import subprocess
import sys
import textwrap

import pytest
import torch
from helpers import TINY_BACKBONE, thread_env
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import BertConfig, BertForMaskedLM

from m2a_hf import M2AForSequenceClassification
from m2a_hf.adapters import (
    export_coarse,
    export_peft_adapter,
    from_adapter,
    from_backbone,
    num_parameters_by_group,
    resize_attribute_values,
    save_adapter,
)


@pytest.fixture(scope="module")
def trained_once(tiny_backbone):
    torch.manual_seed(0)
    model = M2AForSequenceClassification.from_backbone(
        tiny_backbone, attributes={"user": 7, "item": 5}, num_labels=3, lora_rank=4, lora_alpha=8
    )
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.02)
    return model.eval()


@pytest.fixture
def trained(trained_once):
    """An M2A model whose trainable parameters all moved away from their initial values (a copy per test)."""
    return copy.deepcopy(trained_once)


@pytest.fixture(scope="module")
def inputs(tiny_tokenizer):
    enc = tiny_tokenizer(["soft fabric, runs small", "awful zipper", "ok"], padding=True, return_tensors="pt")
    return dict(enc), torch.tensor([[1, 2], [-1, 3], [6, -1]])


def test_adapter_holds_exactly_the_trained_parameters_and_reloads_identically(trained, inputs, tmp_path):
    enc, attribute_ids = inputs
    save_adapter(trained, tmp_path / "adapter")
    with safe_open(tmp_path / "adapter" / "m2a_adapter_model.safetensors", "pt") as f:
        keys = set(f.keys())
    trainable = {n for n, p in trained.named_parameters() if p.requires_grad}
    assert keys == trainable
    assert not any(k.endswith(("query.weight", "value.weight", "word_embeddings.weight")) for k in keys)
    reloaded = from_adapter(tmp_path / "adapter").eval()
    with torch.no_grad():
        for view in (None, "coarse"):
            ids = attribute_ids if view is None else None
            a = trained(**enc, attribute_ids=ids, view=view).logits
            b = reloaded(**enc, attribute_ids=ids, view=view).logits
            assert torch.equal(a, b), view
    # the adapter is the full checkpoint minus the frozen backbone
    trained.save_pretrained(tmp_path / "full")
    full = (tmp_path / "full" / "model.safetensors").stat().st_size
    adapter = (tmp_path / "adapter" / "m2a_adapter_model.safetensors").stat().st_size
    frozen_bytes = sum(p.numel() * p.element_size() for p in trained.parameters() if not p.requires_grad)
    assert abs((full - adapter) - frozen_bytes) / frozen_bytes < 0.01


def test_adapter_with_the_old_unknown_lora_names_loads(trained, inputs, tmp_path):
    enc, attribute_ids = inputs
    save_adapter(trained, tmp_path / "adapter")
    weights = tmp_path / "adapter" / "m2a_adapter_model.safetensors"
    old = {k.replace(".m2a_unknown_lora_", ".m2a_attr_"): v for k, v in load_file(weights).items()}
    assert any(k.endswith(".m2a_attr_B") for k in old)
    save_file(old, weights, metadata={"format": "pt", "m2a_adapter": "1"})
    reloaded = from_adapter(tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.equal(reloaded(**enc, view="coarse").logits, trained(**enc, view="coarse").logits)
        ids = attribute_ids
        assert torch.equal(reloaded(**enc, attribute_ids=ids).logits, trained(**enc, attribute_ids=ids).logits)


def test_adapter_refuses_a_backbone_of_other_shapes(trained, tmp_path):
    save_adapter(trained, tmp_path / "adapter")
    other = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
    BertForMaskedLM(other).save_pretrained(tmp_path / "other")
    hidden = TINY_BACKBONE["hidden_size"]
    with pytest.raises(ValueError, match=rf"different backbone .*hidden_size: adapter {hidden} vs backbone 64"):
        from_adapter(tmp_path / "adapter", backbone=tmp_path / "other")


def test_from_backbone_leaves_the_transformers_verbosity_alone(tiny_backbone, monkeypatch):
    from transformers.utils import logging as hf_logging

    def forbidden(*args, **kwargs):
        raise AssertionError("the process-wide transformers verbosity was changed")

    for name in ("set_verbosity", "set_verbosity_error", "set_verbosity_warning", "set_verbosity_info"):
        monkeypatch.setattr(hf_logging, name, forbidden)
    model = M2AForSequenceClassification.from_backbone(tiny_backbone, attributes={"user": 2}, lora_rank=2)
    assert type(model) is M2AForSequenceClassification
    assert not logging.getLogger("transformers.modeling_utils").filters  # the scoped filter is gone


def test_counts_by_group_add_up(tiny_backbone):
    model = from_backbone(tiny_backbone, attributes={"user": 3, "item": 2}, lora_rank=2)
    groups = num_parameters_by_group(model)
    named = dict(model.named_parameters())
    assert groups["unknown_lora"] == sum(p.numel() for n, p in named.items() if ".m2a_unknown_lora_" in n) > 0
    assert groups["trainable"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert groups["total"] == sum(p.numel() for p in model.parameters())


def test_full_finetune_has_no_adapter_checkpoint(tiny_backbone, tmp_path):
    model = M2AForSequenceClassification.from_backbone(
        tiny_backbone, attributes={"user": 2}, lora_rank=2, full_finetune=True
    )
    with pytest.raises(ValueError, match="fully fine-tuned"):
        save_adapter(model, tmp_path)


EXPORT_CHECK = textwrap.dedent(
    """
    import sys, json
    import torch
    from transformers import AutoModelForSequenceClassification
    path, ref = sys.argv[1], torch.load(sys.argv[2], weights_only=True)
    config = json.load(open(path + "/config.json"))
    assert "auto_map" not in config and config["model_type"] == "bert", config.get("auto_map")
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()  # no trust_remote_code
    with torch.no_grad():
        logits = model(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"]).logits
    torch.testing.assert_close(logits, ref["logits"], rtol=1e-4, atol=1e-5)
    print("EXPORT-OK", type(model).__name__)
    """
)


@pytest.mark.slow
def test_export_coarse_is_a_plain_checkpoint_matching_the_coarse_view(trained, inputs, tmp_path):
    enc, _ = inputs
    export_coarse(trained, tmp_path / "plain")
    assert not list((tmp_path / "plain").glob("*.py"))
    with torch.no_grad():
        coarse = trained(**enc, view="coarse").logits
    torch.save({**enc, "logits": coarse}, tmp_path / "ref.pt")
    result = subprocess.run(
        [sys.executable, "-I", "-c", EXPORT_CHECK, str(tmp_path / "plain"), str(tmp_path / "ref.pt")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **thread_env()},
        timeout=300,
        check=False,
    )
    assert "EXPORT-OK BertForSequenceClassification" in result.stdout, result.stderr[-3000:]


def _perturbed(model: M2AForSequenceClassification) -> M2AForSequenceClassification:
    """`model` with every trainable parameter moved away from its initial value (B = 0 would hide the LoRAs)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.02)
    return model.eval()


@pytest.mark.parametrize("backbone_name", ["tiny_backbone", pytest.param("minilm_path", marks=pytest.mark.slow)])
def test_export_peft_adapter_is_a_peft_lora_giving_the_coarse_view(backbone_name, request, inputs, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    backbone = request.getfixturevalue(backbone_name)
    model = _perturbed(
        M2AForSequenceClassification.from_backbone(
            backbone, attributes={"user": 7, "item": 5}, num_labels=3, lora_rank=4, lora_alpha=8, attribute_lora_rank=2
        )
    )
    enc, attribute_ids = inputs
    model.export_peft_adapter(tmp_path / "peft")  # the method installed by m2a_hf.adapters

    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["base_model_name_or_path"] == backbone
    weights = load_file(tmp_path / "peft" / "adapter_model.safetensors")
    query = "base_model.model.bert.encoder.layer.0.attention.self.query"
    # the coarse LoRA (rank 4) and both unknown LoRAs (rank 2 each) as one LoRA of rank 8, stored pre-scaled
    assert weights[f"{query}.lora_A.weight"].shape[0] == 8 and config["alpha_pattern"][query.split("bert.")[1]] == 8
    dense = "base_model.model.bert.encoder.layer.0.intermediate.dense.lora_A.weight"  # a plain LoRA keeps rank 4
    assert weights[dense].shape[0] == 4 and config["r"] == config["lora_alpha"] == 4
    assert {"base_model.model.classifier.weight", "base_model.model.bert.pooler.dense.weight"} <= set(weights)
    assert "base_model.model.bert.embeddings.LayerNorm.weight" in weights  # trained LayerNorms are modules_to_save
    assert not any(k.endswith(("query.weight", "query.base_layer.weight", "word_embeddings.weight")) for k in weights)

    base = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=3)
    loaded = PeftModel.from_pretrained(base, tmp_path / "peft").eval()
    with torch.no_grad():
        coarse = model(**enc, view="coarse").logits
        fine = model(**enc, attribute_ids=attribute_ids).logits
        iid = model(**enc, view="iid").logits
        peft_logits = loaded(**enc).logits
    assert not torch.allclose(coarse, iid, atol=1e-4) and not torch.allclose(coarse, fine, atol=1e-4)
    torch.testing.assert_close(peft_logits, coarse, rtol=1e-4, atol=1e-5)


def test_export_peft_adapter_refuses_a_fully_fine_tuned_model(tiny_backbone, tmp_path):
    model = M2AForSequenceClassification.from_backbone(
        tiny_backbone, attributes={"user": 3}, num_labels=2, lora_rank=2, full_finetune=True
    )
    with pytest.raises(ValueError, match=r"fully fine-tuned .*export_coarse"):
        export_peft_adapter(model, tmp_path / "peft")
    assert not (tmp_path / "peft").exists()


def test_resize_attribute_values_keeps_old_rows_and_starts_new_ones_at_zero(trained, inputs):
    enc, attribute_ids = inputs
    with torch.no_grad():
        before = trained(**enc, attribute_ids=attribute_ids).logits
        resize_attribute_values(trained, "user", 12)
        after = trained(**enc, attribute_ids=attribute_ids).logits
        new_user = trained(**enc, attribute_ids=torch.tensor([[11, 2], [11, 3], [11, -1]])).logits
        no_fine_user = trained.m2a.value_embeddings[0].weight[11]
    torch.testing.assert_close(before, after)
    assert trained.config.attribute_sizes == [12, 5] and new_user.shape == (3, 3)
    assert torch.count_nonzero(no_fine_user) == 0
    with pytest.raises(ValueError, match=r"can grow but not shrink"):
        resize_attribute_values(trained, "user", 3)
    with pytest.raises(ValueError, match=r"unknown attribute 'age'"):
        resize_attribute_values(trained, "age", 3)
