"""Registration of the M2A classes with the transformers Auto classes (in-process use, without remote code)."""

from __future__ import annotations

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from m2a_hf.modeling import M2AConfig, M2AForSequenceClassification, M2AModel


def register() -> None:
    """Register `M2AConfig`/`M2AModel`/`M2AForSequenceClassification` with the Auto classes and for remote code.

    After this, `save_pretrained` copies `configuration_m2a.py` and `modeling_m2a.py` next to the weights, and
    `AutoModelForSequenceClassification.from_pretrained(path)` works in this process even without
    `trust_remote_code`.

    Idempotent without any state of its own: with `exist_ok=True` the Auto mappings map `"m2a"` / `M2AConfig` to
    these classes again (a dict entry, replaced, never duplicated), and `register_for_auto_class` sets a class
    attribute. Calling it again also restores these classes if something else registered `"m2a"` in between.
    """
    AutoConfig.register("m2a", M2AConfig, exist_ok=True)
    AutoModel.register(M2AConfig, M2AModel, exist_ok=True)
    AutoModelForSequenceClassification.register(M2AConfig, M2AForSequenceClassification, exist_ok=True)
    M2AConfig.register_for_auto_class()
    M2AModel.register_for_auto_class("AutoModel")
    M2AForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")


__all__ = ["register"]
