"""Configuration keys of the accuracy benchmark: which recorded fields make two runs the same run.

Shared by the runner (resume, one row per configuration and seed) and the report (labels of configurations)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


# TrainingArguments fields that do not change what is trained: left out of the configuration key (still recorded).
VOLATILE_TRAINING_FIELDS = frozenset(
    {
        "output_dir",
        "logging_dir",
        "run_name",
        "disable_tqdm",
        "report_to",
        "logging_strategy",
        "logging_steps",
        "logging_first_step",
        "logging_nan_inf_filter",
        "log_level",
        "log_level_replica",
        "log_on_each_node",
        "push_to_hub",
        "hub_token",
        "hub_model_id",
        "hub_strategy",
        "hub_private_repo",
        "hub_always_push",
        "hub_revision",
        "save_total_limit",
        "overwrite_output_dir",
        "seed",
        "project",
        "trackio_space_id",
        "trackio_bucket_id",
        "trackio_static_space_id",
        "dataloader_num_workers",
        "dataloader_pin_memory",
        "dataloader_persistent_workers",
        "dataloader_prefetch_factor",
        "skip_memory_metrics",
    }
)


# Fields added to the argument dataclasses after results were recorded, with the value that means "as before": left
# out of the key at that value, so rows of earlier runs keep matching their configuration.
NEUTRAL_NEW_FIELDS: dict[str, dict[str, Any]] = {
    # training_view: the deprecated alias of training_policy; model_name_or_path: run_classification.py's --backbone
    "model": {"training_view": None, "model_name_or_path": None},
    "data": {
        "skip_bad_rows": False,
        "label_map": None,
        "label_offset": None,
        # run_classification.py's data flags (the aliases are None once folded into their fields)
        **dict.fromkeys(("dataset_name", "dataset_config_name", "train_file", "validation_file", "test_file")),
        **dict.fromkeys(("text_column_names", "label_column_name", "split_column", "max_seq_length")),
        "max_predict_samples": None,
        "shuffle_train_dataset": False,
        "shuffle_seed": 42,
    },
    "procedure": {"overwrite_output_dir": False, "seed_list": "*"},  # seed_list (removed) never was part of a key
}
RENAMED_FIELDS: dict[str, dict[str, str]] = {"model": {"training_policy": "training_view"}}  # new name -> key name
# Model fields only M2A reads: a baseline arm trains the same model whatever they say (`--value_embedding_dim 384`
# given to a `lora,m2a-joint` run), so its key holds them at the value its rows always recorded.
M2A_ONLY_MODEL_FIELDS: dict[str, Any] = {
    "value_embedding_dim": None,
    "mlm_weight": None,
    "coarse_weight": None,
    "kl_weight": None,
    "attribute_lora_rank": None,
    "use_fine_view": True,
    "training_policy": "joint",
}


def canonical_record(record: dict[str, Any]) -> dict[str, Any]:
    """`record` with the fields of `NEUTRAL_NEW_FIELDS` dropped at their neutral value and renamed fields under the
    name they had when the first results were keyed, so a renamed or added field does not orphan earlier rows; a
    baseline arm's `M2A_ONLY_MODEL_FIELDS` are held at the values its rows always recorded."""
    out = {section: dict(values) if isinstance(values, dict) else values for section, values in record.items()}
    if (out.get("arm") or {}).get("kind") == "baseline" and isinstance(out.get("model"), dict):
        out["model"].update({name: value for name, value in M2A_ONLY_MODEL_FIELDS.items() if name in out["model"]})
    for section, fields in NEUTRAL_NEW_FIELDS.items():
        for name, neutral in fields.items():
            if name in out.get(section, {}) and (neutral == "*" or out[section][name] == neutral):
                del out[section][name]
    if "restore_callback_states_from_checkpoint" in out.get("training", {}):  # how a resume restores callbacks only;
        out["training"]["restore_callback_states_from_checkpoint"] = False  # keyed at its old default
    epochs = out.get("training", {}).get("num_train_epochs")
    if isinstance(epochs, float) and epochs.is_integer():  # `--num_train_epochs 2` parses to 2.0, a protocol writes 2:
        out["training"]["num_train_epochs"] = int(epochs)  # one budget, one key
    if isinstance(out.get("arm"), dict):  # the arm's own model fields are renamed too
        out["arm"] = {**out["arm"], "model": dict(out["arm"].get("model") or {})}
    for section, names in RENAMED_FIELDS.items():
        for target in (out.get(section, {}), (out.get("arm") or {}).get(section, {})):
            for new, old in names.items():
                if new in target:
                    target[old] = target.pop(new)
    return out


def keyed_config(record: dict[str, Any]) -> dict[str, Any]:
    """The part of a run's recorded configuration that determines its result (the seed aside): `canonical_record`
    without the volatile training fields, the data folder, the arm's description and runner settings that change
    nothing that is trained."""
    config = canonical_record(record)
    config["training"] = {k: v for k, v in config["training"].items() if k not in VOLATILE_TRAINING_FIELDS}
    config["data"].pop("data_dir", None)
    config["arm"].pop("description", None)
    # group_by stratifies the subsets; sort_eval_by_length, predict_views and fft_learning_rate (already in
    # `training`) do not change what is trained
    kept = ("protocol", "quick", "split_seed", "max_dev_samples", "max_test_samples", "group_by")
    runner = {k: config["runner"].get(k) for k in kept}
    if config["runner"].get("subset_by"):  # added later: absent when unused, so older keys still match
        runner["subset_by"] = config["runner"]["subset_by"]
    config["runner"] = runner
    return config


def config_key(record: dict[str, Any]) -> str:
    """Hash of `keyed_config(record)`: the same key + seed is the same run."""
    blob = json.dumps(keyed_config(record), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


RECORD_SECTIONS = ("arm", "model", "data", "training", "runner")


def resolved_record(row: dict[str, Any]) -> dict[str, Any] | None:
    """The row's recorded configuration with what the code of then left implicit made explicit: an M2A row's
    `value_embedding_dim: null` is M2AConfig's "the hidden size" (the runner records the size it uses since 64 became
    the default), resolved with the backbone's width recorded beside it. None for a row without a whole record."""
    record = row.get("config")
    if not isinstance(record, dict) or not all(isinstance(record.get(s), dict) for s in RECORD_SECTIONS):
        return None
    model = record["model"]
    hidden = ((row.get("resolved_model_config") or {}).get("backbone") or {}).get("hidden_size")
    if (
        record["arm"].get("kind") == "m2a"
        and hidden
        and "value_embedding_dim" in model
        and model["value_embedding_dim"] is None
    ):
        record = {**record, "model": {**model, "value_embedding_dim": hidden}}
    return record


def row_key(row: dict[str, Any]) -> Any:
    """The key of a recorded row under today's canonical form, recomputed from its `resolved_record`, so that a rule
    added to `canonical_record` later holds for earlier rows too (the stored `config_key` is what the code of then
    made of it). A row without a whole record keeps its stored key."""
    record = resolved_record(row)
    return row.get("config_key") if record is None else config_key(record)
