"""Operations on an M2A model that loading and inference do not need, kept out of the remote code.

`modeling/` ships inside every checkpoint and every `trust_remote_code=True` user audits it, so it holds only what
loading, inference and the training forward need. Everything else lives here, as free functions on a model:

- building a model on a pretrained backbone: `from_backbone`, `load_backbone_weights`;
- adapter-only checkpoints: `adapter_state_dict`, `save_adapter`, `from_adapter`, `backbone_fingerprint`;
- the coarse view on the backbone's stock classifier, folded in (`export_coarse`) or as a peft LoRA adapter
  (`export_peft_adapter`): in `m2a_hf.exports`, re-exported here;
- growing an attribute's vocabulary: `resize_attribute_values`;
- parameter counts per adapter kind: `num_parameters_by_group`.

The two constructors are also classmethods, `M2AForSequenceClassification.from_backbone` and `.from_adapter`,
installed on the class when `m2a_hf` is imported (the class itself cannot import `m2a_hf`). A class loaded as remote
code in a process without `m2a_hf` does not have them: it only loads trained checkpoints.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
)

from m2a_hf.modeling import M2AConfig, M2AForSequenceClassification
from m2a_hf.modeling.configuration_m2a import CAUSAL_LM_MODEL_TYPES
from m2a_hf.modeling.modeling_m2a import LEGACY_KEY_MAPPING, M2A_ADAPTER_CONFIG_NAME, M2AValueEmbedding


logger = logging.getLogger(__name__)

ADAPTER_CONFIG_NAME = M2A_ADAPTER_CONFIG_NAME  # the remote code refuses such a folder in from_pretrained
ADAPTER_WEIGHTS_NAME = "m2a_adapter_model.safetensors"
LEGACY_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
"""The names `save_adapter` wrote before: peft's, which made transformers' peft integration take the folder for a
peft adapter. `from_adapter` still reads them."""
FINGERPRINT_SCHEME = "m2a-backbone-v1"
"""Prefix of `backbone_fingerprint`; a fingerprint of another scheme is not compared (see `backbone_fingerprint`)."""
_FINGERPRINT_EMBEDDING_ROWS = 16
PARAMETER_GROUPS = ("total", "trainable", "coarse_lora", "unknown_lora", "fine", "value_embeddings")
"""Keys of `num_parameters_by_group`: all parameters, the trainable ones, and each adapter kind."""
_BACKBONE_SHAPE_KEYS = (
    "model_type",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "vocab_size",
)


# ----------------------------------------------------------------------------------------------------------------------
# Building a model on a pretrained backbone
# ----------------------------------------------------------------------------------------------------------------------
def from_backbone(
    backbone: str | os.PathLike,
    attributes: Any = None,
    num_labels: int = 2,
    *,
    id2label: dict[int, str] | None = None,
    model_class: type[M2AForSequenceClassification] | None = None,
    **overrides: Any,
) -> M2AForSequenceClassification:
    """Build an M2A classifier on the pretrained encoder at `backbone` (local path or Hub repo id).

    Loads the encoder's weights (and its MLM head when the checkpoint has one; for a decoder backbone such as GPT-2 or
    Llama, its causal-LM head), freezes them, and adds the adapters at the family's default placement
    (`TRANSFORMERS_MODELS_TO_M2A_TARGET_MODULES_MAPPING`) unless `m2a_target_modules` / `lora_target_modules` are
    given. Also available as `M2AForSequenceClassification.from_backbone(...)`.

    Args:
        backbone: Path or Hub id of the encoder checkpoint.
        attributes: Attribute names with their number of values, e.g. `{"user": 1631, "item": 1633}`.
        num_labels: Number of classes (ignored when `id2label` is given).
        id2label: Class names by id.
        model_class: The class to build (a subclass of `M2AForSequenceClassification`); defaults to it.
        **overrides: `M2AConfig` fields (`lora_rank=8`, `training_policy="stochastic"`, ...).

    Returns:
        The model, in stage 1, with `config.base_model_name_or_path` set to `backbone`.
    """
    backbone = str(backbone)
    backbone_config = AutoConfig.from_pretrained(backbone)
    mask_token_id = overrides.pop("mask_token_id", None)
    if mask_token_id is None and backbone_config.model_type not in CAUSAL_LM_MODEL_TYPES:  # decoders mask nothing
        mask_token_id = _mask_token_id(backbone)
    if id2label is not None:
        id2label = {int(k): str(v) for k, v in id2label.items()}
        label_kwargs: dict[str, Any] = {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}
    else:
        label_kwargs = {"num_labels": num_labels}
    config = M2AConfig(
        backbone_config=backbone_config,
        attributes=attributes,
        mask_token_id=mask_token_id,
        **label_kwargs,
        **overrides,
    )
    model = (model_class or M2AForSequenceClassification)(config)
    load_backbone_weights(model, backbone)
    model.name_or_path = backbone
    model.config.base_model_name_or_path = backbone
    return model


@torch.no_grad()
def load_backbone_weights(model: M2AForSequenceClassification, backbone: str | os.PathLike) -> None:
    """Copy the pretrained encoder (and masked-LM head, or a decoder's causal-LM head) weights at `backbone` into
    `model`.

    Args:
        model: The M2A model to fill.
        backbone: Path or Hub id of the encoder checkpoint.

    Raises:
        ValueError: The encoder's weights do not fit the model's backbone.
    """
    causal = model.config.is_causal_lm
    with _without_loading_warnings():  # the pooler and head keys it lists are checked below
        try:
            head_class = AutoModelForCausalLM if causal else AutoModelForMaskedLM
            pretrained, info = head_class.from_pretrained(str(backbone), output_loading_info=True)
            encoder = pretrained.base_model
        except ValueError:  # architecture without a masked-LM class
            pretrained, info = AutoModel.from_pretrained(str(backbone), output_loading_info=True), None
            encoder = pretrained[0] if isinstance(pretrained, tuple) else pretrained
    state = {k: v for k, v in encoder.state_dict().items() if not k.startswith("pooler.")}
    result = model.m2a.backbone.load_state_dict(state, strict=False)
    unexpected = list(result.unexpected_keys)
    missing = [k for k in result.missing_keys if ".m2a_" not in k]
    if missing or unexpected:
        raise ValueError(
            f"backbone weights from {backbone!s} do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}."
        )
    if causal:
        _load_clm_head(model, pretrained, info, backbone)
    elif not (info is not None and _load_mlm_head(model, pretrained, encoder, info)):
        logger.warning(
            "The backbone checkpoint %s has no (complete) masked-LM head: the M2A MLM head starts from random "
            "initialisation and is trained (train_mlm_head=%s).",
            backbone,
            model.config.train_mlm_head,
        )


def _load_clm_head(
    model: M2AForSequenceClassification, pretrained: nn.Module, info: dict | None, backbone: Any
) -> None:
    """Copy a decoder's LM head into `model.clm_head` (nothing to copy when it is tied to the word embeddings)."""
    if model.clm_head.tied:
        return
    out_emb = pretrained.get_output_embeddings() if info is not None else None
    missing = info is None or any(k.endswith(".weight") and k.split(".")[0] == "lm_head" for k in info["missing_keys"])
    if out_emb is None or missing:
        logger.warning(
            "The backbone checkpoint %s has no causal-LM head: the M2A causal-LM head (frozen) keeps its random "
            "initialisation, so the auxiliary loss means little; set `mlm_weight=0` to drop it.",
            backbone,
        )
        return
    model.clm_head.weight.copy_(out_emb.weight)


def _load_mlm_head(model: M2AForSequenceClassification, pretrained: nn.Module, encoder: nn.Module, info: dict) -> bool:
    """Copy the masked-LM head's transform and bias into `model.mlm_head`; False if the checkpoint lacks them."""
    missing_head = [k for k in info["missing_keys"] if not k.endswith("decoder.weight")]
    head = [m for _, m in pretrained.named_children() if m is not encoder]
    linears = [m for h in head for m in h.modules() if isinstance(m, nn.Linear)]
    norms = [m for h in head for m in h.modules() if isinstance(m, nn.LayerNorm)]
    out_emb = pretrained.get_output_embeddings()
    if missing_head or not linears or not norms or getattr(out_emb, "bias", None) is None:
        return False
    for target, source in ((model.mlm_head.dense, linears[0]), (model.mlm_head.layer_norm, norms[0])):
        state = source.state_dict()
        state.setdefault("bias", torch.zeros_like(target.bias))  # a head without biases (ModernBERT's): zero
        target.load_state_dict(state)
    model.mlm_head.bias.copy_(out_emb.bias)
    return True


class _BelowError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


@contextlib.contextmanager
def _without_loading_warnings() -> Iterator[None]:
    """Drop the warnings (load report, missing tied weights) of transformers' model-loading logger inside the block.

    A filter on that one logger, removed on exit: the process-wide transformers verbosity is never changed.
    """
    target = logging.getLogger("transformers.modeling_utils")
    quiet = _BelowError()
    target.addFilter(quiet)
    try:
        yield
    finally:
        target.removeFilter(quiet)


def _mask_token_id(backbone: str) -> int | None:
    """The tokenizer's mask token id, read from the checkpoint's tokenizer files (None without a tokenizer)."""
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(backbone).mask_token_id
    except (OSError, ValueError) as err:  # no tokenizer next to the weights
        logger.warning(
            "Could not read a mask token from %s (%s); set `mask_token_id` to use the MLM term.", backbone, err
        )
        return None


# ----------------------------------------------------------------------------------------------------------------------
# Parameter counts and growing an attribute
# ----------------------------------------------------------------------------------------------------------------------
def num_parameters_by_group(model: M2AForSequenceClassification) -> dict[str, int]:
    """Parameter counts of `model`: total, trainable, and per adapter kind (for reports and closed-form checks).

    Args:
        model: An M2A model.

    Returns:
        A dict with the keys of `PARAMETER_GROUPS`: `coarse_lora` (`m2a_lora_*`), `unknown_lora`
        (`m2a_unknown_lora_*`), `fine` (`m2a_fine_*`) and `value_embeddings`.
    """
    groups = dict.fromkeys(PARAMETER_GROUPS, 0)
    for name, param in model.named_parameters():
        n = param.numel()
        groups["total"] += n
        groups["trainable"] += n if param.requires_grad else 0
        if ".m2a_lora_" in name:
            groups["coarse_lora"] += n
        elif ".m2a_unknown_lora_" in name:
            groups["unknown_lora"] += n
        elif ".m2a_fine_" in name:
            groups["fine"] += n
        elif name.startswith("m2a.value_embeddings."):
            groups["value_embeddings"] += n
    return groups


@torch.no_grad()
def resize_attribute_values(model: M2AForSequenceClassification, name: str, num_values: int) -> None:
    """Grow attribute `name` of `model` to `num_values` values (e.g. new users), in place.

    New rows of the value embedding are zero, so a new value has no fine-grained update until it is trained.

    Args:
        model: An M2A model.
        name: One of `model.config.attribute_names`.
        num_values: The new number of values, at least the current one.

    Raises:
        ValueError: Unknown attribute, or fewer values than now.
    """
    names = model.config.attribute_names
    if name not in names:
        raise ValueError(f"unknown attribute {name!r}; this model's attributes are {names}.")
    index = names.index(name)
    old = model.m2a.value_embeddings[index]
    if num_values < old.num_embeddings:
        raise ValueError(
            f"attribute {name!r} has {old.num_embeddings} values; it can grow but not shrink (got {num_values})."
        )
    new = M2AValueEmbedding(num_values, old.embedding_dim).to(old.weight.device, old.weight.dtype)
    new.weight.zero_()
    new.weight[: old.num_embeddings] = old.weight
    new.weight.requires_grad_(old.weight.requires_grad)
    model.m2a.value_embeddings[index] = new
    model.config.attributes[index]["num_values"] = num_values


# ----------------------------------------------------------------------------------------------------------------------
# Adapter-only checkpoints
# ----------------------------------------------------------------------------------------------------------------------
def adapter_state_dict(model: M2AForSequenceClassification) -> dict[str, torch.Tensor]:
    """Everything M2A trains (adapters, value embeddings, heads, trained LayerNorms), no frozen backbone weight.

    Raises:
        ValueError: The model was fully fine-tuned, so every weight is trained.
    """
    if model.config.full_finetune:
        raise ValueError(
            "this model was fully fine-tuned (`full_finetune=True`): every backbone weight changed, so there is no "
            "adapter-only checkpoint; use `save_pretrained` / `push_to_hub` for the full model."
        )
    params = dict(model.named_parameters())
    return {name: params[name].detach().contiguous() for name in model.adapter_parameter_names(1)}


def save_adapter(model: M2AForSequenceClassification, save_directory: str | os.PathLike) -> list[str]:
    """Write `m2a_adapter_config.json` (the M2A config naming its backbone) and `m2a_adapter_model.safetensors`.

    The names are M2A's own: `adapter_config.json` would make transformers' peft integration (and peft) take the
    folder for a peft adapter. The folder holds no backbone, so `from_pretrained` cannot load it: reload it with
    `from_adapter(save_directory)`. The config also records the backbone as given (`base_model_name_or_path`) and
    its `backbone_fingerprint`, which `from_adapter` compares with the backbone it loads.

    Args:
        model: An M2A model built with `from_backbone`.
        save_directory: Folder to write (created if needed).

    Returns:
        The paths written.
    """
    from safetensors.torch import save_file

    state = adapter_state_dict(model)  # refuses a fully fine-tuned model before anything is written
    os.makedirs(save_directory, exist_ok=True)
    config_path = os.path.join(save_directory, ADAPTER_CONFIG_NAME)
    weights_path = os.path.join(save_directory, ADAPTER_WEIGHTS_NAME)
    config = copy.deepcopy(model.config)
    config.backbone_fingerprint = backbone_fingerprint(model)
    save_file(state, weights_path, metadata={"format": "pt", "m2a_adapter": "1"})
    config.to_json_file(config_path)  # last: the config is what makes the folder an adapter
    return [config_path, weights_path]


@torch.no_grad()
def backbone_fingerprint(model: M2AForSequenceClassification) -> str:
    """A fingerprint of the frozen backbone weights under `model`'s adapters: `"m2a-backbone-v1:<sha256 hex>"`.

    It covers every backbone parameter that M2A does not train (the encoder `model.m2a.backbone`, neither the
    adapters, nor the LayerNorms when `train_layer_norms`, nor the heads): its name and shape, and the values of a
    deterministic sample of it: the first 16 rows of the word embeddings, the whole of every 1-D parameter (every
    bias; every LayerNorm weight and bias when they are frozen) and the first row of every other matrix. Trained
    LayerNorms are left out: the adapter replaces them. Values are hashed as bfloat16,
    so a backbone saved in float32 and one cast to bfloat16 for training give the same fingerprint; a backbone with
    other values in the sample (another fine-tune of the same architecture) gives another. Weights outside the sample
    are not compared. It takes a few milliseconds: about one row per matrix.

    Args:
        model: An M2A model (its backbone weights as loaded, whatever the adapters hold).

    Returns:
        The fingerprint, stored by `save_adapter` as `backbone_fingerprint` in the adapter config.
    """
    trained = set(model.adapter_parameter_names(1))
    word_embeddings = model.m2a.get_input_embeddings().weight
    digest = hashlib.sha256()
    for name, param in model.m2a.backbone.named_parameters():
        if f"m2a.backbone.{name}" in trained or ".m2a_" in name:
            continue
        if param is word_embeddings:
            sample = param[:_FINGERPRINT_EMBEDDING_ROWS]
        elif param.dim() <= 1:
            sample = param
        else:
            sample = param.reshape(param.shape[0], -1)[:1]
        values = sample.detach().to("cpu", torch.bfloat16).contiguous().view(torch.int16)
        digest.update(f"{name}|{tuple(param.shape)}|".encode())
        digest.update(values.numpy().tobytes())
    return f"{FINGERPRINT_SCHEME}:{digest.hexdigest()}"


def from_adapter(
    adapter: str | os.PathLike,
    backbone: str | os.PathLike | None = None,
    *,
    revision: str | None = None,
    model_class: type[M2AForSequenceClassification] | None = None,
    force: bool = False,
    **kwargs: Any,
) -> M2AForSequenceClassification:
    """Rebuild a model from an adapter-only checkpoint (local folder or Hub repo id) on its backbone.

    This is the loader of what `save_adapter` / `push_adapter_to_hub` write: the folder holds no backbone, so
    `from_pretrained` on it fails. Also available as `M2AForSequenceClassification.from_adapter(...)`.

    Args:
        adapter: Folder or Hub repo id holding `m2a_adapter_config.json` and `m2a_adapter_model.safetensors`
            (or `adapter_config.json` and `adapter_model.safetensors`, the names of adapters saved before).
        backbone: Path or Hub id of the encoder; defaults to the one recorded in the adapter's config.
        revision: Hub revision of the adapter.
        model_class: The class to build; defaults to `M2AForSequenceClassification`.
        force: Load even when the backbone's weights differ from those the adapter was trained on (its
            `backbone_fingerprint`, see `backbone_fingerprint`); a warning is logged. Shapes must still match.
        **kwargs: Passed to `transformers.utils.cached_file` (e.g. `token=`).

    Raises:
        OSError: `adapter` holds no M2A adapter.
        FileNotFoundError: No `backbone=` given and the recorded backbone path no longer exists.
        ValueError: No backbone named, not an M2A adapter, a backbone of other shapes or other weights (without
            `force`), or adapter weights that do not fit.
    """
    from safetensors.torch import load_file
    from transformers.utils import cached_file

    config_file, weights_name = _adapter_config_file(adapter, revision, kwargs)
    with open(config_file, encoding="utf-8") as f:
        model_type = json.load(f).get("model_type")
    if model_type != M2AConfig.model_type:
        raise ValueError(
            f"{config_file} is not an M2A adapter config (model_type {model_type!r}, expected "
            f"{M2AConfig.model_type!r}); a peft adapter loads with peft."
        )
    weights_file = cached_file(str(adapter), weights_name, revision=revision, **kwargs)
    config = M2AConfig.from_json_file(config_file)
    given = backbone is not None
    backbone = backbone or getattr(config, "base_model_name_or_path", None)
    if not backbone:
        raise ValueError(f"the adapter at {adapter!s} names no backbone: pass `backbone=` (a path or repo id).")
    backbone = str(backbone)
    if not given and not os.path.exists(backbone) and not _is_hub_id(backbone):
        raise FileNotFoundError(
            f"the adapter at {adapter!s} was saved on the backbone {backbone!r}, which does not exist here: pass "
            "`backbone=` (the path or Hub id of that encoder)."
        )
    actual = AutoConfig.from_pretrained(backbone)
    diffs = {
        k: (getattr(config.backbone_config, k, None), getattr(actual, k, None))
        for k in _BACKBONE_SHAPE_KEYS
        if getattr(config.backbone_config, k, None) != getattr(actual, k, None)
    }
    if diffs:
        detail = ", ".join(f"{k}: adapter {a!r} vs backbone {b!r}" for k, (a, b) in diffs.items())
        raise ValueError(f"the adapter at {adapter!s} was trained on a different backbone than {backbone} ({detail}).")
    model = (model_class or M2AForSequenceClassification)(config)
    load_backbone_weights(model, backbone)
    _check_fingerprint(model, getattr(config, "backbone_fingerprint", None), adapter, backbone, force)
    state = {_current_key(k): v for k, v in load_file(weights_file).items()}
    expected = set(model.adapter_parameter_names(1))
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise ValueError(f"adapter weights do not fit this model: missing {missing[:5]}, unexpected {extra[:5]}.")
    model.load_state_dict(state, strict=False)
    model.config.base_model_name_or_path = backbone
    model.config.backbone_fingerprint = backbone_fingerprint(model)
    return model


def _adapter_config_file(adapter: str | os.PathLike, revision: str | None, kwargs: dict[str, Any]) -> tuple[str, str]:
    """The adapter's config file and the name of its weights: M2A's names, else the (peft) names `save_adapter` used
    before."""
    from transformers.utils import cached_file

    for config_name, weights_name in ((ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME), LEGACY_ADAPTER_FILES):
        config_file = cached_file(
            str(adapter), config_name, revision=revision, _raise_exceptions_for_missing_entries=False, **kwargs
        )
        if config_file is not None:
            return config_file, weights_name
    raise OSError(
        f"{adapter!s} holds no M2A adapter: no {ADAPTER_CONFIG_NAME} (nor {LEGACY_ADAPTER_FILES[0]}, the name used "
        "before). A full M2A checkpoint (config.json) loads with `M2AForSequenceClassification.from_pretrained`."
    )


def _check_fingerprint(
    model: M2AForSequenceClassification, saved: str | None, adapter: Any, backbone: str, force: bool
) -> None:
    """Refuse (or, with `force`, warn about) a backbone whose weights differ from the adapter's backbone."""
    if not saved:
        logger.info(
            "The adapter at %s records no backbone fingerprint (saved before they were): the weights of %s are not "
            "checked against the backbone it was trained on.",
            adapter,
            backbone,
        )
        return
    if not saved.startswith(f"{FINGERPRINT_SCHEME}:"):
        logger.info("The adapter at %s has a fingerprint of another scheme (%s): not compared.", adapter, saved)
        return
    actual = backbone_fingerprint(model)
    if actual == saved:
        return
    message = (
        f"the backbone {backbone} has other weights than the one the adapter at {adapter!s} was trained on "
        f"(backbone fingerprint {actual}, adapter's {saved}); same shapes, so it would load and predict wrongly"
    )
    if not force:
        raise ValueError(f"{message}. Pass the backbone it was trained on, or `force=True` to load anyway.")
    logger.warning("%s; loading anyway (force=True).", message)


def _is_hub_id(name: str) -> bool:
    """Whether `name` reads as a Hub repo id (`org/name` or `name`) rather than a filesystem path."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if os.path.isabs(name) or name.startswith((".", "~")) or "\\" in name:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _current_key(key: str) -> str:
    """A parameter name with the renamings of `LEGACY_KEY_MAPPING` applied (old adapter files)."""
    for pattern, replacement in LEGACY_KEY_MAPPING.items():
        key = re.sub(pattern, replacement, key)
    return key


# ----------------------------------------------------------------------------------------------------------------------
# The constructors as classmethods
# ----------------------------------------------------------------------------------------------------------------------
def _as_classmethod(function: Callable[..., M2AForSequenceClassification]) -> classmethod:
    """`function` as a classmethod that builds the class it is called on (`model_class=cls`)."""

    @functools.wraps(function)
    def method(cls: type[M2AForSequenceClassification], *args: Any, **kwargs: Any) -> M2AForSequenceClassification:
        return function(*args, model_class=cls, **kwargs)

    return classmethod(method)


# `modeling/` must not import `m2a_hf`, so the library adds its training-side constructors to the class.
M2AForSequenceClassification.from_backbone = _as_classmethod(from_backbone)
M2AForSequenceClassification.from_adapter = _as_classmethod(from_adapter)


# The exports to plain checkpoints and peft adapters live in `m2a_hf.exports`; importable from here as before.
from m2a_hf.exports import (  # noqa: E402
    EXPORTABLE_FAMILIES,
    baseline_modules_to_save,
    export_coarse,
    export_peft_adapter,
)


__all__ = [
    "ADAPTER_CONFIG_NAME",
    "ADAPTER_WEIGHTS_NAME",
    "EXPORTABLE_FAMILIES",
    "FINGERPRINT_SCHEME",
    "LEGACY_ADAPTER_FILES",
    "PARAMETER_GROUPS",
    "adapter_state_dict",
    "backbone_fingerprint",
    "baseline_modules_to_save",
    "export_coarse",
    "export_peft_adapter",
    "from_adapter",
    "from_backbone",
    "load_backbone_weights",
    "num_parameters_by_group",
    "resize_attribute_values",
    "save_adapter",
]
