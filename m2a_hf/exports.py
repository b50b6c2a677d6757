"""The coarse view of an M2A model in other formats: folded into the stock classifier of its backbone
(`export_coarse`, no remote code needed) or as a genuine peft LoRA adapter of that classifier
(`export_peft_adapter`, also `model.export_peft_adapter(dir)`), and the peft `modules_to_save` that match what M2A
trains besides its adapters (`baseline_modules_to_save`, shared with the LoRA baseline)."""

from __future__ import annotations

import copy
import os
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForSequenceClassification, PreTrainedModel

from m2a_hf.modeling import M2AForSequenceClassification, M2ALinear


EXPORTABLE_FAMILIES = ("bert", "roberta", "xlm-roberta", "camembert", "deberta-v2")
"""Backbone families `export_coarse` folds into a plain checkpoint: their stock classification head is M2A's (BERT:
pooler + linear; RoBERTa: dense → tanh → out_proj; DeBERTa-v2: context pooler with `pooler_hidden_act="tanh"` +
linear). ELECTRA's and DistilBERT's heads use another activation, ModernBERT's adds a norm, decoders pool the last
token with a bias-free linear."""
_EXPORT_CONFIG = {"deberta-v2": {"pooler_hidden_act": "tanh"}}
"""Backbone-config fields an export sets so that the stock head computes M2A's."""


# ----------------------------------------------------------------------------------------------------------------------
# The coarse view on the stock classifier: folded into its weights, or as a peft LoRA adapter
# ----------------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def export_coarse(
    model: M2AForSequenceClassification, save_directory: str | os.PathLike | None = None
) -> PreTrainedModel:
    """Fold the coarse view into the backbone: a standard `AutoModelForSequenceClassification` of its architecture.

    The coarse LoRA, every unknown LoRA and the plain LoRAs are added to the weights they adapt. The result loads
    without remote code and its logits equal `model(..., view="coarse").logits`.

    Args:
        model: An M2A model whose backbone family is one of `EXPORTABLE_FAMILIES`.
        save_directory: Also `save_pretrained` the result there.

    Returns:
        The plain model, in eval mode.

    Raises:
        NotImplementedError: The backbone family is not one of `EXPORTABLE_FAMILIES` (another classification head,
            a Conv1D or fused-QKV layer), or its classification head is neither BERT- nor RoBERTa-style.
    """
    plain = _stock_classifier(model, fold_coarse=True)
    plain.eval()
    if save_directory is not None:
        plain.save_pretrained(save_directory)
    return plain


@torch.no_grad()
def export_peft_adapter(model: M2AForSequenceClassification, save_directory: str | os.PathLike) -> Any:
    """Write the coarse view as a peft LoRA adapter of the backbone's stock `AutoModelForSequenceClassification`.

    Per adapted layer, the coarse LoRA and every attribute's unknown LoRA become one LoRA of their summed rank
    (`A = [A; A_1; ...]`, `B = [s·B, s_1·B_1, ...]`, with `lora_alpha` = rank so that peft's scaling is 1); the plain
    LoRAs are kept as they are. The trained classification head (mapped onto the stock head as `export_coarse` does:
    BERT's pooler + classifier, or RoBERTa's head) and the trained LayerNorms are `modules_to_save`. The folder
    (`adapter_config.json` + `adapter_model.safetensors`, peft's key names) loads with peft alone, and the logits
    equal `model(..., view="coarse").logits`:

        >>> base = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=K)  # doctest: +SKIP
        >>> PeftModel.from_pretrained(base, save_directory)  # doctest: +SKIP

    Also available as `model.export_peft_adapter(save_directory)`.

    Args:
        model: An M2A model whose backbone family is one of `EXPORTABLE_FAMILIES`, not fully fine-tuned.
        save_directory: Folder to write (created if needed).

    Returns:
        The `peft.PeftModel` that was saved, on a copy of the model's backbone, in eval mode.

    Raises:
        ValueError: The model was fully fine-tuned (its backbone weights changed, which no LoRA of the stock backbone
            holds).
        NotImplementedError: The backbone family is not one of `EXPORTABLE_FAMILIES`.
    """
    from peft import LoraConfig, TaskType, get_peft_model

    if model.config.full_finetune:
        raise ValueError(
            "this model was fully fine-tuned (`full_finetune=True`): its backbone weights changed, so its coarse view "
            "is no LoRA adapter of the stock backbone; use `export_coarse` for a plain checkpoint."
        )
    plain = _stock_classifier(model, fold_coarse=False)
    factors = {name: _coarse_lora_factors(layer) for name, layer in model.m2a.adapted_layers()}
    rank = model.config.lora_rank
    ranks = {name: a.shape[0] for name, (a, _) in factors.items()}
    other_ranks = {name: r for name, r in ranks.items() if r != rank}
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=rank,
        lora_alpha=rank,  # scaling 1: B is stored pre-scaled
        rank_pattern=other_ranks,
        alpha_pattern=other_ranks,
        lora_dropout=model.config.lora_dropout,
        target_modules=sorted(factors),
        modules_to_save=baseline_modules_to_save(plain, model.config.train_layer_norms),
    )
    peft_model = get_peft_model(plain, config)
    for name, (lora_a, lora_b) in factors.items():
        layer = plain.base_model.get_submodule(name)
        for module, value in ((layer.lora_A["default"], lora_a), (layer.lora_B["default"], lora_b)):
            if module.weight.shape != value.shape:
                raise ValueError(
                    f"peft built {name} with {tuple(module.weight.shape)}, expected {tuple(value.shape)}."
                )
            module.weight.copy_(value)
    backbone = getattr(model.config, "base_model_name_or_path", None)
    peft_model.peft_config["default"].base_model_name_or_path = backbone or None
    peft_model.eval()
    peft_model.save_pretrained(str(save_directory))
    return peft_model


def _stock_classifier(model: M2AForSequenceClassification, *, fold_coarse: bool) -> PreTrainedModel:
    """The backbone's stock `AutoModelForSequenceClassification` with M2A's classification head mapped onto its head
    (RoBERTa: `classifier.dense`/`out_proj`; BERT: `pooler.dense` + `classifier`) and M2A's backbone weights (the
    trained LayerNorms included); with `fold_coarse`, every adapted weight plus its coarse-view update.

    Raises:
        NotImplementedError: The backbone family is not one of `EXPORTABLE_FAMILIES`, or the stock head is neither
            BERT- nor RoBERTa-style.
    """
    family = model.config.backbone_model_type
    if family not in EXPORTABLE_FAMILIES:
        raise NotImplementedError(
            f"the coarse-view exports support the backbone families {list(EXPORTABLE_FAMILIES)} (BERT- and RoBERTa-style "
            f"classification heads); this model's backbone is {family!r}. Share it with `save_pretrained` instead."
        )
    backbone_config = copy.deepcopy(model.config.backbone_config)
    backbone_config.num_labels = model.config.num_labels
    backbone_config.id2label = dict(model.config.id2label)
    backbone_config.label2id = dict(model.config.label2id)
    backbone_config.classifier_dropout = model.classifier.dropout.p
    for key, value in _EXPORT_CONFIG.get(family, {}).items():
        setattr(backbone_config, key, value)
    plain = AutoModelForSequenceClassification.from_config(backbone_config)
    state = {name: t.clone() for name, t in model.m2a.backbone.state_dict().items() if ".m2a_" not in name}
    if fold_coarse:
        for name, layer in model.m2a.adapted_layers():
            state[f"{name}.weight"] = layer.weight + _coarse_delta_weight(layer).to(layer.weight)
    result = plain.base_model.load_state_dict(state, strict=False)
    if result.unexpected_keys or any(not k.startswith("pooler.") for k in result.missing_keys):
        raise ValueError(f"cannot load M2A's backbone into {type(plain).__name__}: {result}")
    head = getattr(plain, "classifier", None)
    pooler = getattr(plain.base_model, "pooler", None)
    if pooler is None:  # DeBERTa's context pooler sits on the classification model
        pooler = getattr(plain, "pooler", None)
    if hasattr(head, "dense") and hasattr(head, "out_proj"):  # RoBERTa-style head
        head.dense.load_state_dict(model.classifier.dense.state_dict())
        head.out_proj.load_state_dict(model.classifier.out_proj.state_dict())
    elif isinstance(head, nn.Linear) and pooler is not None and hasattr(pooler, "dense"):  # pooler + linear
        pooler.dense.load_state_dict(model.classifier.dense.state_dict())
        head.load_state_dict(model.classifier.out_proj.state_dict())
    else:
        raise NotImplementedError(
            f"the coarse-view exports support BERT- and RoBERTa-style classification heads; {type(plain).__name__} "
            f"has classifier {type(head).__name__}."
        )
    return plain


def _coarse_lora_factors(layer: M2ALinear) -> tuple[torch.Tensor, torch.Tensor]:
    """`(A, B)` of `layer`'s coarse view as one LoRA: `A = [A; A_1; ...]` (rank_total, in), `B = [s·B, s_1·B_1, ...]`
    (out, rank_total), so that `B @ A = s·BA + Σ_a s_a·B_a A_a` (the coarse LoRA + every unknown LoRA)."""
    lora_a, lora_b = layer.m2a_lora_A, layer.scaling * layer.m2a_lora_B
    if layer.num_attributes:
        lora_a = torch.cat([lora_a, layer.m2a_unknown_lora_A.flatten(0, 1)], dim=0)
        unknown_b = layer.unknown_scaling * layer.m2a_unknown_lora_B.permute(1, 0, 2).flatten(1)
        lora_b = torch.cat([lora_b, unknown_b], dim=1)
    return lora_a.detach(), lora_b.detach()


def _coarse_delta_weight(layer: M2ALinear) -> torch.Tensor:
    """Dense (out, in) update of `layer` in the coarse view: s·BA + Σ_a s_a·B_a A_a (coarse + every unknown LoRA)."""
    lora_a, lora_b = _coarse_lora_factors(layer)
    return lora_b @ lora_a


def baseline_modules_to_save(model: torch.nn.Module, train_layer_norms: bool = True) -> list[str]:
    """The non-adapter modules of a stock classifier that M2A trains besides its adapters, as peft `modules_to_save`
    (for the LoRA baseline and `export_peft_adapter`): the whole classification head (classifier and, for BERT-style
    models, the pooler, which M2A's head contains) and, like M2A's `train_layer_norms` (the reference's default),
    every LayerNorm. Without the pooler a backbone whose checkpoint has none (all-MiniLM-L6-v2) would classify
    through a frozen random projection."""
    names = {"classifier"}
    for name, module in model.named_modules():
        last = name.rsplit(".", 1)[-1]
        if last == "pooler" and any(p.numel() for p in module.parameters()):
            names.add("pooler")
        if train_layer_norms and isinstance(module, torch.nn.LayerNorm):
            names.add(last)
    return sorted(names)


M2AForSequenceClassification.export_peft_adapter = export_peft_adapter  # a method: `model.export_peft_adapter(dir)`


__all__ = ["EXPORTABLE_FAMILIES", "baseline_modules_to_save", "export_coarse", "export_peft_adapter"]
