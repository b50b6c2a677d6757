"""The accuracy benchmark runner (benchmarks/accuracy): configuration layering, one real quick run on a tiny synthetic
slice (a JSONL row with the full configuration, the markdown table, resumability), and the report's aggregation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from transformers import TrainingArguments

from benchmarks.accuracy import keys, report, run
from m2a_hf.training import DataArguments, ModelArguments, ProcedureArguments


def _config(arm: str, argv: list[str], tmp_path):
    runner, model, data, procedure, training, explicit = run.parse_args(argv + ["--output_dir", str(tmp_path)])
    settings = run.resolve_runner(runner, data, explicit)
    arm_def = run.arm_defs.get_arm(arm)
    return run.build_config(arm_def, 3, runner, settings, (model, data, procedure, training), explicit, tmp_path)


def test_settings_layering_protocol_quick_command_line_arm(tmp_path):
    argv = ["--dataset", "clothing", "--quick", "--learning_rate", "1e-3", "--training_policy", "fine"]
    joint = _config("m2a-joint", argv, tmp_path)
    assert joint.model.training_policy == "joint"  # the arm's own field wins over the command line
    assert joint.training.learning_rate == pytest.approx(1e-3)  # command line over protocol
    assert joint.data.max_length == 64 and joint.data.max_train_samples == 300  # quick over protocol
    assert joint.data.attribute_columns == "item,department,class,age"  # protocol[clothing]
    assert joint.procedure.early_stopping_patience == 2 and joint.training.seed == 3  # protocol: until dev stops
    assert joint.training.num_train_epochs == 1  # quick over the protocol's cap of 6
    assert joint.runner["max_dev_samples"] is None  # quick drops the protocol's dev cap: max_eval_samples applies
    assert joint.model.value_embedding_dim == 64  # the default size, recorded (older rows: None = the hidden size)
    assert _config("m2a-joint", [*argv, "--value_embedding_dim", "384"], tmp_path).model.value_embedding_dim == 384
    fft = _config("fft", argv, tmp_path)
    assert fft.model.full_finetune and fft.training.learning_rate == pytest.approx(2e-5)
    attr = _config("m2a-attr-department", argv, tmp_path)
    assert attr.data.attribute_list() == ["department"] and attr.data.seen_attribute is None
    keys = {c.key() for c in (joint, fft, attr)}
    assert len(keys) == 3 and joint.key() == _config("m2a-joint", argv, tmp_path).key()
    fdu = _config("lora", ["--dataset", "fdu-mtl"], tmp_path)
    assert fdu.data.max_length == 128 and fdu.runner["group_by"] == "domain" and fdu.runner["predict_views"] == "all"
    assert fdu.training.num_train_epochs == 6 and fdu.procedure.early_stopping_patience == 2
    assert (
        _config("lora", ["--dataset", "fdu-mtl", "--predict_views", "none"], tmp_path).runner["predict_views"]
        == "none"
    )
    with pytest.raises(ValueError, match="unknown arm"):
        run.arm_defs.get_arm("m2a-nonsense")
    with pytest.raises(ValueError, match="seen/unseen"):
        _config("lora", ["--train_sampling_strategy", "group_by_length"], tmp_path)


@pytest.mark.slow
def test_quick_run_writes_full_row_and_table_and_resumes(tmp_path):
    flags = (
        "--dataset synthetic --arms m2a-stochastic --seeds 0 --quick --max_train_samples 32 --max_eval_samples 24 "
        "--max_length 32 --lora_rank 4 --lora_alpha 8 --per_device_eval_batch_size 16 --group_by item "
        "--predict_views all --raise_errors --torch_threads 1"
    )
    argv = [*flags.split(), "--output_dir", str(tmp_path)]
    threads = torch.get_num_threads()
    try:  # one thread: robust on a CPU shared with other jobs (two threads there can be several times slower)
        rows = run.main(argv)
    finally:
        torch.set_num_threads(threads)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(rows) == 1 and len(lines) == 1
    row = json.loads(lines[0])
    assert row["status"] == "ok" and row["quick"] is True and row["label"] == "quick"
    assert (row["dataset"], row["arm"], row["seed"], row["protocol"]) == ("synthetic", "m2a-stochastic", 0, "cpu")
    config = row["config"]
    for section, cls in (("model", ModelArguments), ("data", DataArguments), ("procedure", ProcedureArguments)):
        assert set(config[section]) == {f.name for f in dataclasses.fields(cls)}, section
    assert set(config["training"]) >= {f.name for f in dataclasses.fields(TrainingArguments) if f.init} - {"hub_token"}
    assert config["model"]["training_policy"] == "stochastic" and config["data"]["max_length"] == 32
    assert row["data_sizes"] == {"train": 32, "validation": 24, "test": 24}
    assert "commit" in row["git"] and "dirty" in row["git"]
    assert row["machine"]["cpu_count"] and row["wall_seconds"] > 0 and row["train_seconds"] > 0
    views = row["metrics"]["views"]
    assert set(views) == {"fine", "coarse", "fine_stage1", "coarse_stage1"}
    for metrics in views.values():
        assert 0 <= metrics["accuracy"] <= 1 and metrics["seen_count"] + metrics["unseen_count"] == 24
    per_group = row["metrics"]["per_group"]
    assert per_group["attribute"] == "item" and set(per_group["views"]) == {"fine", "coarse"}
    assert sum(v["count"] for v in per_group["views"]["fine"]["values"].values()) == 24
    # the per-item split comes from the library's own test predictions: its count-weighted mean is the view's accuracy
    for view, groups in per_group["views"].items():
        correct = sum(g["accuracy"] * g["count"] for g in groups["values"].values())
        assert correct / 24 == pytest.approx(views[view]["accuracy"]), view
    saved = json.loads(next(tmp_path.rglob("test_predictions.json")).read_text())
    assert set(saved["predictions"]) == {"fine", "coarse"} and len(saved["predictions"]["fine"]) == 24
    assert row["resolved_model_config"]["lora_rank"] == 4
    assert not list(tmp_path.rglob("*.safetensors"))  # weights removed, metrics kept
    assert (tmp_path / "runs" / "synthetic-cpu-quick" / "m2a-stochastic" / "seed0" / "test_predictions.json").is_file()

    markdown = (tmp_path / "report.md").read_text()
    assert "QUICK" in markdown and "| m2a-stochastic | 1 |" in markdown and "| m2a-stochastic † | 1 |" in markdown
    assert "Per-value test accuracy" in markdown and (tmp_path / "accuracy.png").stat().st_size > 0

    try:
        assert run.main(argv) == []  # same configuration and seed: skipped
    finally:
        torch.set_num_threads(threads)
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 1


def _row(
    arm: str, seed: int, accuracy: float, views: tuple[str, ...], dataset: str = "fdu-mtl", seconds: float = 60.0
):
    metrics = {
        "accuracy": accuracy,
        "macro_f1": accuracy - 0.01,
        "rmse": 1 - accuracy,
        "seen_accuracy": accuracy,
        "unseen_accuracy": None,
        "seen_count": 4,
        "unseen_count": 0,
    }
    per = {
        "values": {"books": {"accuracy": accuracy, "count": 2}, "dvd": {"accuracy": accuracy, "count": 2}},
        "mean_accuracy": accuracy,
    }
    return {
        "status": "ok",
        "dataset": dataset,
        "dataset_key": dataset,
        "protocol": "cpu",
        "quick": False,
        "arm": arm,
        "config_key": f"key-{arm}",
        "seed": seed,
        "train_seconds": seconds,
        "data_sizes": {"train": 8, "test": 4},
        "dev": {"stage1": {"train_runtime_seconds": seconds}},
        "metrics": {
            "views": dict.fromkeys(views, metrics),
            "per_group": {"attribute": "domain", "views": {views[0]: per}},
        },
    }


def test_report_mean_std_delta_per_domain_and_targets(tmp_path):
    rows = [
        _row("lora", 0, 0.80, ("iid",)),
        _row("lora", 1, 0.82, ("iid",)),
        _row("m2a-joint", 0, 0.83, ("fine", "coarse", "coarse_stage1"), seconds=120),
        _row("m2a-joint", 1, 0.85, ("fine", "coarse", "coarse_stage1"), seconds=120),
        _row("m2a-stochastic", 0, 0.84, ("fine", "coarse"), seconds=50),
        {
            **_row("m2a-no-fine", 1, 0.82, ("fine", "coarse"), seconds=60),
            "config": {"model": {"use_fine_view": False}},
        },
        {**_row("lora", 1, 0.10, ("iid",)), "status": "failed", "error": "boom"},
    ]
    markdown = report.render(rows, "test.jsonl")
    assert "| lora | 2 | 81.00 ± 1.41 |" in markdown  # mean ± sample std over 2 seeds
    assert "| m2a-joint | 2 | 84.00 ± 1.41 |" in markdown and "| +3.00 |" in markdown  # Δ vs lora
    assert "| m2a-joint † before stage 2 | 2 |" in markdown
    assert "| m2a-stochastic | 1 | 84.00 |" in markdown  # one seed: no ±
    assert "| books | 2 |" in markdown and "**Avg.**" in markdown
    assert "| m2a-stochastic avg accuracy ≥ LoRA + 1.0 | +3.00 pts (1 seed) | PASS |" in markdown
    assert "| m2a-joint avg accuracy ≥ LoRA + 1.0 | +3.00 pts (2 seeds) | PASS |" in markdown
    # stochastic vs joint on the seeds both ran (seed 0): +1.00 points at 50/120 of the train time
    assert "(paired seeds: 0) | +1.00 pts, train time ×0.42 | PASS |" in markdown
    assert "| ≥ 3 seeds for headline row lora | 2 | FAIL |" in markdown
    assert "| ≥ 3 seeds for headline row m2a-stochastic | 1 | FAIL |" in markdown
    # ablation: m2a-joint − m2a-no-fine on seed 1 (85 − 82) at half the train time, beside the paper's Table 3 gap
    assert "| m2a-no-fine | 1 | +3.00 | ×0.50 | +1.08 |" in markdown
    assert "| m2a-no-fine | 1 | 82.00 |" in markdown and "m2a-no-fine †" not in markdown  # † is the same model
    assert "boom" in markdown  # failed runs are listed, not averaged
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    # one arm with two configurations: labelled by what differs between them, the key only when nothing recorded does
    swept = [
        {**_row("lora", 0, 0.80, ("iid",)), "config": {"training": {"learning_rate": 5e-4, "output_dir": "/a"}}},
        {
            **_row("lora", 0, 0.84, ("iid",)),
            "config_key": "other-key",
            "config": {"training": {"learning_rate": 2e-4, "output_dir": "/b"}},
        },
        {**_row("m2a-joint", 0, 0.83, ("fine",)), "config": {}},
        {**_row("m2a-joint", 0, 0.85, ("fine",)), "config_key": "third-key", "config": {}},
    ]
    markdown = report.render(swept, "sweep.jsonl")
    assert "| lora [learning_rate=0.0005] | 1 | 80.00 |" in markdown
    assert "| lora [learning_rate=0.0002] | 1 | 84.00 |" in markdown and "output_dir" not in markdown
    assert "| m2a-joint [key-m2] | 1 | 83.00 |" in markdown and "| m2a-joint [third-] | 1 | 85.00 |" in markdown
    assert report.write_report(path) == (tmp_path / "report.md").read_text()
    assert (tmp_path / "accuracy.png").is_file()


def test_config_keys_of_recorded_rows_still_match(tmp_path):
    """Renamed (training_view) and added fields must not orphan earlier results: a row's stored record hashes to its
    key, and today's configuration of a recorded arm, with the fixed budget of then given as flags, has its key."""
    results = Path(__file__).resolve().parents[1] / "benchmarks/accuracy/results/cpu-2026-11-23/results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]

    class Stored:
        def __init__(self, record):
            self._record = record

        def record(self):
            return json.loads(json.dumps(self._record))

    assert all(run.RunConfig.key(Stored(row["config"])) == row["config_key"] for row in rows)
    then = ["--dataset", "clothing", "--num_train_epochs", "2", "--early_stopping_patience", "2"]
    row = next(r for r in rows if r["dataset"] == "clothing" and r["arm"] == "lora")
    assert _config("lora", then, tmp_path).key() == row["config_key"]
    assert _config("lora", ["--dataset", "clothing"], tmp_path).key() != row["config_key"]  # today's budget
    # an M2A-only flag given to a mixed run leaves the baseline's key alone
    assert (
        _config("lora", [*then, "--value_embedding_dim", "384", "--mlm_weight", "0"], tmp_path).key()
        == row["config_key"]
    )
    # M2A rows of then recorded value_embedding_dim None (= the hidden size, 384 on MiniLM); today's runs record the
    # size they use (64 by default): the same flags are another run, the hidden size given explicitly the same one
    row = next(r for r in rows if r["dataset"] == "clothing" and r["arm"] == "m2a-stochastic")
    assert _config("m2a-stochastic", then, tmp_path).key() != keys.row_key(row)
    assert _config("m2a-stochastic", [*then, "--value_embedding_dim", "384"], tmp_path).key() == keys.row_key(row)
    assert _config("m2a-stochastic", [*then, "--value_embedding_dim", "32"], tmp_path).key() != keys.row_key(row)


def test_rows_are_keyed_by_todays_canonical_form(tmp_path):
    """A rule added to the canonical form later (`--num_train_epochs 4` parsed to 4.0 was keyed apart from a protocol's
    4 until the two were made one budget) holds for rows recorded before it: `load_rows` re-keys every row from its
    record, so a run with the same flags today resumes from, and is reported with, the earlier row."""
    folder = Path(__file__).resolve().parents[1] / "benchmarks/accuracy/results/cpu-2026-11-23-fdu-4-epochs"
    lines = (folder / "results.jsonl").read_text().splitlines()
    stored = {row["arm"]: row for row in map(json.loads, lines) if row["seed"] == 0}  # made at 91d8a91
    loaded = {row["arm"]: row for row in report.load_rows(folder / "results.jsonl") if row["seed"] == 0}
    then = ["--dataset", "fdu-mtl", "--num_train_epochs", "4", "--early_stopping_patience", "2"]
    for arm, extra in (("lora", []), ("m2a-joint", ["--value_embedding_dim", "384"])):
        today = _config(arm, [*then, *extra], tmp_path).key()
        assert stored[arm]["config_key"] != today  # what the code of then made of 4.0
        assert loaded[arm]["config_key"] == today
    assert _config("lora", ["--dataset", "fdu-mtl"], tmp_path).key() != loaded["lora"]["config_key"]  # today's budget


def test_labels_name_only_what_differs_after_resolution():
    """The report labels an arm's configurations by the fields that set them apart, read from the same resolved
    record as the key: M2A rows that recorded `value_embedding_dim: null` (the hidden size, before 64 became the
    default) beside rows that record 384 differ only in their learning rate, and the labels say only that."""
    path = Path(__file__).resolve().parents[1] / "benchmarks/accuracy/results/cpu-2026-12-02-amazon-mi"
    rows = report.load_rows(path / "results-lr-sweep.jsonl")
    m2a = [row for row in rows if row["arm"] == "m2a-joint"]
    recorded = {row["config"]["model"]["value_embedding_dim"] for row in m2a}
    assert recorded == {None, 384}  # the file mixes both spellings of the hidden size
    labels = report._arm_labels(rows)
    by_lr = {row["config"]["training"]["learning_rate"]: labels[("m2a-joint", row["config_key"])] for row in m2a}
    assert by_lr == {2e-4: "m2a-joint [learning_rate=0.0002]", 1e-3: "m2a-joint [learning_rate=0.001]"}


def test_protocol_patience_and_the_rows_made_under_patience_1(tmp_path):
    """The CPU protocol stops after 2 epochs without a dev gain; the Amazon MI rows were made with patience 1 and stay
    reproducible with `--early_stopping_patience 1`."""
    path = Path(__file__).resolve().parents[1] / "benchmarks/accuracy/results/cpu-2026-12-02-amazon-mi"
    row = next(r for r in report.load_rows(path / "results-best-lr.jsonl") if r["arm"] == "lora" and r["seed"] == 0)
    assert row["config"]["procedure"]["early_stopping_patience"] == 1
    argv = ["--dataset", "amazon-mi", "--learning_rate", "2e-4"]
    then = _config("lora", [*argv, "--early_stopping_patience", "1"], tmp_path)
    today = _config("lora", argv, tmp_path)
    assert then.procedure.early_stopping_patience == 1 and today.procedure.early_stopping_patience == 2
    assert then.key() == row["config_key"]
    assert today.key() != row["config_key"]
