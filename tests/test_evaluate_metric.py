"""The `m2a_classification` evaluate metric: `evaluate.load(<folder>)` offline, the same numbers as `m2a_hf.metrics`
(and sklearn) on real labels, the Trainer's `compute_metrics` computing through it, and its files in the wheel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from m2a_hf import metrics
from m2a_hf.evaluate_metrics import M2A_CLASSIFICATION_PATH


REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def offline_evaluate(monkeypatch, tmp_path):
    """`evaluate` with the Hub switched off (the flags as evaluate and huggingface_hub read them, already imported)
    and a private modules cache, so that a load that needed the network would fail."""
    import evaluate
    import huggingface_hub

    for name in ("HF_EVALUATE_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)
    monkeypatch.setattr(evaluate.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(evaluate.config, "HF_MODULES_CACHE", tmp_path / "modules")
    return evaluate


@pytest.fixture(scope="module")
def real_predictions(data_dir):
    """Labels of the clothing test split, predictions one star off for a seeded third of them, and the seen mask of
    the `item` attribute (seen in the training split or not)."""
    from m2a_hf.data import load_clothing_reviews

    data = load_clothing_reviews(data_dir, attributes=("item",))
    labels = np.asarray(data["test"]["label"], dtype=np.int64)
    rng = np.random.default_rng(0)
    off = rng.random(labels.shape[0]) < 1 / 3
    preds = np.where(off, np.clip(labels + rng.choice([-1, 1], labels.shape[0]), 0, 4), labels)
    train_items = set(data["train"]["item"])
    seen = np.asarray([item in train_items for item in data["test"]["item"]])
    assert seen.any() and not seen.all() and labels.shape[0] > 1000
    return preds, labels, seen


def test_evaluate_load_offline_matches_m2a_hf_metrics_and_sklearn(offline_evaluate, real_predictions):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    preds, labels, seen = real_predictions
    metric = offline_evaluate.load(M2A_CLASSIFICATION_PATH)
    assert isinstance(metric, offline_evaluate.Metric) and metric.name == "m2a_classification"

    overall = metric.compute(predictions=preds.tolist(), references=labels.tolist())
    assert overall == metrics.classification_metrics(preds, labels)
    assert overall["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(labels, preds))
    assert overall["macro_f1"] == pytest.approx(sklearn_metrics.f1_score(labels, preds, average="macro"))
    assert overall["rmse"] == pytest.approx(np.sqrt(sklearn_metrics.mean_squared_error(labels, preds)))

    split = metric.compute(predictions=preds, references=labels, seen=seen)
    assert split == metrics.metrics_by_seen(preds, labels, seen)
    assert split["seen_count"] == int(seen.sum()) and split["unseen_count"] == int((~seen).sum())
    unseen = ~seen
    assert split["unseen_accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(labels[unseen], preds[unseen]))
    assert split["seen_macro_f1"] == pytest.approx(
        sklearn_metrics.f1_score(labels[seen], preds[seen], average="macro")
    )

    six = metric.compute(predictions=[0, 1], references=[0, 1], num_labels=4)  # absent classes score 0
    assert six["macro_f1"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="Mismatch in the number of predictions"):
        metric.compute(predictions=[0, 1], references=[0])


def test_compute_metrics_computes_through_the_evaluate_metric(real_predictions, monkeypatch):
    preds, labels, _ = real_predictions
    logits = np.eye(5, dtype=np.float32)[preds] + 0.01  # argmax = preds
    metric = metrics.load_metric()
    calls = []
    compute = type(metric)._compute

    def spy(self, *args, **kwargs):
        calls.append(len(kwargs.get("predictions", args[0] if args else [])))
        return compute(self, *args, **kwargs)

    monkeypatch.setattr(type(metric), "_compute", spy)
    result = metrics.compute_metrics((logits, labels))
    assert calls == [labels.shape[0]]  # one evaluate compute over every sample
    assert set(result) == {"accuracy", "macro_f1", "rmse"}  # unchanged keys (the Trainer prefixes `eval_`)
    assert result == metrics.classification_metrics(preds, labels)
    assert all(type(value) is float for value in result.values())
    with pytest.raises(ValueError, match="preds has 2 samples but labels has 3"):
        metrics.compute_metrics((np.zeros((2, 5)), np.zeros(3, dtype=np.int64)))


@pytest.mark.slow
def test_the_metric_folder_is_in_the_built_package(tmp_path):
    """`build_py` (what a wheel packs) copies the metric module, its card and the Space files; `evaluate.load` loads
    the copy offline, in a process without the source checkout on its path."""
    build = tmp_path / "build"
    subprocess.run(
        [sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py", "--build-lib", str(build)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    folder = build / "m2a_hf" / "evaluate_metrics" / "m2a_classification"
    assert {"m2a_classification.py", "README.md", "app.py", "requirements.txt"} <= {p.name for p in folder.iterdir()}
    script = (
        "import evaluate, sys; m = evaluate.load(sys.argv[1]);"
        "print(m.compute(predictions=[0, 1, 2, 2], references=[0, 1, 1, 2]))"
    )
    env = {"HF_EVALUATE_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    env.update(PATH="/usr/bin:/bin", HF_HOME=str(tmp_path / "hf_home"))
    out = subprocess.run(
        [sys.executable, "-I", "-c", script, str(folder)], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "'accuracy': 0.75" in out.stdout and "'rmse': 0.5" in out.stdout
