"""M2A remote code: the files in this folder are copied into every saved checkpoint (torch + transformers only)."""

from .configuration_m2a import M2AConfig
from .modeling_m2a import (
    M2AForSequenceClassification,
    M2ALinear,
    M2AModel,
    M2APreTrainedModel,
    M2ASequenceClassifierOutput,
    kron_shapes,
)


__all__ = [
    "M2AConfig",
    "M2AForSequenceClassification",
    "M2ALinear",
    "M2AModel",
    "M2APreTrainedModel",
    "M2ASequenceClassifierOutput",
    "kron_shapes",
]
