"""Hub integration: a complete, pipeline-ready repository folder, pushing it, and the attribute-aware pipeline.

- `save_for_hub` / `push_m2a_to_hub` / `push_adapter_to_hub` / `push_checkpoint`: a complete repository in one commit.
- `push_final_model`: the end of a training run with `push_to_hub` (`train_m2a`, the examples) pushes its complete
  final folder (`upload_checkpoint_folder`), not only the Trainer's files.
- `register_m2a_pipeline` / `load_pipeline`: `M2ATextClassificationPipeline` in this process. Saved checkpoints need
  neither: `save_pretrained` writes `custom_pipelines` (and the attribute vocabulary) into `config.json`, so
  `transformers.pipeline(model=folder, trust_remote_code=True)` works without `m2a_hf` installed.
- `write_attribute_vocab`: `attribute_vocab.json`.

`config.json` is written once, by `save_pretrained`, and never rewritten in place; every other JSON or card file is
written atomically (`m2a_hf.io_utils`). The model card lives in `m2a_hf.model_card`; its public names are re-exported
here.
"""

from __future__ import annotations

import fnmatch
import glob
import importlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from huggingface_hub import ModelCard

from m2a_hf.card_metrics import METRIC_LABELS, SUBSET_LABELS, VIEW_LABELS
from m2a_hf.io_utils import write_json_atomic, write_text_atomic
from m2a_hf.model_card import (
    ARXIV_ID,
    CITATION_BIBTEX,
    DEFAULT_TAGS,
    MODEL_HYPERPARAMETER_KEYS,
    REMOTE_CODE_TAGS,
    TRAINING_ARGUMENT_KEYS,
    M2AModelCardCallback,
    build_card_data,
    normalise_metrics,
    render_model_card,
    save_model_card,
)
from m2a_hf.output_dir import MODEL_MARKERS, STAGE1_MODULES, STAGE1_RESULT, WEIGHT_PATTERNS


logger = logging.getLogger(__name__)

PIPELINE_TASK_IN_PROCESS = "m2a-text-classification"
# Run-folder content that never goes to the Hub: Trainer checkpoints (pickled RNG/optimizer state), the second stage's
# and the baseline's own folders, TensorBoard logs and any pickle.
PUSH_IGNORE_PATTERNS = [
    "checkpoint-*",
    "checkpoint-*/**",
    "stage2/**",
    "baseline/**",
    "runs/**",
    "*.pt",
    "*.pth",
    "*.bin",
    "*.pkl",
    "training_args.bin",
    ".m2a-final-*",
    ".m2a-final-*/**",
]


# ---------------------------------------------------------------------------------------------------- pipeline
def _pipeline_module() -> ModuleType:
    return importlib.import_module("m2a_hf.modeling.pipeline_m2a")


def register_m2a_pipeline(task: str = PIPELINE_TASK_IN_PROCESS) -> type:
    """Register `M2ATextClassificationPipeline` with `transformers.pipeline` in this process and return the class.

    After this, `pipeline("m2a-text-classification", model=model, tokenizer=tokenizer)` works on an in-memory
    model. The task name differs from "text-classification" so that the stock pipeline of that task is not replaced
    for other models in the process. Saved checkpoints do not need this: `save_pretrained` writes `custom_pipelines`.
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


def attribute_vocab_dict(attribute_vocab: Any) -> dict[str, Any]:
    """The `attribute_vocab.json` form of a vocabulary, validated.

    Accepts an `m2a_hf.data.AttributeVocab` (or anything with `to_dict()`), a dict already in the file's format, or
    a plain `{name: [value_0, value_1, ...]}` mapping (built into an `AttributeVocab`, whose file format is used).
    """
    if isinstance(attribute_vocab, Mapping) and "attributes" not in attribute_vocab:
        from m2a_hf.data import AttributeVocab

        attribute_vocab = AttributeVocab(attribute_vocab)
    if hasattr(attribute_vocab, "to_dict") and not isinstance(attribute_vocab, Mapping):
        attribute_vocab = attribute_vocab.to_dict()
    _pipeline_module().parse_attribute_vocab(attribute_vocab)
    return json.loads(json.dumps(attribute_vocab))  # a plain JSON copy: serialisation errors surface here


def write_attribute_vocab(save_directory: str | os.PathLike, attribute_vocab: Any) -> Path:
    """Write `attribute_vocab.json` into `save_directory` (atomically) and return its path.

    Accepts what `attribute_vocab_dict` accepts.
    """
    path = Path(save_directory) / _pipeline_module().ATTRIBUTE_VOCAB_NAME
    return write_json_atomic(path, attribute_vocab_dict(attribute_vocab), indent=1, ensure_ascii=False)


def _vocab_to_embed(model: Any, save_directory: Path, attribute_vocab: Any) -> dict[str, Any] | None:
    """The vocabulary a saved folder carries: the one given, else the model's `config.attribute_vocab`, else the
    folder's existing `attribute_vocab.json` (what `make_pipeline_ready` used to embed), else None."""
    if attribute_vocab is not None:
        return attribute_vocab_dict(attribute_vocab)
    embedded = getattr(getattr(model, "config", None), "attribute_vocab", None)
    if embedded is not None:
        return attribute_vocab_dict(embedded)
    existing = save_directory / _pipeline_module().ATTRIBUTE_VOCAB_NAME
    if existing.is_file():
        return attribute_vocab_dict(json.loads(existing.read_text(encoding="utf-8")))
    return None


def make_pipeline_ready(save_directory: str | os.PathLike, embed_vocab: bool = True) -> Path:
    """Deprecated: `save_pretrained` and `save_for_hub` now write pipeline-ready folders; this only checks one.

    Copies `pipeline_m2a.py` into the folder if it is missing; never overwrites a file and never rewrites
    `config.json` (a rewrite killed half-way used to leave a truncated, unloadable config).

    Raises:
        FileNotFoundError: The folder has no `config.json`.
        ValueError: `config.json` lacks `custom_pipelines`, or (with `embed_vocab`) does not embed the folder's
            `attribute_vocab.json`; save the model again with `save_pretrained(folder, attribute_vocab=...)`.
    """
    warnings.warn(
        "`make_pipeline_ready` is deprecated: `save_pretrained(folder, attribute_vocab=...)` and `save_for_hub` "
        "write a pipeline-ready config.json directly.",
        FutureWarning,
        stacklevel=2,
    )
    save_directory = Path(save_directory)
    config_path = save_directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{save_directory} has no config.json; save the model there first.")
    module = _pipeline_module()
    code_path = save_directory / "pipeline_m2a.py"
    if not code_path.exists():
        write_text_atomic(code_path, Path(module.__file__).read_text(encoding="utf-8"))
    config = json.loads(config_path.read_text(encoding="utf-8"))
    missing = [] if config.get("custom_pipelines") == module.CUSTOM_PIPELINES else ["`custom_pipelines`"]
    vocab_path = save_directory / module.ATTRIBUTE_VOCAB_NAME
    if embed_vocab and vocab_path.is_file():
        if config.get("attribute_vocab") != json.loads(vocab_path.read_text(encoding="utf-8")):
            missing.append(f"the vocabulary of {module.ATTRIBUTE_VOCAB_NAME} (`attribute_vocab`)")
    if missing:
        raise ValueError(
            f"{config_path} lacks {' and '.join(missing)}, and config.json is no longer rewritten in place. Save the "
            "model again: `M2AForSequenceClassification.from_pretrained(folder).save_pretrained(folder, "
            "attribute_vocab=...)`, or `save_for_hub`."
        )
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
    """Write a complete, pipeline-ready repository folder and return its path.

    `model.save_pretrained` writes the weights, the remote code (with `pipeline_m2a.py`) and `config.json`, once and
    complete: `auto_map`, `custom_pipelines` and the attribute vocabulary. Then come the tokenizer,
    `attribute_vocab.json` (the same vocabulary) and `README.md` (`card`, or `render_model_card(folder,
    **card_kwargs)`), each written atomically.

    Args:
        model: An M2A model (`M2APreTrainedModel`).
        save_directory: Target folder (created if needed).
        tokenizer: Saved beside the model when given.
        attribute_vocab: See `attribute_vocab_dict`. Defaults to the model's `config.attribute_vocab`, else the
            folder's existing `attribute_vocab.json`; set on `model.config` so later saves carry it too.
        card: A ready card; otherwise one is rendered from `card_kwargs` (see `render_model_card`).
        **card_kwargs: Passed to `render_model_card`.
    """
    save_directory = Path(save_directory)
    vocab = _vocab_to_embed(model, save_directory, attribute_vocab)
    model.save_pretrained(save_directory, attribute_vocab=vocab)
    if tokenizer is not None:
        tokenizer.save_pretrained(save_directory)
    if vocab is not None:
        write_attribute_vocab(save_directory, vocab)
    if card is None:
        card = render_model_card(save_directory, **card_kwargs)
    save_model_card(card, save_directory)
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
    """Upload an adapter-only checkpoint (`save_adapter`: `m2a_adapter_config.json` + `m2a_adapter_model.safetensors`,
    no backbone) with its card and `attribute_vocab.json` (`attribute_vocab`, else the model's
    `config.attribute_vocab`), as one commit; the same commit deletes the peft-named `adapter_config.json` /
    `adapter_model.safetensors` an earlier push wrote. Loading it needs `m2a_hf`
    (`M2AForSequenceClassification.from_adapter`)."""
    from huggingface_hub import HfApi

    from m2a_hf.adapters import LEGACY_ADAPTER_FILES, save_adapter

    api = HfApi(token=token)
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
    card_kwargs.setdefault("repo_id", repo_url.repo_id)
    with tempfile.TemporaryDirectory(prefix="m2a-adapter-push-") as tmp:
        save_adapter(model, tmp)
        vocab = _vocab_to_embed(model, Path(tmp), attribute_vocab)
        if vocab is not None:
            write_attribute_vocab(tmp, vocab)
        card = card or render_model_card(model, adapter_only=True, **card_kwargs)
        save_model_card(card, tmp)
        return api.upload_folder(
            repo_id=repo_url.repo_id,
            folder_path=tmp,
            commit_message=commit_message,
            revision=revision,
            delete_patterns=list(LEGACY_ADAPTER_FILES),
        )


def load_pipeline(
    model_path: str | os.PathLike,
    *,
    attribute_vocab: Any = None,
    allow_missing_vocab: bool = False,
    **kwargs: Any,
):
    """An `M2ATextClassificationPipeline` for a saved checkpoint (folder or Hub repo id), in this process.

    Equivalent to `transformers.pipeline(model=model_path, trust_remote_code=True)` but with the installed classes
    (no remote code is imported). `kwargs` go to `from_pretrained` (e.g. `revision=`).

    Args:
        model_path: The checkpoint.
        attribute_vocab: A vocabulary to use instead of the checkpoint's: what `attribute_vocab_dict` accepts, or the
            path of an `attribute_vocab.json`.
        allow_missing_vocab: For a checkpoint without a vocabulary: treat every attribute value as unknown instead of
            raising when an input gives attribute values (the error names the folder and how to add the file).
    """
    from transformers import AutoTokenizer

    from m2a_hf.modeling import M2AForSequenceClassification

    pipeline_class = _pipeline_module().M2ATextClassificationPipeline
    model = M2AForSequenceClassification.from_pretrained(str(model_path), **kwargs).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_path), **kwargs)
    if attribute_vocab is not None and not isinstance(attribute_vocab, (str, os.PathLike)):
        attribute_vocab = attribute_vocab_dict(attribute_vocab)
    return pipeline_class(
        model=model, tokenizer=tokenizer, attribute_vocab=attribute_vocab, allow_missing_vocab=allow_missing_vocab
    )


def push_checkpoint(
    model_path: str | os.PathLike,
    repo_id: str,
    *,
    adapter_only: bool = False,
    private: bool = False,
    token: str | None = None,
    revision: str | None = None,
) -> str:
    """Upload a checkpoint folder written by training (already Hub-ready: weights, remote code, tokenizer, vocabulary,
    card) as one commit (`upload_checkpoint_folder`), or only its adapter (`adapter_only`). Returns the repository
    URL."""
    from huggingface_hub import HfApi

    from m2a_hf.modeling import M2AForSequenceClassification

    model_path = Path(model_path)
    if not (model_path / "config.json").is_file():
        raise FileNotFoundError(f"{model_path} is not a saved M2A checkpoint (no config.json).")
    if adapter_only:
        model = M2AForSequenceClassification.from_pretrained(str(model_path))
        vocab = model_path / _pipeline_module().ATTRIBUTE_VOCAB_NAME
        attribute_vocab = json.loads(vocab.read_text()) if vocab.is_file() else None
        push_adapter_to_hub(
            model, repo_id, attribute_vocab=attribute_vocab, private=private, token=token, revision=revision
        )
    else:
        upload_checkpoint_folder(model_path, repo_id, private=private, token=token, revision=revision)
    return f"{HfApi(token=token).endpoint}/{repo_id}"


# Root-level files an earlier push of the same repository may have left that are not part of a final model: what never
# goes to the Hub (the Trainer's `training_args.bin`), the bookkeeping that stage 2's Trainer pushes from its folder,
# and weights or markers of another save format (a stray `adapter_config.json` makes the Hub take the repo for a peft
# adapter).
STALE_PUSH_PATTERNS = [*PUSH_IGNORE_PATTERNS, STAGE1_RESULT, STAGE1_MODULES, *WEIGHT_PATTERNS, *MODEL_MARKERS]


def _stale_remote_files(api: Any, repo_id: str, revision: str | None, uploaded: set[str]) -> list[str]:
    """The repository's root-level files matching `STALE_PUSH_PATTERNS` that the new commit does not upload.

    Folders are never touched: the checkpoints `hub_strategy="checkpoint"` (`last-checkpoint/`) or
    `"all_checkpoints"` (`checkpoint-*/`) pushed stay, to resume from.
    """
    remote = api.list_repo_files(repo_id, revision=revision)
    return [
        path
        for path in remote
        if "/" not in path
        and path not in uploaded
        and path != ".gitattributes"
        and any(fnmatch.fnmatchcase(path, pattern) for pattern in STALE_PUSH_PATTERNS)
    ]


def upload_checkpoint_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str = "Upload M2A model",
):
    """Create the repo (if needed) and upload a Hub-ready checkpoint folder, minus `PUSH_IGNORE_PATTERNS`, as one
    commit. The same commit deletes the root-level leftovers of earlier pushes (`STALE_PUSH_PATTERNS`: e.g. the
    `training_args.bin` the Trainer pushed during training), so the branch holds exactly this model.

    Returns the `CommitInfo`; its `oid` is the commit sha to pin with `revision=`.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.utils import filter_repo_objects

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} is not a saved M2A checkpoint (no config.json).")
    api = HfApi(token=token)
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
    local = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    uploaded = set(filter_repo_objects(local, ignore_patterns=PUSH_IGNORE_PATTERNS))
    stale = _stale_remote_files(api, repo_url.repo_id, revision, uploaded)
    if stale:
        logger.info("Deleting leftovers of earlier pushes from %s: %s", repo_url.repo_id, stale)
    return api.upload_folder(
        repo_id=repo_url.repo_id,
        folder_path=str(folder),
        commit_message=commit_message,
        revision=revision,
        ignore_patterns=PUSH_IGNORE_PATTERNS,
        delete_patterns=[glob.escape(path) for path in stale] or None,
    )


def _push_repo_name(training_args: Any) -> str | None:
    """The repository `Trainer` pushes to: `hub_model_id`, else the output folder's name (None without
    `push_to_hub`); a name without namespace goes to the token owner's namespace."""
    if not getattr(training_args, "push_to_hub", False):
        return None
    return training_args.hub_model_id or Path(training_args.output_dir).absolute().name


def hub_repo_id(training_args: Any) -> str | None:
    """The full repo id a run with `push_to_hub` pushes to, for the card's usage snippets: `hub_model_id` when it
    names its namespace (`"me/x"`). None without `push_to_hub`, or when the namespace is the token owner's and not
    known before the push (`"x"`, or no `hub_model_id`): the card then shows a placeholder."""
    name = _push_repo_name(training_args)
    return name if name is not None and "/" in name else None


def push_final_model(folder: str | os.PathLike, training_args: Any, *, commit_message: str = "End of training"):
    """Push the final model written by training when `training_args.push_to_hub` is set, on the main process only.

    The Trainer's own pushes carry only `config.json`, the weights, the tokenizer and `training_args.bin`: without
    the remote code such a repository does not load. This uploads the complete folder `save_for_hub` wrote (remote
    code, attribute vocabulary, card with the final metrics) as one commit (`upload_checkpoint_folder`), honouring
    `hub_model_id` (default: the output folder's name), `hub_token`, `hub_private_repo` (when the repo is created)
    and `hub_revision`. Every `hub_strategy` ends with this push (`"end"` pushes nothing before it); the checkpoint
    folders `"checkpoint"` / `"all_checkpoints"` pushed are kept.

    Args:
        folder: The final, complete output folder (e.g. `training_args.output_dir` after `train_m2a` saved it).
        training_args: The run's `TrainingArguments`.
        commit_message: The commit's title.

    Returns:
        The `CommitInfo` on the main process with `push_to_hub`, else None.
    """
    repo_id = _push_repo_name(training_args)
    if repo_id is None:
        return None
    if getattr(training_args, "process_index", 0) != 0:
        return None
    commit = upload_checkpoint_folder(
        folder,
        repo_id,
        private=getattr(training_args, "hub_private_repo", None),
        token=getattr(training_args, "hub_token", None),
        revision=getattr(training_args, "hub_revision", None),
        commit_message=commit_message,
    )
    logger.info("Final model pushed to %s (commit %s)", commit.commit_url, commit.oid)
    return commit


__all__ = [
    "ARXIV_ID",
    "CITATION_BIBTEX",
    "DEFAULT_TAGS",
    "METRIC_LABELS",
    "MODEL_HYPERPARAMETER_KEYS",
    "PIPELINE_TASK_IN_PROCESS",
    "REMOTE_CODE_TAGS",
    "STALE_PUSH_PATTERNS",
    "SUBSET_LABELS",
    "TRAINING_ARGUMENT_KEYS",
    "VIEW_LABELS",
    "M2AModelCardCallback",
    "attribute_vocab_dict",
    "build_card_data",
    "hub_repo_id",
    "load_pipeline",
    "make_pipeline_ready",
    "normalise_metrics",
    "push_adapter_to_hub",
    "push_checkpoint",
    "push_final_model",
    "push_m2a_to_hub",
    "register_m2a_pipeline",
    "render_model_card",
    "save_for_hub",
    "save_model_card",
    "upload_checkpoint_folder",
    "write_attribute_vocab",
]
