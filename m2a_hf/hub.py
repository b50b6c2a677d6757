"""Hub integration: the attribute-aware pipeline and pushing M2A checkpoints (the model card is `m2a_hf.model_card`).

- `register_m2a_pipeline` / `make_pipeline_ready`: `transformers.pipeline` support for `M2ATextClassificationPipeline`
  (in this process, and from a saved checkpoint without `m2a_hf` installed).
- `save_for_hub` / `push_m2a_to_hub` / `push_adapter_to_hub`: a complete repository in one commit.

The model card's public names are re-exported here.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard

from m2a_hf.model_card import (
    ARXIV_ID,
    CITATION_BIBTEX,
    DEFAULT_TAGS,
    METRIC_LABELS,
    MODEL_HYPERPARAMETER_KEYS,
    REMOTE_CODE_TAGS,
    SUBSET_LABELS,
    TRAINING_ARGUMENT_KEYS,
    VIEW_LABELS,
    M2AModelCardCallback,
    build_card_data,
    normalise_metrics,
    render_model_card,
)


logger = logging.getLogger(__name__)

PIPELINE_TASK_IN_PROCESS = "m2a-text-classification"


# ---------------------------------------------------------------------------------------------------- pipeline
def _pipeline_module():
    return importlib.import_module("m2a_hf.modeling.pipeline_m2a")


def register_m2a_pipeline(task: str = PIPELINE_TASK_IN_PROCESS) -> type:
    """Register `M2ATextClassificationPipeline` with `transformers.pipeline` in this process and return the class.

    After this, `pipeline("m2a-text-classification", model=model, tokenizer=tokenizer)` works on an in-memory
    model. The task name differs from "text-classification" so that the stock pipeline of that task is not replaced
    for other models in the process. Saved checkpoints do not need this: see `make_pipeline_ready`.
    """
    from transformers import AutoModelForSequenceClassification
    from transformers.pipelines import PIPELINE_REGISTRY

    cls = _pipeline_module().M2ATextClassificationPipeline
    current = PIPELINE_REGISTRY.supported_tasks.get(task)
    if current is None or current.get("impl") is not cls:
        PIPELINE_REGISTRY.register_pipeline(
            task, pipeline_class=cls, pt_model=AutoModelForSequenceClassification, type="text"
        )
    return cls


def _update_config_json(save_directory: Path, updates: Mapping[str, Any]) -> None:
    path = save_directory / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.update(updates)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_attribute_vocab(save_directory: str | os.PathLike, attribute_vocab: Any) -> Path:
    """Write `attribute_vocab.json` into `save_directory` and return its path.

    Accepts an `m2a_hf.data.AttributeVocab` (or anything with `to_dict()`), a dict already in the file's format, or
    a plain `{name: [value_0, value_1, ...]}` mapping (built into an `AttributeVocab`, whose file format is used).
    """
    module = _pipeline_module()
    if isinstance(attribute_vocab, Mapping) and "attributes" not in attribute_vocab:
        from m2a_hf.data import AttributeVocab

        attribute_vocab = AttributeVocab(attribute_vocab)
    if hasattr(attribute_vocab, "to_dict") and not isinstance(attribute_vocab, Mapping):
        attribute_vocab = attribute_vocab.to_dict()
    module.parse_attribute_vocab(attribute_vocab)  # validate before writing
    path = Path(save_directory) / module.ATTRIBUTE_VOCAB_NAME
    path.write_text(json.dumps(attribute_vocab, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def make_pipeline_ready(save_directory: str | os.PathLike, embed_vocab: bool = True) -> Path:
    """Make a saved checkpoint folder loadable with `transformers.pipeline(model=folder, trust_remote_code=True)`.

    Copies `pipeline_m2a.py` next to the weights and adds `custom_pipelines` to `config.json`; when
    `attribute_vocab.json` is present and `embed_vocab`, also stores it in `config.json` as `attribute_vocab`, so
    that the vocabulary always comes from the same revision as the weights. Works without `m2a_hf` at load time.
    """
    save_directory = Path(save_directory)
    if not (save_directory / "config.json").is_file():
        raise FileNotFoundError(f"{save_directory} has no config.json; save the model there first.")
    module = _pipeline_module()
    shutil.copyfile(module.__file__, save_directory / "pipeline_m2a.py")
    updates: dict[str, Any] = {"custom_pipelines": json.loads(json.dumps(module.CUSTOM_PIPELINES))}
    vocab_path = save_directory / module.ATTRIBUTE_VOCAB_NAME
    if embed_vocab and vocab_path.is_file():
        vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
        module.parse_attribute_vocab(vocab)
        updates["attribute_vocab"] = vocab
    _update_config_json(save_directory, updates)
    return save_directory


# ------------------------------------------------------------------------------------------------------- push
def save_for_hub(
    model: Any,
    save_directory: str | os.PathLike,
    *,
    tokenizer: Any = None,
    attribute_vocab: Any = None,
    card: ModelCard | None = None,
    **card_kwargs: Any,
) -> Path:
    """Write a complete, pipeline-ready repository folder: weights + config + remote code (`save_pretrained`),
    tokenizer, `attribute_vocab.json`, `pipeline_m2a.py` and `README.md` (`card`, or `render_model_card(model,
    **card_kwargs)`)."""
    save_directory = Path(save_directory)
    model.save_pretrained(save_directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(save_directory)
    if attribute_vocab is not None:
        write_attribute_vocab(save_directory, attribute_vocab)
    make_pipeline_ready(save_directory)
    if card is None:
        card = render_model_card(save_directory, **card_kwargs)
    card.save(str(save_directory / "README.md"))
    return save_directory


def push_m2a_to_hub(
    model: Any,
    repo_id: str,
    *,
    tokenizer: Any = None,
    attribute_vocab: Any = None,
    card: ModelCard | None = None,
    commit_message: str = "Upload M2A model",
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    **card_kwargs: Any,
):
    """`save_for_hub` into a temporary folder, then create the repo (if needed) and upload it as one commit.

    Returns the `CommitInfo`; its `oid` is the commit sha to pin with `revision=`.
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
    card_kwargs.setdefault("repo_id", repo_url.repo_id)
    with tempfile.TemporaryDirectory(prefix="m2a-push-") as tmp:
        save_for_hub(model, tmp, tokenizer=tokenizer, attribute_vocab=attribute_vocab, card=card, **card_kwargs)
        return api.upload_folder(
            repo_id=repo_url.repo_id, folder_path=tmp, commit_message=commit_message, revision=revision
        )


def push_adapter_to_hub(
    model: Any,
    repo_id: str,
    *,
    attribute_vocab: Any = None,
    card: ModelCard | None = None,
    commit_message: str = "Upload M2A adapter",
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    **card_kwargs: Any,
):
    """Upload an adapter-only checkpoint (`model.save_adapter`: adapter config + weights, no backbone) with its card
    and `attribute_vocab.json`, as one commit. Loading it needs `m2a_hf` (`M2AForSequenceClassification.from_adapter`)."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
    card_kwargs.setdefault("repo_id", repo_url.repo_id)
    with tempfile.TemporaryDirectory(prefix="m2a-adapter-push-") as tmp:
        model.save_adapter(tmp)
        if attribute_vocab is not None:
            write_attribute_vocab(tmp, attribute_vocab)
        card = card or render_model_card(model, adapter_only=True, **card_kwargs)
        card.save(os.path.join(tmp, "README.md"))
        return api.upload_folder(
            repo_id=repo_url.repo_id, folder_path=tmp, commit_message=commit_message, revision=revision
        )


def load_pipeline(model_path: str | os.PathLike, **kwargs: Any):
    """An `M2ATextClassificationPipeline` for a saved checkpoint (folder or Hub repo id), in this process.

    Equivalent to `transformers.pipeline(model=model_path, trust_remote_code=True)` but with the installed classes
    (no remote code is imported). `kwargs` go to `from_pretrained` (e.g. `revision=`).
    """
    from transformers import AutoTokenizer

    from m2a_hf.modeling import M2AForSequenceClassification

    pipeline_class = _pipeline_module().M2ATextClassificationPipeline
    model = M2AForSequenceClassification.from_pretrained(str(model_path), **kwargs).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_path), **kwargs)
    return pipeline_class(model=model, tokenizer=tokenizer)


def push_checkpoint(
    model_path: str | os.PathLike, repo_id: str, *, adapter_only: bool = False, private: bool = False
) -> str:
    """Upload a checkpoint folder written by training (already Hub-ready: weights, remote code, tokenizer, vocabulary,
    card) as one commit, or only its adapter (`adapter_only`). Returns the repository URL."""
    from huggingface_hub import HfApi

    from m2a_hf.modeling import M2AForSequenceClassification

    model_path = Path(model_path)
    if not (model_path / "config.json").is_file():
        raise FileNotFoundError(f"{model_path} is not a saved M2A checkpoint (no config.json).")
    if adapter_only:
        model = M2AForSequenceClassification.from_pretrained(str(model_path))
        vocab = model_path / _pipeline_module().ATTRIBUTE_VOCAB_NAME
        push_adapter_to_hub(model, repo_id, attribute_vocab=json.loads(vocab.read_text()) if vocab.is_file() else None,
                            private=private)  # fmt: skip
    else:
        api = HfApi()
        api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(
            folder_path=str(model_path), repo_id=repo_id, commit_message="Upload M2A model",
            ignore_patterns=["checkpoint-*", "stage2/**", "runs/**", "*.pt", "*.bin"],
        )  # fmt: skip
    return f"{HfApi().endpoint}/{repo_id}"


__all__ = [
    "ARXIV_ID",
    "CITATION_BIBTEX",
    "DEFAULT_TAGS",
    "METRIC_LABELS",
    "MODEL_HYPERPARAMETER_KEYS",
    "PIPELINE_TASK_IN_PROCESS",
    "REMOTE_CODE_TAGS",
    "SUBSET_LABELS",
    "TRAINING_ARGUMENT_KEYS",
    "VIEW_LABELS",
    "M2AModelCardCallback",
    "build_card_data",
    "load_pipeline",
    "make_pipeline_ready",
    "normalise_metrics",
    "push_adapter_to_hub",
    "push_checkpoint",
    "push_m2a_to_hub",
    "register_m2a_pipeline",
    "render_model_card",
    "save_for_hub",
    "write_attribute_vocab",
]
