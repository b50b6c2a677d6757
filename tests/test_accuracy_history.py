"""History buckets of the accuracy benchmark (benchmarks/accuracy/history.py) and the by-value training subset."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from benchmarks.accuracy import history, run
from m2a_hf.training import DataArguments


def test_bucket_boundaries():
    assert [history.bucket_of(n) for n in (0, 1, 2, 3, 4, 7, 8, 500)] == [
        "0",
        "1",
        "2-3",
        "2-3",
        "4-7",
        "4-7",
        "8+",
        "8+",
    ]
    with pytest.raises(ValueError, match="-1"):
        history.bucket_of(-1)


def test_history_counts_normalise_values_and_count_missing_as_unseen():
    counts = history.history_counts([767, "767.0", 767.0, "a", None, "NaN"], ["767", 767.0, "a", "b", None])
    assert counts.tolist() == [3, 3, 1, 0, 0]


def test_subsample_by_value_keeps_whole_users(data_dir):
    from m2a_hf.data import load_named_dataset

    full = load_named_dataset("amazon-mi", data_dir)
    part = run.subsample_by_value(full, "user", 300, seed=0)
    kept = set(part["train"]["user"])
    train_counts = dict.fromkeys(kept, 0)
    for user in full["train"]["user"]:
        if user in kept:
            train_counts[user] += 1
    assert len(part["train"]) == sum(train_counts.values()) <= 300  # every kept user with all its training rows
    assert len(part["train"]) > 250  # values are skipped only when they would overshoot the cap
    for split in ("validation", "test"):
        assert set(part[split]["user"]) <= kept
        assert len(part[split]) == sum(u in kept for u in full[split]["user"])
    assert run.subsample_by_value(full, "user", 300, seed=0)["train"]["id"] == part["train"]["id"]  # seeded


def test_bucket_rows_joins_predictions_by_id(tmp_path):
    data_args = DataArguments(dataset="synthetic", max_train_samples=200, max_eval_samples=120)
    settings = {"split_seed": 0, "group_by": None, "subset_by": None, "sort_eval_by_length": True}
    data = run.benchmark_data(data_args, settings)
    test = data["test"]
    labels = np.asarray(test["label"])
    order = np.random.default_rng(0).permutation(len(test))  # predictions need not follow the data's order
    ids = order.tolist()  # synthetic rows have no `id` column: the runner uses row positions
    m2a = labels[order]  # M2A right everywhere, LoRA wrong everywhere
    lora = (labels[order] + 1) % 5
    rows = []
    m2a_views = {"fine": m2a.tolist(), "coarse": lora.tolist()}  # the attribute-free view as wrong as LoRA
    for arm, predictions in (("m2a-joint", m2a_views), ("lora", {"iid": lora.tolist()})):
        payload = {"id": ids, "label": labels[order].tolist(), "predictions": predictions}
        (tmp_path / f"{arm}-seed0.json").write_text(json.dumps(payload))
        config = {"data": dataclasses.asdict(data_args), "runner": settings}
        rows.append(
            {"dataset": "synthetic", "arm": arm, "seed": 0, "status": "ok", "config_key": arm, "config": config}
        )
    result = history.bucket_rows(rows, "synthetic", ["user"], "m2a-joint", predictions_dir=tmp_path)
    assert result["_seeds"] == [0]
    entries = result["user"]
    assert sum(e["rows"] for e in entries) == len(test)
    train_users = set(data["train"]["user"])
    unseen = sum(u not in train_users for u in test["user"])
    assert {e["bucket"]: e["rows"] for e in entries}.get("0", 0) == unseen
    for entry in entries:
        assert entry["m2a_acc"][0] == 1.0 and entry["lora_acc"][0] == 0.0
        assert entry["acc_gain"][0] == pytest.approx(100.0)
    text = history.render(result, "synthetic", "m2a-joint")
    assert "| history | test rows |" in text and "+100.00" in text
    own = history.bucket_rows(rows, "synthetic", ["user"], "m2a-joint", predictions_dir=tmp_path, against="coarse")
    assert [e["acc_gain"][0] for e in own["user"]] == pytest.approx([100.0] * len(own["user"]))
    assert "M2A† acc" in history.render(own, "synthetic", "m2a-joint", "coarse")
    # the command line on a built-in set whose rows name no attribute_columns (synthetic): the model's attributes
    results = tmp_path / "results.jsonl"
    for row in rows:
        row["resolved_model_config"] = {"attributes": {"user": 64, "item": 30}}
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = [
        str(results),
        "--dataset",
        "synthetic",
        "--predictions_dir",
        str(tmp_path),
        "--output",
        str(tmp_path / "h.md"),
    ]
    history.main(argv)
    written = (tmp_path / "h.md").read_text()
    assert "### by user" in written and "### by item" in written


def test_class_tables_recall_and_confusion_from_saved_predictions(tmp_path):
    from benchmarks.accuracy import classes

    labels = [0, 0, 1, 1, 2, 2, 2, 2]
    lora = [2, 2, 2, 1, 2, 2, 2, 2]  # majority class; one row of class 1
    m2a = {"fine": [0, 2, 1, 1, 2, 2, 1, 2], "coarse": [0, 2, 1, 2, 2, 2, 2, 2]}
    ids = [str(i) for i in range(len(labels))]
    rows = []
    for arm, preds in (("lora", {"iid": lora}), ("m2a-joint", m2a)):
        (tmp_path / f"{arm}-seed0.json").write_text(json.dumps({"id": ids, "label": labels, "predictions": preds}))
        rows.append({"dataset": "toy", "arm": arm, "seed": 0, "config_key": arm, "status": "ok", "timestamp": "t"})
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = classes.class_tables(classes.load_rows(results), "toy", "m2a-joint", tmp_path)
    assert result["seeds"] == [0]
    assert result["matrices"]["LoRA"][0].tolist() == [[0, 0, 2], [0, 1, 1], [0, 0, 4]]
    assert result["matrices"]["m2a-joint"][0].tolist() == [[1, 0, 1], [0, 2, 0], [0, 1, 3]]
    text = classes.render(result, "toy", "m2a-joint")
    assert "| LoRA | 0.0 / 0.0 | 50.0 / 12.5 | 100.0 / 87.5 | 50.0 |" in text  # recall / share per class, macro
    assert "| m2a-joint† | 50.0 / 12.5 | 50.0 / 12.5 | 100.0 / 75.0 | 66.7 |" in text


def _entry(bucket: str, rows: int, gain: float, std: float | None) -> dict:
    return {"bucket": bucket, "rows": rows, "seeds": 1 if std is None else 3, "acc_gain": (gain, std)}


def test_history_figure_names_rows_under_each_bucket_and_draws_spread_only_when_there_is_one():
    pytest.importorskip("matplotlib")
    from matplotlib.container import BarContainer

    def bars(ax):
        return next(c for c in ax.containers if isinstance(c, BarContainer))

    one_seed = {"item": [_entry("0", 257, 0.78, None), _entry("8+", 1431, 0.49, None)], "_seeds": [0]}
    three = {"user": [_entry("1", 12, 8.3, 8.3), _entry("4-7", 125, 1.3, 3.6)], "_seeds": [0, 1, 2]}
    (ax,) = history.figure(one_seed, "clothing", "m2a-joint").axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0\nn=257", "8+\nn=1431"]
    assert bars(ax).errorbar is None  # one seed: no zero-length error bars
    assert [round(p.get_height(), 2) for p in ax.patches] == [0.78, 0.49]
    (ax,) = history.figure(three, "amazon-mi", "m2a-joint").axes
    errorbar = bars(ax).errorbar
    assert errorbar is not None
    segments = errorbar.lines[2][0].get_segments()
    assert [round(float(seg[1][1] - seg[0][1]), 2) for seg in segments] == [16.6, 7.2]  # ± std around each bar
