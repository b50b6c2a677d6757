"""m2a-hf: Multi-Attribute Multi-Grained Adaptation (M2A, AAAI 2025) for Hugging Face transformers."""

from m2a_hf import adapters  # also installs `from_backbone` / `from_adapter` on M2AForSequenceClassification
from m2a_hf.auto import register
from m2a_hf.modeling import (
    M2AConfig,
    M2AForSequenceClassification,
    M2ALinear,
    M2AModel,
    M2APreTrainedModel,
    M2ASequenceClassifierOutput,
)


__version__ = "0.1.0"  # the only place of the version: pyproject.toml reads it ([tool.setuptools.dynamic])

register()

__all__ = [
    "M2AConfig",
    "M2AForSequenceClassification",
    "M2ALinear",
    "M2AModel",
    "M2APreTrainedModel",
    "M2ASequenceClassifierOutput",
    "__version__",
    "adapters",
    "register",
]
