"""Model cards for M2A checkpoints: card metadata, the rendered card, and the `Trainer` callback that writes it.

Modelled on setfit's `model_card.py`:

- `build_card_data` / `render_model_card`: the card's metadata (`ModelCardData`, with one `EvalResult` per view and
  metric) and body, rendered from the Jinja template `hub_cards/model_card.md` with `ModelCard.from_template`.
- `M2AModelCardCallback`: a `TrainerCallback` that collects evaluation metrics and writes `README.md` into
  `args.output_dir`; `attach(trainer)` also makes `Trainer.push_to_hub()` upload this card instead of the generic one.
- `save_model_card`: writes a card to a file atomically (`m2a_hf.io_utils`).

Metric names understood by the card (`metrics=`): either nested, `{"fine": {"accuracy": 0.61}, "coarse": {...}}`
(optionally one level deeper for subsets, `{"fine": {"unseen": {"accuracy": 0.5}}}`), or flat `Trainer` keys,
`eval_accuracy` (fine view), `eval_coarse_accuracy`, `eval_fine_unseen_accuracy`, `test_iid_rmse`, ...
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from transformers import TrainerCallback

from m2a_hf.backbones import default_backbone
from m2a_hf.card_metrics import (
    SUBSET_LABELS,
    VIEW_LABELS,
    describe_row,
    is_number,
    metric_label,
    normalise_metrics,
)
from m2a_hf.io_utils import write_text_atomic


logger = logging.getLogger(__name__)

ARXIV_ID = "2503.06085"
CITATION_BIBTEX = """@inproceedings{zhang2025m2a,
  title     = {Multi-Attribute Multi-Grained Adaptation of Pre-Trained Language Models for Text Understanding from Bayesian Perspective},
  author    = {Zhang, You and Wang, Jin and Yu, Liang-Chih and Xu, Dan and Zhang, Xuejie},
  booktitle = {Proceedings of the AAAI Conference on Artificial Intelligence},
  volume    = {39},
  number    = {24},
  pages     = {25967--25975},
  year      = {2025},
  doi       = {10.1609/aaai.v39i24.34791},
  eprint    = {2503.06085},
  archivePrefix = {arXiv}
}"""
DEFAULT_TAGS = ("m2a", "attribute-aware", "trust-remote-code", "custom_code", "text-classification", "lora")
REMOTE_CODE_TAGS = ("trust-remote-code", "custom_code")
# Training arguments worth showing on a card, in this order (the rest are defaults or bookkeeping).
TRAINING_ARGUMENT_KEYS = (
    "learning_rate",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "lr_scheduler_type",
    "warmup_ratio",
    "warmup_steps",
    "weight_decay",
    "optim",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "max_grad_norm",
    "seed",
    "fp16",
    "bf16",
)
# M2A config fields shown on a card (those present on the config are shown).
MODEL_HYPERPARAMETER_KEYS = (
    "lora_rank",
    "lora_alpha",
    "lora_dropout",
    "attribute_lora_rank",
    "attribute_lora_alpha",
    "m2a_target_modules",
    "lora_target_modules",
    "value_embedding_dim",
    "kron_factors",
    "mlm_weight",
    "coarse_weight",
    "kl_weight",
    "kl_temperature",
    "training_policy",
    "stochastic_coarse_prob",
    "full_finetune",
)
_DATA_FILE_SUFFIXES = {".csv", ".tsv", ".txt", ".json", ".jsonl", ".parquet", ".arrow", ".xlsx", ".xls"}
CARD_NAME = "README.md"


# ------------------------------------------------------------------------------------------------ model card
def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def build_card_data(
    metrics: Mapping[str, Any] | None = None,
    *,
    model_name: str = "M2A model",
    base_model: str | None = None,
    datasets: str | Sequence[str] | None = None,
    dataset_name: str | None = None,
    dataset_split: str | None = None,
    license: str | None = None,
    language: str | Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    library_name: str | None = "transformers",
    default_view: str = "fine",
    remote_code: bool = True,
) -> ModelCardData:
    """Build the card metadata: library, base model, task, tags, datasets, license and one `EvalResult` per metric.

    `library_name` is `"transformers"`: the repository is a complete transformers checkpoint (config.json with
    `auto_map` + safetensors + modeling files) that `AutoModelForSequenceClassification.from_pretrained(...,
    trust_remote_code=True)` and `transformers.pipeline` load, which is what the Hub's "Use this model" snippet and
    library filter use this field for. It is *not* a peft adapter (`"peft"` would make the Hub and `Trainer` treat it
    as one). Pass `library_name=None` for adapter-only repositories, which need `m2a_hf` to load.

    Each (view, subset, metric) becomes one `EvalResult` with `task_type="text-classification"`; the view (and
    subset) is kept in `metric_args` and in the metric's display name, e.g. "Accuracy (coarse view)".

    Args:
        metrics: See `normalise_metrics`.
        model_name: Name in the model-index (required by the Hub when there are results).
        base_model: Hub id of the backbone; local paths are dropped (they mean nothing on the Hub).
        datasets: Hub dataset id(s) for the `datasets` field; the first one is the evaluation dataset's type.
        dataset_name: Human-readable dataset name for the results (defaults to the first dataset id).
        dataset_split: Evaluation split, e.g. `"test"`.
        license: License id, e.g. `"apache-2.0"`.
        language: Language code(s).
        tags: Extra tags (added to `DEFAULT_TAGS`).
        library_name: See above.
        default_view: View of flat metric keys that name none (`eval_accuracy`).
        remote_code: The repository loads with `trust_remote_code=True` (tags `trust-remote-code`, `custom_code`);
            False for adapter-only repositories.
    """
    dataset_ids = _as_list(datasets)
    if base_model is not None and not _looks_like_repo_id(base_model):
        logger.warning(
            "`base_model` %r is not a Hub repo id (`name` or `namespace/name`, not a local path); it is left out of "
            "the card metadata.",
            base_model,
        )
        base_model = None
    rows = normalise_metrics(metrics, default_view=default_view)
    dataset_name, dataset_type = _dataset_for_card(dataset_name)
    dataset_type = dataset_ids[0] if dataset_ids else dataset_type
    eval_results = [
        EvalResult(
            task_type="text-classification",
            task_name="Text Classification",
            dataset_type=dataset_type,
            dataset_name=dataset_name or dataset_type,
            dataset_split=dataset_split,
            metric_type=row.metric,
            metric_name=describe_row(row),
            metric_value=row.value,
            metric_args={"view": row.view, **({"subset": row.subset} if row.subset else {})},
        )
        for row in rows
    ]
    default_tags = [t for t in DEFAULT_TAGS if remote_code or t not in REMOTE_CODE_TAGS]
    all_tags = default_tags + [t for t in _as_list(tags) if t not in default_tags]
    if f"arxiv:{ARXIV_ID}" not in all_tags:
        all_tags.append(f"arxiv:{ARXIV_ID}")
    return ModelCardData(
        model_name=model_name,
        base_model=base_model,
        datasets=dataset_ids or None,
        license=license,
        language=_as_list(language) or None,
        library_name=library_name,
        pipeline_tag="text-classification",
        tags=all_tags,
        metrics=sorted({row.metric for row in rows}) or None,
        eval_results=eval_results or None,
    )


def _looks_like_repo_id(value: str) -> bool:
    """A Hub repo id as the Hub validates it, canonical (`bert-base-uncased`) or namespaced (`org/name`), that is not
    an existing local path."""
    if not isinstance(value, str) or os.path.exists(os.path.expanduser(value)):
        return False
    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return True


def _dataset_for_card(dataset_name: str | None) -> tuple[str | None, str]:
    """The card's dataset name and `dataset.type`: a named dataset (or Hub id) is both; a local file or folder is
    shown by its file name and typed `"custom"` (a path means nothing on the Hub and may reveal the author's
    machine)."""
    if not dataset_name:
        return None, "custom"
    name = str(dataset_name)
    if _looks_like_repo_id(name) and Path(name).suffix.lower() not in _DATA_FILE_SUFFIXES:
        return name, name
    return Path(name).name or name, "custom"


def _known_local_backbone(path: str) -> str | None:
    """Hub id of a backbone bundled in a local package (the project's embedded MiniLM), else None."""
    try:
        if Path(path).resolve() == Path(default_backbone()).resolve():
            return "sentence-transformers/all-MiniLM-L6-v2"
    except (ImportError, OSError, TypeError):  # ImportError: the demo weights are not installed
        return None
    return None


def _config_of(config_like: Any) -> Any:
    """A config object or dict from a model, a config, a dict, or a checkpoint folder / config.json path."""
    if hasattr(config_like, "config") and not isinstance(config_like, Mapping):
        return config_like.config
    if isinstance(config_like, (str, os.PathLike)):
        path = Path(config_like)
        path = path / "config.json" if path.is_dir() else path
        return json.loads(path.read_text(encoding="utf-8"))
    return config_like


def _get(config: Any, key: str, default: Any = None) -> Any:
    if isinstance(config, Mapping):
        return config.get(key, default)
    return getattr(config, key, default)


def _attributes_of(config: Any) -> list[dict[str, Any]]:
    names, sizes = _get(config, "attribute_names"), _get(config, "attribute_sizes")
    if names is not None and sizes is not None and not callable(names):
        return [{"name": str(n), "size": int(s)} for n, s in zip(names, sizes, strict=True)]
    attributes = _get(config, "attributes") or []
    if isinstance(attributes, Mapping):
        return [{"name": str(n), "size": int(s)} for n, s in attributes.items()]
    return [{"name": str(a["name"]), "size": int(a["num_values"])} for a in attributes]


def _labels_of(config: Any) -> list[str]:
    id2label = _get(config, "id2label") or {}
    return [str(id2label[k]) for k in sorted(id2label, key=int)]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, (list, tuple)):
        text = ", ".join(str(v) for v in value)
    elif isinstance(value, Mapping):
        text = json.dumps(value, sort_keys=True)
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _training_rows(training_args: Any) -> list[tuple[str, str]]:
    if training_args is None:
        return []
    if isinstance(training_args, Mapping):
        return [(str(k), _cell(v)) for k, v in training_args.items() if v is not None]
    values = training_args.to_dict() if hasattr(training_args, "to_dict") else vars(training_args)
    rows = []
    for key in TRAINING_ARGUMENT_KEYS:
        value = values.get(key)
        if key == "max_steps" and value is not None and value <= 0:
            continue
        if key in ("warmup_ratio", "warmup_steps") and not value:
            continue
        if key in ("fp16", "bf16") and not value:
            continue
        if value is not None:
            rows.append((key, _cell(getattr(value, "value", value))))
    effective = values.get("per_device_train_batch_size", 0) * values.get("gradient_accumulation_steps", 1)
    world = getattr(training_args, "world_size", 1) or 1
    if effective:
        rows.append(("total_train_batch_size", _cell(effective * world)))
    return rows


_POLICY_TEXT = {
    "joint": "every step trains both views on every sample: the fine view's loss plus {coarse_weight} × the coarse "
    "view's (λ, `coarse_weight`)",
    "stochastic": "every step routes each sample to one view, the coarse one with probability {coarse_prob}",
    "fine": "only the fine (attribute-aware) view is trained",
    "coarse": "only the coarse (attribute-free) view is trained",
}


def _number(value: Any) -> str:
    return f"{float(value):.4g}"


def _trains_kl(config: Any) -> bool:
    """Whether the distillation term KL(NN ‖ NN†) was part of the loss: `kl_weight` > 0 under the joint policy."""
    return float(_get(config, "kl_weight", 0.0) or 0.0) > 0 and _get(config, "training_policy") == "joint"


def _procedure_lines(config: Any, stage2: bool | Mapping[str, Any] | None) -> list[str]:
    """What training actually did, from the config (and stage 2's outcome): one Markdown sentence per item."""
    policy = _get(config, "training_policy")
    if policy is None:
        return []
    coarse_weight = float(_get(config, "coarse_weight", 0.5) or 0.0)
    coarse_prob = _get(config, "stochastic_coarse_prob")
    if coarse_prob is None:
        coarse_prob = coarse_weight / (1.0 + coarse_weight)
    text = _POLICY_TEXT.get(policy, "training policy `{policy}`")
    lines = [
        f"Training policy `{policy}`: "
        + text.format(coarse_weight=_number(coarse_weight), coarse_prob=_number(coarse_prob), policy=policy)
        + "."
    ]
    if _trains_kl(config):
        weight, temperature = _number(_get(config, "kl_weight")), _number(_get(config, "kl_temperature", 4.0))
        lines.append(f"Distillation: {weight} × KL(fine ‖ coarse) at temperature {temperature} (β, `kl_weight`).")
    mlm_weight = float(_get(config, "mlm_weight", 0.0) or 0.0)
    if mlm_weight > 0:
        lines.append(f"Masked-LM auxiliary loss with weight {_number(mlm_weight)} (α, `mlm_weight`).")
    else:
        lines.append("No masked-LM auxiliary loss (`mlm_weight` = 0).")
    if stage2 is False:
        lines.append("No second stage (the unknown LoRAs trained alone) was run.")
    elif stage2:
        line = "Second stage: the unknown LoRAs alone, on the coarse view"
        if isinstance(stage2, Mapping) and "kept" in stage2:
            before, after = stage2.get("before"), stage2.get("after")
            score = (
                f" (attribute-free dev accuracy {before:.4f} → {after:.4f})"
                if is_number(before) and is_number(after)
                else ""
            )
            outcome = "kept" if stage2["kept"] else "not kept: no gain, the first-stage values were restored"
            line += f"; {outcome}{score}"
        lines.append(line + ".")
    return lines


def _template_path() -> Path:
    """The card template: packaged (`m2a_hf/templates/model_card.md`) or, in a source checkout, `hub_cards/`."""
    candidates: list[Path] = []
    for package, name in (("m2a_hf.templates", "model_card.md"), ("m2a_hf", "templates/model_card.md")):
        try:
            resource = importlib.resources.files(package).joinpath(name)
        except (ModuleNotFoundError, TypeError):
            continue
        if resource.is_file():
            return Path(str(resource))
        candidates.append(Path(str(resource)))
    source = Path(__file__).resolve().parent.parent / "hub_cards" / "model_card.md"
    if source.is_file():
        return source
    candidates.append(source)
    raise FileNotFoundError(f"the M2A model card template was not found; looked at {[str(c) for c in candidates]}.")


def render_model_card(
    config_like: Any,
    metrics: Mapping[str, Any] | None = None,
    training_args: Any = None,
    dataset_name: str | None = None,
    base_model: str | None = None,
    *,
    model_name: str | None = None,
    repo_id: str | None = None,
    revision: str | None = None,
    datasets: str | Sequence[str] | None = None,
    dataset_split: str | None = None,
    license: str | None = None,
    language: str | Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    adapter_only: bool = False,
    stage2: bool | Mapping[str, Any] | None = None,
    template_path: str | os.PathLike | None = None,
) -> ModelCard:
    """Render the M2A model card (metadata + body) for a model, config, config dict or checkpoint folder.

    Args:
        config_like: An `M2AForSequenceClassification`, an `M2AConfig`, a config dict, or a path to a checkpoint
            folder / config.json.
        metrics: Evaluation results (see the module docstring); one table row and one `EvalResult` per entry.
        training_args: `TrainingArguments` (a curated subset is shown) or a dict of hyper-parameters (all shown).
        dataset_name: Human-readable dataset name.
        base_model: Hub id of the backbone. Defaults to `config.base_model_name_or_path` when that is a Hub id (or
            the project's bundled MiniLM folder); local paths are not published.
        model_name: Card title and model-index name (defaults to the repo name or "M2A model").
        repo_id: Used in the usage snippets (placeholder when unknown).
        revision: Commit sha for the snippets (placeholder `<commit sha>` when unknown: a card is written before
            the commit that contains it exists).
        datasets: Hub dataset id(s) for the metadata.
        dataset_split: Evaluation split shown with the results.
        license: License id.
        language: Language code(s).
        tags: Extra tags.
        adapter_only: The repository holds `m2a_adapter_config.json` + `m2a_adapter_model.safetensors` (from
            `save_adapter`) rather than a full checkpoint: the usage section shows `from_adapter`.
        stage2: Whether the second stage (the unknown LoRAs alone) ran: False, True, or its outcome
            (`train_stage2`'s `{"before", "after", "kept"}`); None leaves it unstated. The card's "How this
            checkpoint was trained" states it with the config's policy and loss weights (distillation only when it was
            part of the loss: `kl_weight` > 0 under the joint policy).
        template_path: Another Jinja template (defaults to the packaged `model_card.md`).
    """
    config = _config_of(config_like)
    dataset_name, _ = _dataset_for_card(dataset_name)  # a local path is shown by its file name only
    attributes = _attributes_of(config)
    labels = _labels_of(config)
    if base_model is None:
        candidate = _get(config, "base_model_name_or_path")
        if isinstance(candidate, str) and candidate:
            base_model = candidate if _looks_like_repo_id(candidate) else _known_local_backbone(candidate)
    elif not _looks_like_repo_id(base_model):
        base_model = _known_local_backbone(base_model) or base_model  # build_card_data drops non-ids, with a warning
    backbone = _get(config, "backbone_config")
    backbone_type = _get(backbone, "model_type") if backbone is not None else None
    summary_parts = []
    for key, label in (("num_hidden_layers", "layers"), ("hidden_size", "hidden size")):
        value = _get(backbone, key) if backbone is not None else None
        if value is not None:
            summary_parts.append(f"{value} {label}")
    if repo_id is None:
        repo_id_text = "<namespace>/<repo-name>"
    else:
        repo_id_text = repo_id
    model_name = model_name or (repo_id.split("/")[-1] if repo_id else "M2A model")
    card_data = build_card_data(
        metrics,
        model_name=model_name,
        base_model=base_model,
        datasets=datasets,
        dataset_name=dataset_name,
        dataset_split=dataset_split,
        license=license,
        language=language,
        tags=[*(tags or []), *([backbone_type] if backbone_type else [])],
        library_name=None if adapter_only else "transformers",
        remote_code=not adapter_only,
    )
    rows = normalise_metrics(metrics)
    results = [
        {
            "view_label": VIEW_LABELS.get(row.view, row.view),
            "subset_label": SUBSET_LABELS.get(row.subset, row.subset) if row.subset else "all",
            "metric_label": metric_label(row.metric),
            "value_text": f"{row.value:.4f}",
        }
        for row in rows
    ]
    model_rows = []
    trains_kl = _trains_kl(config)
    for key in MODEL_HYPERPARAMETER_KEYS:
        value = _get(config, key)
        if not trains_kl and key in ("kl_weight", "kl_temperature"):  # no distillation term was trained
            continue
        if key == "value_embedding_dim" and value is None:  # null: the hidden size (checkpoints before the default 64)
            hidden = _get(_get(config, "backbone_config") or {}, "hidden_size")
            value = f"{hidden} (the backbone's hidden size)" if hidden else None
        if value is not None and value != []:
            model_rows.append((key, _cell(value)))
    names = [a["name"] for a in attributes]
    example_ids = "[[" + ", ".join(["0"] + ["-1"] * (len(names) - 1)) + "]]" if names else "[[]]"
    example_attributes = "{" + ", ".join(f'"{n}": "<{n} value>"' for n in names) + "}"
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path or _template_path()),
        model_name=model_name,
        repo_id=repo_id_text,
        revision=revision or "<commit sha>",
        adapter_only=adapter_only,
        base_model=card_data.base_model,
        backbone_type=backbone_type,
        backbone_summary=", ".join(summary_parts),
        dataset_name=dataset_name,
        dataset_split=dataset_split,
        datasets=card_data.datasets or [],
        attributes=attributes,
        attribute_names=names,
        labels=labels,
        example_attribute_ids=example_ids,
        example_attributes=example_attributes,
        results=results,
        has_subsets=any(row.subset for row in rows),
        model_hyperparameters=model_rows,
        training_procedure=_procedure_lines(config, stage2),
        training_hyperparameters=_training_rows(training_args),
        citation_bibtex=CITATION_BIBTEX,
        arxiv_id=ARXIV_ID,
    )


def save_model_card(card: ModelCard, save_directory: str | os.PathLike) -> Path:
    """Write `card` to `save_directory/README.md` atomically (a killed write leaves the previous card) and return the
    path. Same bytes as `card.save(path)`."""
    return write_text_atomic(Path(save_directory) / CARD_NAME, str(card))


class M2AModelCardCallback(TrainerCallback):
    """Collects evaluation metrics and writes the M2A model card to `args.output_dir/README.md`.

    The card is (re)written after every evaluation and at the end of training. `Trainer.push_to_hub()` regenerates
    `README.md` with its own generic card just before uploading; use `attach(trainer)` so that it writes this card
    instead.

    Metrics of several views are told apart by their key, e.g. `trainer.evaluate(metric_key_prefix="eval_coarse")`
    gives `eval_coarse_accuracy` (see the module docstring).

    Args:
        card_kwargs: Passed to `render_model_card` (`dataset_name`, `datasets`, `base_model`, `license`, `language`,
            `tags`, `repo_id`, `model_name`, ...). `repo_id` defaults to `args.hub_model_id`.
        write_on_evaluate: Also write the card after each evaluation (not only at the end of training).

    Example:
        >>> card_callback = M2AModelCardCallback(dataset_name="Yelp-2013", license="apache-2.0")  # doctest: +SKIP
        >>> card_callback.attach(trainer)  # doctest: +SKIP
        >>> trainer.train(); trainer.evaluate(); trainer.push_to_hub()  # doctest: +SKIP
    """

    def __init__(self, write_on_evaluate: bool = True, **card_kwargs: Any):
        self.card_kwargs = card_kwargs
        self.write_on_evaluate = write_on_evaluate
        self.metrics: dict[str, float] = {}
        self.card: ModelCard | None = None

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        if metrics:
            self.metrics.update({k: v for k, v in metrics.items() if is_number(v)})
        if self.write_on_evaluate and state.is_world_process_zero and model is not None:
            self.write_card(args, model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero and model is not None:
            self.write_card(args, model)

    def write_card(self, args: Any, model: Any, **overrides: Any) -> ModelCard:
        """Render the card from the collected metrics and write it to `args.output_dir/README.md`."""
        card_kwargs = {**self.card_kwargs, **{k: v for k, v in overrides.items() if v is not None}}
        card_kwargs.setdefault("repo_id", getattr(args, "hub_model_id", None))
        card_kwargs.setdefault("training_args", args)
        self.card = render_model_card(model, self.metrics, **card_kwargs)
        path = save_model_card(self.card, args.output_dir)
        logger.info("M2A model card written to %s", path)
        return self.card

    def attach(self, trainer: Any) -> Any:
        """Add this callback to `trainer` and make `trainer.create_model_card` (called by `Trainer.push_to_hub`)
        write this card, so that the pushed `README.md` is the M2A card. Returns the trainer."""
        if self not in trainer.callback_handler.callbacks:
            trainer.add_callback(self)

        def create_model_card(
            language=None,
            license=None,
            tags=None,
            model_name=None,
            finetuned_from=None,
            tasks=None,
            dataset_tags=None,
            dataset=None,
            dataset_args=None,
            **_ignored: Any,
        ) -> None:
            if not trainer.is_world_process_zero():
                return
            overrides = {
                "language": language,
                "license": license,
                "model_name": model_name if "model_name" not in self.card_kwargs else None,
                "base_model": finetuned_from,
                "datasets": dataset_tags,
                "dataset_name": dataset if isinstance(dataset, str) else None,
            }
            if tags:
                overrides["tags"] = [*self.card_kwargs.get("tags", []), *_as_list(tags)]
            self.write_card(trainer.args, trainer.model, **overrides)

        trainer.create_model_card = create_model_card
        return trainer


__all__ = [
    "ARXIV_ID",
    "CARD_NAME",
    "CITATION_BIBTEX",
    "DEFAULT_TAGS",
    "MODEL_HYPERPARAMETER_KEYS",
    "REMOTE_CODE_TAGS",
    "TRAINING_ARGUMENT_KEYS",
    "M2AModelCardCallback",
    "build_card_data",
    "normalise_metrics",
    "render_model_card",
    "save_model_card",
]
