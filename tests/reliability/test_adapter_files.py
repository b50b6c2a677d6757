"""Adapter-only checkpoints as files (issue 15 item 4, issue 14 item 9): M2A's own file names (not peft's), the
names written before still loading, the backbone fingerprint that refuses a same-shape backbone with other weights,
and a recorded backbone path that is gone."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSequenceClassification, BertModel
from transformers.utils.peft_utils import find_adapter_config_file

from m2a_hf import M2AForSequenceClassification
from m2a_hf.adapters import (
    ADAPTER_CONFIG_NAME,
    ADAPTER_WEIGHTS_NAME,
    FINGERPRINT_SCHEME,
    LEGACY_ADAPTER_FILES,
    _is_hub_id,
    backbone_fingerprint,
    from_adapter,
    from_backbone,
    save_adapter,
)


@pytest.fixture(scope="module")
def trained(tiny_backbone):
    """An M2A model on `tiny_backbone` whose trainable parameters all moved away from their initial values."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = from_backbone(tiny_backbone, attributes={"user": 4}, num_labels=3, lora_rank=2, lora_alpha=4)
        with torch.no_grad():
            for param in model.parameters():
                if param.requires_grad:
                    param.add_(torch.randn_like(param) * 0.02)
    return model.eval()


@pytest.fixture(scope="module")
def batch(tiny_tokenizer):
    enc = tiny_tokenizer(["soft fabric", "awful zipper, runs small"], padding=True, return_tensors="pt")
    return dict(enc), torch.tensor([[1], [-1]])


def _logits(model, batch):
    enc, ids = batch
    with torch.no_grad():
        return model.eval()(**enc, attribute_ids=ids).logits


def _other_backbone(tiny_backbone, path, edit):
    """A copy of `tiny_backbone` (same shapes) with `edit(state_dict)` applied to its weights."""
    backbone = BertModel.from_pretrained(tiny_backbone)
    with torch.no_grad():
        edit(backbone.state_dict())
    backbone.save_pretrained(path)
    return str(path)


def test_writes_m2a_file_names_that_peft_and_transformers_do_not_claim(trained, tmp_path):
    written = save_adapter(trained, tmp_path / "adapter")
    names = sorted(p.name for p in (tmp_path / "adapter").iterdir())
    assert names == sorted([ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME]) == sorted(Path(p).name for p in written)
    assert ADAPTER_CONFIG_NAME == "m2a_adapter_config.json"
    assert ADAPTER_WEIGHTS_NAME == "m2a_adapter_model.safetensors"
    # transformers' peft integration looks for `adapter_config.json`: it no longer takes the folder for peft's
    assert find_adapter_config_file(str(tmp_path / "adapter")) is None
    config = json.loads((tmp_path / "adapter" / ADAPTER_CONFIG_NAME).read_text())
    assert config["model_type"] == "m2a"
    assert config["base_model_name_or_path"] == trained.config.base_model_name_or_path
    assert config["backbone_fingerprint"].startswith(f"{FINGERPRINT_SCHEME}:")


def test_auto_model_on_an_adapter_folder_is_not_taken_for_peft(trained, tmp_path):
    save_adapter(trained, tmp_path / "adapter")
    # no config.json, so no M2A code runs: transformers' own error (OSError or ValueError by version), not the
    # TypeError of its peft integration that peft's file names used to cause
    with pytest.raises((OSError, ValueError)) as err:
        AutoModelForSequenceClassification.from_pretrained(tmp_path / "adapter", trust_remote_code=True)
    assert "peft_type" not in str(err.value)


def test_from_pretrained_on_an_adapter_folder_says_to_use_from_adapter(trained, tmp_path):
    save_adapter(trained, tmp_path / "adapter")
    with pytest.raises(OSError, match=r"holds an M2A adapter \(no backbone\).*from_adapter"):
        M2AForSequenceClassification.from_pretrained(tmp_path / "adapter")


def test_folders_with_the_old_file_names_still_load(trained, batch, tmp_path, caplog):
    folder = tmp_path / "adapter"
    save_adapter(trained, folder)
    config = json.loads((folder / ADAPTER_CONFIG_NAME).read_text())
    del config["backbone_fingerprint"]  # saved before fingerprints were
    (folder / ADAPTER_CONFIG_NAME).unlink()
    (folder / LEGACY_ADAPTER_FILES[0]).write_text(json.dumps(config))
    (folder / ADAPTER_WEIGHTS_NAME).rename(folder / LEGACY_ADAPTER_FILES[1])
    with caplog.at_level(logging.INFO, logger="m2a_hf.adapters"):
        reloaded = from_adapter(folder)
    assert torch.equal(_logits(reloaded, batch), _logits(trained, batch))
    assert "records no backbone fingerprint" in caplog.text


def test_the_new_names_win_over_old_ones_in_the_same_folder(trained, batch, tmp_path):
    folder = tmp_path / "adapter"
    save_adapter(trained, folder)
    state = load_file(folder / ADAPTER_WEIGHTS_NAME)
    save_file({k: torch.zeros_like(v) for k, v in state.items()}, folder / LEGACY_ADAPTER_FILES[1])
    shutil.copy(folder / ADAPTER_CONFIG_NAME, folder / LEGACY_ADAPTER_FILES[0])
    assert torch.equal(_logits(from_adapter(folder), batch), _logits(trained, batch))


def test_a_peft_adapter_config_is_refused(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    with pytest.raises(ValueError, match="not an M2A adapter config"):
        from_adapter(tmp_path)


def test_a_folder_without_an_adapter_is_a_clear_oserror(tmp_path):
    with pytest.raises(OSError, match=r"holds no M2A adapter: no m2a_adapter_config\.json"):
        from_adapter(tmp_path)


def test_fingerprint_is_stable_across_save_load_and_bfloat16(trained, tiny_backbone, tmp_path):
    saved = backbone_fingerprint(trained)
    save_adapter(trained, tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / ADAPTER_CONFIG_NAME).read_text())
    assert config["backbone_fingerprint"] == saved
    reloaded = from_adapter(tmp_path / "adapter")
    assert backbone_fingerprint(reloaded) == reloaded.config.backbone_fingerprint == saved
    fresh = from_backbone(tiny_backbone, attributes={"user": 2}, lora_rank=4)  # other adapters, same backbone
    assert backbone_fingerprint(fresh) == saved
    assert backbone_fingerprint(reloaded.to(torch.bfloat16)) == saved


def _perturb_a_bias(state):
    state["encoder.layer.1.attention.self.value.bias"].add_(0.01)


def _perturb_a_first_row(state):
    state["encoder.layer.0.intermediate.dense.weight"][0].mul_(1.01)


def _perturb_a_layer_norm(state):
    state["encoder.layer.0.attention.output.LayerNorm.weight"].mul_(1.01)


def _reseed(state):
    generator = torch.Generator().manual_seed(1)
    for tensor in state.values():
        if tensor.is_floating_point():
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.02)


@pytest.mark.parametrize(
    "edit", [_reseed, _perturb_a_bias, _perturb_a_first_row], ids=["other-weights", "one-bias", "one-row"]
)
def test_a_same_shape_backbone_with_other_weights_is_refused(trained, tiny_backbone, tmp_path, edit):
    save_adapter(trained, tmp_path / "adapter")
    other = _other_backbone(tiny_backbone, tmp_path / "other", edit)
    saved = backbone_fingerprint(trained)
    with pytest.raises(ValueError, match=r"other weights") as err:
        from_adapter(tmp_path / "adapter", backbone=other)
    message = str(err.value)
    assert other in message and saved in message and "force=True" in message
    assert message.count(f"{FINGERPRINT_SCHEME}:") == 2  # the backbone's and the adapter's


def test_force_loads_a_different_backbone_with_a_warning(trained, tiny_backbone, tmp_path, caplog):
    save_adapter(trained, tmp_path / "adapter")
    other = _other_backbone(tiny_backbone, tmp_path / "other", _perturb_a_bias)
    with caplog.at_level(logging.WARNING, logger="m2a_hf.adapters"):
        model = M2AForSequenceClassification.from_adapter(tmp_path / "adapter", backbone=other, force=True)
    assert "loading anyway (force=True)" in caplog.text
    assert model.config.base_model_name_or_path == other
    assert model.config.backbone_fingerprint != backbone_fingerprint(trained)


def test_a_gone_recorded_backbone_path_is_a_clear_error(tiny_backbone, batch, tmp_path):
    moved = shutil.copytree(tiny_backbone, tmp_path / "backbone")
    model = from_backbone(str(moved), attributes={"user": 4}, num_labels=3, lora_rank=2)
    save_adapter(model, tmp_path / "adapter")
    shutil.rmtree(moved)
    with pytest.raises(FileNotFoundError, match=r"does not exist here: pass `backbone=`") as err:
        from_adapter(tmp_path / "adapter")
    assert str(moved) in str(err.value)
    reloaded = from_adapter(tmp_path / "adapter", backbone=tiny_backbone)  # same weights: the fingerprint agrees
    assert torch.equal(_logits(reloaded, batch), _logits(model, batch))


@pytest.mark.parametrize(
    ("name", "hub"),
    [
        ("sentence-transformers/all-MiniLM-L6-v2", True),
        ("bert-base-uncased", True),
        ("/tmp/gone/backbone", False),
        ("./backbone", False),
        ("~/models/bert", False),
        ("runs/a/b", False),
    ],
)
def test_hub_ids_are_told_from_paths(name, hub):
    assert _is_hub_id(name) is hub


def test_trained_layer_norms_are_not_fingerprinted(trained, batch, tiny_backbone, tmp_path):
    """With `train_layer_norms` (the default) the adapter carries the LayerNorms, so the backbone's do not matter."""
    assert trained.config.train_layer_norms
    save_adapter(trained, tmp_path / "adapter")
    other = _other_backbone(tiny_backbone, tmp_path / "other", _perturb_a_layer_norm)
    reloaded = from_adapter(tmp_path / "adapter", backbone=other)
    assert torch.equal(_logits(reloaded, batch), _logits(trained, batch))
