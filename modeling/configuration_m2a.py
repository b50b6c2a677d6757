"""M2A configuration.

Self-contained (torch + transformers only): this file is copied into every saved checkpoint and runs as remote code.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from transformers import AutoConfig, PretrainedConfig
from transformers.utils import logging


try:  # transformers >= 5: sub-configs are declared with a spec
    from transformers.configuration_utils import SubConfigSpec
except ImportError:  # transformers 4.x
    SubConfigSpec = None


logger = logging.get_logger(__name__)

TRAINING_POLICIES = ("joint", "stochastic", "fine", "coarse")

_BERT_PLACEMENT = (["query", "value"], ["attention.output.dense", "intermediate.dense"])
TRANSFORMERS_MODELS_TO_M2A_TARGET_MODULES_MAPPING: dict[str, tuple[list[str], list[str]]] = {
    "bert": _BERT_PLACEMENT,
    "roberta": _BERT_PLACEMENT,
    "xlm-roberta": _BERT_PLACEMENT,
    "electra": _BERT_PLACEMENT,
    "camembert": _BERT_PLACEMENT,
    "distilbert": (["q_lin", "v_lin"], ["out_lin", "lin1"]),
    "deberta-v2": (["query_proj", "value_proj"], ["attention.output.dense", "intermediate.dense"]),
    "modernbert": (["Wqkv"], ["attn.Wo", "mlp.Wi"]),
    "gpt2": (["c_attn"], ["attn.c_proj", "mlp.c_fc"]),
    "llama": (["q_proj", "v_proj"], ["o_proj", "up_proj"]),
    "mistral": (["q_proj", "v_proj"], ["o_proj", "up_proj"]),
    "qwen2": (["q_proj", "v_proj"], ["o_proj", "up_proj"]),
}
"""Default placement per backbone `model_type`: (`m2a_target_modules`, `lora_target_modules`), module-name suffixes
of the layers that get the multi-grained adapter and a plain LoRA (as peft's
`TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING`). Used when the config leaves a list at `None`."""

FUSED_QKV_MODULES: dict[str, list[str]] = {"gpt2": ["c_attn"], "modernbert": ["Wqkv"]}
"""Fused query/key/value projections per `model_type` (output `[Q; K; V]`, three equal blocks). On such a layer the
coarse LoRA adapts the whole output; the fine adapters and unknown LoRAs adapt only the Q and V blocks."""

CAUSAL_LM_MODEL_TYPES = frozenset({"gpt2", "llama", "mistral", "qwen2"})
"""Decoder (causal-LM) backbones: the classifier reads the last non-pad token and the auxiliary loss is the causal-LM
loss on the text instead of the masked-LM loss."""


def _normalise_attributes(attributes: Any) -> list[dict[str, Any]]:
    """Turn `{"user": 10}`, `[("user", 10)]` or `[{"name": "user", "num_values": 10}]` into the stored list form."""
    if attributes is None:
        return []
    if isinstance(attributes, Mapping):
        items = list(attributes.items())
    elif isinstance(attributes, Sequence) and not isinstance(attributes, str):
        items = []
        for entry in attributes:
            if isinstance(entry, Mapping):
                if "name" not in entry or "num_values" not in entry:
                    raise ValueError(f"`attributes` entries must have `name` and `num_values`, got {dict(entry)!r}.")
                items.append((entry["name"], entry["num_values"]))
            elif isinstance(entry, Sequence) and not isinstance(entry, str) and len(entry) == 2:
                items.append((entry[0], entry[1]))
            else:
                raise ValueError(
                    f"`attributes` entries must be (name, num_values) pairs or dicts, got {entry!r}; "
                    'e.g. attributes={"user": 1631, "item": 1633}.'
                )
    else:
        raise ValueError(
            f'`attributes` must be a mapping such as {{"user": 1631, "item": 1633}} or a list of (name, num_values) '
            f"pairs, got {type(attributes).__name__}."
        )
    out, seen = [], set()
    for name, size in items:
        if not isinstance(name, str) or not name:
            raise ValueError(f"attribute names must be non-empty strings, got {name!r}.")
        if name in seen:
            raise ValueError(f"attribute {name!r} is listed twice in `attributes`.")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"attribute {name!r}: `num_values` must be an integer >= 0, got {size!r}.")
        seen.add(name)
        out.append({"name": name, "num_values": int(size)})
    return out


def _training_policy(training_policy: str, training_view: str | None) -> str:
    """`training_policy`, or the value of its former name `training_view` (a config.json written before the rename),
    with a deprecation warning."""
    if training_view is None:
        return training_policy
    warnings.warn(
        "`training_view` is deprecated and was renamed `training_policy` (it chooses which views a training forward "
        "trains); reading it as `training_policy`. Save the config again to write the new name.",
        FutureWarning,
        stacklevel=3,
    )
    if training_policy != "joint" and training_policy != training_view:
        raise ValueError(
            f"`training_policy` ({training_policy!r}) and its deprecated name `training_view` ({training_view!r}) "
            "disagree; pass only `training_policy`."
        )
    return training_view


def _check_no_overlap(m2a_target_modules: list[str] | None, lora_target_modules: list[str] | None) -> None:
    overlap = set(m2a_target_modules or ()) & set(lora_target_modules or ())
    if overlap:
        raise ValueError(
            f"modules {sorted(overlap)} are in both `m2a_target_modules` and `lora_target_modules`; "
            "a layer gets either the multi-grained adapter or a plain LoRA."
        )


def _as_name_list(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    values = list(value)
    if not all(isinstance(v, str) and v for v in values):
        raise ValueError(f"`{field}` must be a list of module-name suffixes (strings), got {value!r}.")
    return values


class M2AConfig(PretrainedConfig):
    r"""Configuration of an M2A model: a frozen backbone plus multi-attribute, multi-grained adapters.

    Every adapted linear layer `W` computes, per sample `b` and attribute `a`:

        y = W x + s·B A x                                  (coarse view: shared LoRA, always on)
              + Σ_a [ x·(C_{a,v_b} ⊗ D_a)   if the value v_b of attribute a is known   (fine view, Kronecker)
                      s_a·B_a A_a x         if it is unknown (-1) ]                     (unknown LoRA)

    Args:
        backbone_config (`PretrainedConfig` or `dict`):
            Configuration of the pre-trained encoder (BERT, RoBERTa, MiniLM, ...), nested so that one `config.json`
            rebuilds the whole model offline.
        attributes (`dict[str, int]` or `list`, *optional*):
            Ordered attribute names with their number of values, e.g. `{"user": 1631, "item": 1633}`. Stored as a list
            (`[{"name": "user", "num_values": 1631}, ...]`) because `config.json` sorts dict keys.
        num_labels (`int`, *optional*, defaults to 2):
            Number of classes.
        lora_rank (`int`, *optional*, defaults to 128):
            Rank of the coarse LoRA (shared by all samples) and of the plain LoRAs.
        lora_alpha (`float`, *optional*, defaults to 256):
            LoRA scaling numerator: the update is scaled by `lora_alpha / lora_rank`.
        lora_dropout (`float`, *optional*, defaults to 0.1):
            Dropout on the input of the LoRA branches.
        attribute_lora_rank (`int`, *optional*):
            Rank of each attribute's unknown LoRA (the coarse module used when its value is unknown; the paper's
            w^(a,c′)). Defaults to `lora_rank`.
        attribute_lora_alpha (`float`, *optional*):
            Scaling numerator of the unknown LoRAs. Defaults to `lora_alpha`.
        m2a_target_modules (`list[str]`, *optional*):
            Module-name suffixes of the linear layers that get the multi-grained adapter. `None`: the backbone
            family's default (`TRANSFORMERS_MODELS_TO_M2A_TARGET_MODULES_MAPPING`, e.g. `["query", "value"]` for
            BERT), resolved and written back into the config when the model is built.
        lora_target_modules (`list[str]`, *optional*):
            Module-name suffixes of the linear layers that get a plain LoRA (shared by both views). `None`: the
            family's default (e.g. `["attention.output.dense", "intermediate.dense"]` for BERT); `[]`: none.
        value_embedding_dim (`int`, *optional*, defaults to 64):
            Size of the learned per-value embedding. `None`: the backbone's hidden size, the reference's choice
            (checkpoints saved before 64 became the default record `null` and keep it). The value table and its
            optimizer state grow with E × values: the README's Performance and Accuracy sections give the choice.
        kron_factors (`list[int]`, *optional*):
            `[p, s]`: shape of the per-value Kronecker factor `C_v` (p×s); the shared factor `D` is then
            `(in/p)×(out/s)`. `p` must divide every target's input size and `s` its output size. When not given,
            each layer derives them from its own sizes (p = smallest divisor of `in` ≥ √in, s = largest divisor of
            `out` ≤ √out; 768→768 gives the reference's 32×24 and 24×32).
        mlm_weight (`float`, *optional*, defaults to 0.5):
            α, weight of the auxiliary language-model loss: masked-LM for encoders, causal-LM on the text (next
            token, padding ignored) for decoder backbones (`CAUSAL_LM_MODEL_TYPES`).
        coarse_weight (`float`, *optional*, defaults to 0.5):
            λ, weight of the coarse view (NN†) loss in `joint` training.
        kl_weight (`float`, *optional*, defaults to 0.0):
            β, weight of the distillation term KL(NN ‖ NN†) in `joint` training (the paper has it; the reference
            code does not use it).
        kl_temperature (`float`, *optional*, defaults to 4.0):
            Softmax temperature of the distillation term.
        training_policy (`str`, *optional*, defaults to `"joint"`):
            Which views a training forward trains: `"joint"` (the reference: NN and NN† on every sample, in one batched
            pass), `"stochastic"` (one pass; each sample is routed to NN† with probability `stochastic_coarse_prob`),
            `"fine"` (NN only) or `"coarse"` (NN† only). Formerly `training_view`: a config.json with that key is read
            as `training_policy`, with a `FutureWarning`.
        stochastic_coarse_prob (`float`, *optional*):
            Probability that a sample takes the coarse view under `"stochastic"`. Defaults to λ/(1+λ), so that the
            expected loss is proportional to the joint loss `L_NN + λ·L_NN†`.
        full_finetune (`bool`, *optional*, defaults to `False`):
            Train the whole backbone too (the paper's ‡ variant).
        train_layer_norms (`bool`, *optional*, defaults to `True`):
            Train the backbone's LayerNorms (as the reference does).
        train_mlm_head (`bool`, *optional*, defaults to `True`):
            Train the MLM head's transform and bias (the reference trains BERT's `cls`; the decoder matrix is the
            frozen word-embedding matrix and is never trained). A decoder backbone's LM head is never trained.
        classifier_dropout (`float`, *optional*):
            Dropout in the classification head. Defaults to the backbone's `hidden_dropout_prob` (or 0.1).
        mask_token_id (`int`, *optional*):
            Token used to mask inputs for the MLM term (set by `from_backbone` from the tokenizer; unused by
            decoders). A decoder backbone without a pad token gets its eos token as `pad_token_id` (logged).
        attribute_vocab (`dict`, *optional*):
            The value strings of each attribute (`{"attributes": [{"name": "user", "values": [...]}, ...]}`; value `i`
            has id `i`), so that the pipeline maps strings to ids from the same revision as the weights.

    Example:

    ```python
    >>> from transformers import BertConfig
    >>> config = M2AConfig(
    ...     backbone_config=BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128),
    ...     attributes={"user": 10, "item": 5},
    ...     num_labels=3,
    ...     lora_rank=8,
    ...     lora_alpha=16,
    ... )
    >>> config.attribute_names
    ['user', 'item']
    ```
    """

    model_type = "m2a"
    attribute_map = {"training_view": "training_policy"}  # the former name still reads and writes the field
    if SubConfigSpec is not None:
        sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="bert")}
    else:  # pragma: no cover - transformers 4.x
        sub_configs = {"backbone_config": AutoConfig}

    def __init__(
        self,
        backbone_config: PretrainedConfig | dict | None = None,
        attributes: Any = None,
        lora_rank: int = 128,
        lora_alpha: float = 256.0,
        lora_dropout: float = 0.1,
        attribute_lora_rank: int | None = None,
        attribute_lora_alpha: float | None = None,
        m2a_target_modules: list[str] | None = None,
        lora_target_modules: list[str] | None = None,
        value_embedding_dim: int | None = 64,
        kron_factors: list[int] | None = None,
        mlm_weight: float = 0.5,
        coarse_weight: float = 0.5,
        kl_weight: float = 0.0,
        kl_temperature: float = 4.0,
        training_policy: str = "joint",
        stochastic_coarse_prob: float | None = None,
        full_finetune: bool = False,
        train_layer_norms: bool = True,
        train_mlm_head: bool = True,
        classifier_dropout: float | None = None,
        mask_token_id: int | None = None,
        attribute_vocab: dict | None = None,
        **kwargs,
    ):
        if backbone_config is None:
            backbone_config = AutoConfig.for_model("bert")
        elif isinstance(backbone_config, Mapping):
            backbone_config = dict(backbone_config)
            model_type = backbone_config.pop("model_type", None)
            if model_type is None:
                raise ValueError("`backbone_config` given as a dict must contain its `model_type` (e.g. 'bert').")
            backbone_config = AutoConfig.for_model(model_type, **backbone_config)
        elif not isinstance(backbone_config, PretrainedConfig):
            raise ValueError(
                f"`backbone_config` must be a PretrainedConfig or a dict, got {type(backbone_config).__name__}."
            )
        # A local path in the nested config would leak into config.json and mean nothing elsewhere.
        backbone_config._name_or_path = ""
        self.backbone_config = backbone_config
        self.attributes = _normalise_attributes(attributes)

        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.attribute_lora_rank = attribute_lora_rank
        self.attribute_lora_alpha = attribute_lora_alpha
        self.m2a_target_modules = (
            None if m2a_target_modules is None else _as_name_list(m2a_target_modules, "m2a_target_modules")
        )
        self.lora_target_modules = (
            None if lora_target_modules is None else _as_name_list(lora_target_modules, "lora_target_modules")
        )
        self.value_embedding_dim = value_embedding_dim
        self.kron_factors = list(kron_factors) if kron_factors is not None else None
        self.mlm_weight = mlm_weight
        self.coarse_weight = coarse_weight
        self.kl_weight = kl_weight
        self.kl_temperature = kl_temperature
        self.training_policy = _training_policy(training_policy, kwargs.pop("training_view", None))
        self.stochastic_coarse_prob = stochastic_coarse_prob
        self.full_finetune = full_finetune
        self.train_layer_norms = train_layer_norms
        self.train_mlm_head = train_mlm_head
        self.classifier_dropout = classifier_dropout
        self.mask_token_id = mask_token_id
        self.attribute_vocab = attribute_vocab
        kwargs.setdefault("pad_token_id", getattr(backbone_config, "pad_token_id", None))
        if kwargs["pad_token_id"] is None and backbone_config.model_type in CAUSAL_LM_MODEL_TYPES:
            eos = getattr(backbone_config, "eos_token_id", None)
            eos = eos[0] if isinstance(eos, (list, tuple)) and eos else eos
            if eos is not None:
                logger.warning(
                    "The %s backbone has no pad token: using its eos token (%d) as `pad_token_id`.",
                    backbone_config.model_type,
                    eos,
                )
                kwargs["pad_token_id"] = eos
        super().__init__(**kwargs)
        self._validate()

    def _validate(self) -> None:
        def positive_int(name: str, value: Any, allow_none: bool = False) -> None:
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")

        def non_negative(name: str, value: Any, allow_none: bool = False) -> None:
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"`{name}` must be a number >= 0, got {value!r}.")

        positive_int("lora_rank", self.lora_rank)
        positive_int("attribute_lora_rank", self.attribute_lora_rank, allow_none=True)
        positive_int("value_embedding_dim", self.value_embedding_dim, allow_none=True)
        non_negative("lora_alpha", self.lora_alpha)
        non_negative("attribute_lora_alpha", self.attribute_lora_alpha, allow_none=True)
        for name in ("mlm_weight", "coarse_weight", "kl_weight"):
            non_negative(name, getattr(self, name))
        if not isinstance(self.kl_temperature, (int, float)) or self.kl_temperature <= 0:
            raise ValueError(f"`kl_temperature` must be > 0, got {self.kl_temperature!r}.")
        if not (isinstance(self.lora_dropout, (int, float)) and 0 <= self.lora_dropout < 1):
            raise ValueError(f"`lora_dropout` must be in [0, 1), got {self.lora_dropout!r}.")
        if self.training_policy not in TRAINING_POLICIES:
            raise ValueError(
                f"`training_policy` must be one of {list(TRAINING_POLICIES)}, got {self.training_policy!r}."
            )
        if self.stochastic_coarse_prob is not None and not (0 <= self.stochastic_coarse_prob <= 1):
            raise ValueError(f"`stochastic_coarse_prob` must be in [0, 1], got {self.stochastic_coarse_prob!r}.")
        if self.kron_factors is not None:
            if len(self.kron_factors) != 2:
                raise ValueError(f"`kron_factors` must be [p, s] (two positive integers), got {self.kron_factors!r}.")
            for value in self.kron_factors:
                positive_int("kron_factors", value)
        _check_no_overlap(self.m2a_target_modules, self.lora_target_modules)

    @property
    def backbone_model_type(self) -> str:
        """The backbone's `model_type` (its family: `"bert"`, `"gpt2"`, `"llama"`, ...)."""
        return self.backbone_config.model_type

    @property
    def is_causal_lm(self) -> bool:
        """Whether the backbone is a decoder (`CAUSAL_LM_MODEL_TYPES`): last-token pooling, causal-LM auxiliary loss."""
        return self.backbone_model_type in CAUSAL_LM_MODEL_TYPES

    @property
    def fused_qkv_modules(self) -> list[str]:
        """Suffixes of the backbone family's fused query/key/value projections (`FUSED_QKV_MODULES`)."""
        return list(FUSED_QKV_MODULES.get(self.backbone_model_type, []))

    @property
    def value_embedding_size(self) -> int:
        """The per-value embedding size in use: `value_embedding_dim`, or the backbone's hidden size when it is None."""
        return self.value_embedding_dim or self.backbone_config.hidden_size

    def resolved_target_modules(self, model_type: str | None = None) -> tuple[list[str] | None, list[str] | None]:
        """`(m2a_target_modules, lora_target_modules)`: each list as set, else the default of the family `model_type`
        (default: the backbone's) from `TRANSFORMERS_MODELS_TO_M2A_TARGET_MODULES_MAPPING`; `None` where the config
        leaves it unset and the family has no default."""
        default = TRANSFORMERS_MODELS_TO_M2A_TARGET_MODULES_MAPPING.get(model_type or self.backbone_model_type)
        m2a, lora = self.m2a_target_modules, self.lora_target_modules
        if m2a is None and default is not None:
            m2a = list(default[0])
        if lora is None and default is not None:
            lora = list(default[1])
        _check_no_overlap(m2a, lora)
        return m2a, lora

    @property
    def attribute_names(self) -> list[str]:
        """Attribute names, in the column order of `attribute_ids`."""
        return [a["name"] for a in self.attributes]

    @property
    def attribute_sizes(self) -> list[int]:
        """Number of values of each attribute, in `attribute_names` order."""
        return [a["num_values"] for a in self.attributes]

    def to_json_file(self, json_file_path: str | os.PathLike, use_diff: bool = True) -> None:
        """Write the config as JSON atomically: serialised first, written to a temporary file beside the target, then
        renamed over it, so that a save killed half-way leaves the previous file (or none), never a truncated one."""
        data = self.to_json_string(use_diff=use_diff).encode("utf-8")
        directory, name = os.path.split(os.fspath(json_file_path))
        tmp = os.path.join(directory, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask sets the mode, as with open()
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, json_file_path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise

    @property
    def num_attributes(self) -> int:
        return len(self.attributes)

    @property
    def effective_stochastic_coarse_prob(self) -> float:
        if self.stochastic_coarse_prob is not None:
            return float(self.stochastic_coarse_prob)
        return float(self.coarse_weight) / (1.0 + float(self.coarse_weight))


__all__ = [
    "CAUSAL_LM_MODEL_TYPES",
    "FUSED_QKV_MODULES",
    "M2AConfig",
    "TRAINING_POLICIES",
    "TRANSFORMERS_MODELS_TO_M2A_TARGET_MODULES_MAPPING",
]
