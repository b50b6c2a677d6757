"""Which classes does each arm give up? Per-class recall, prediction share and confusion matrices from saved predictions.

    python -m benchmarks.accuracy.classes outputs/accuracy/results.jsonl --dataset amazon-mi \\
        [--arm m2a-joint] [--predictions_dir DIR] [--output classes.md]

For every seed that both `--arm` and `lora` ran (the headline configuration of each, as in `history`), the test
predictions are read and compared class by class: recall (share of a class's test rows predicted as that class) and
prediction share (how often the arm predicts the class), mean over seeds, for LoRA, the arm's attribute-aware view
(`fine`) and its coarse view (`coarse`, when saved). Confusion matrices are summed over the seeds. Macro-F1 moves
with the recall of the rare classes, so this table says which ratings a gain or a loss of macro-F1 comes from.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.accuracy.history import BASELINE_ARM, _headline_key, _predictions
from benchmarks.accuracy.report import latest_ok, load_rows


logger = logging.getLogger("accuracy.classes")

VIEWS: tuple[tuple[str, str], ...] = (("lora", "iid"), ("arm", "fine"), ("arm", "coarse"))


def confusion(labels: np.ndarray, predictions: np.ndarray, num_labels: int) -> np.ndarray:
    """`(num_labels, num_labels)` counts: row = true class, column = predicted class."""
    matrix = np.zeros((num_labels, num_labels), dtype=int)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def class_tables(
    rows: list[dict[str, Any]], dataset: str, arm: str, predictions_dir: Path | None = None
) -> dict[str, Any]:
    """Per view (`LoRA`, `<arm>`, `<arm>†`): per-seed confusion matrices of the paired seeds, and the seeds used."""
    rows = [r for r in latest_ok(rows) if r["dataset"] == dataset and not r.get("quick")]
    rows = [r for r in rows if r["config_key"] == _headline_key(rows, r["arm"])]
    by_seed = {(r["arm"], r["seed"]): r for r in rows}
    seeds = sorted(s for (a, s) in by_seed if a == arm and (BASELINE_ARM, s) in by_seed)
    matrices: dict[str, list[np.ndarray]] = {}
    used = []
    for seed in seeds:
        preds = {"arm": _predictions(by_seed[(arm, seed)], predictions_dir)}
        preds["lora"] = _predictions(by_seed[(BASELINE_ARM, seed)], predictions_dir)
        if not preds["arm"] or not preds["lora"]:
            continue
        if preds["arm"]["id"] != preds["lora"]["id"]:
            raise ValueError(f"seed {seed}: {arm} and {BASELINE_ARM} predicted different test rows.")
        labels = np.asarray(preds["arm"]["label"])
        num_labels = int(by_seed[(arm, seed)].get("num_labels") or 0) or int(labels.max()) + 1
        used.append(seed)
        for source, view in VIEWS:
            if view not in preds[source]["predictions"]:
                continue
            name = {"iid": "LoRA", "fine": arm, "coarse": f"{arm}†"}[view]
            predicted = np.asarray(preds[source]["predictions"][view])
            num = max(num_labels, int(predicted.max()) + 1)
            matrices.setdefault(name, []).append(confusion(labels, predicted, num))
    return {"matrices": matrices, "seeds": used}


def render(result: dict[str, Any], dataset: str, arm: str) -> str:
    matrices: dict[str, list[np.ndarray]] = result["matrices"]
    seeds = result["seeds"]
    lines = [
        f"## {dataset}: per-class recall and prediction share, LoRA vs {arm}",
        "",
        f"Paired seeds: {', '.join(map(str, seeds)) or 'none'}. Recall = share of the class's test rows predicted as "
        "that class; share = share of all test rows predicted as the class (the true share is in the first row). "
        "Mean over seeds, in %.",
    ]
    if not matrices:
        return "\n".join(lines) + "\n"
    num = max(m[0].shape[0] for m in matrices.values())
    first = next(iter(matrices.values()))[0]
    true_share = 100 * first.sum(1) / first.sum()
    header = "| view | " + " | ".join(f"class {k} recall / share" for k in range(num)) + " | macro recall |"
    lines += ["", header, "|---" * (num + 2) + "|"]
    lines.append("| (test rows) | " + " | ".join(f"– / {s:.1f}" for s in true_share) + " | – |")
    for name, per_seed in matrices.items():
        recalls = np.mean([np.diag(m) / np.maximum(m.sum(1), 1) for m in per_seed], axis=0)
        shares = np.mean([m.sum(0) / m.sum() for m in per_seed], axis=0)
        cells = " | ".join(f"{100 * r:.1f} / {100 * s:.1f}" for r, s in zip(recalls, shares, strict=True))
        lines.append(f"| {name} | {cells} | {100 * recalls.mean():.1f} |")
    for name, per_seed in matrices.items():
        total = np.sum(per_seed, axis=0)
        lines += ["", f"### {name}: confusion summed over seeds (row = true class, column = predicted)", ""]
        lines += ["| true \\ pred | " + " | ".join(str(k) for k in range(total.shape[1])) + " |"]
        lines += ["|---" * (total.shape[1] + 1) + "|"]
        lines += [f"| {k} | " + " | ".join(str(int(v)) for v in row) + " |" for k, row in enumerate(total)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", help="results.jsonl of the accuracy runner")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--arm", default="m2a-joint")
    parser.add_argument("--predictions_dir", default=None, help="folder of <arm>-seed<k>.json prediction files")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    predictions_dir = Path(args.predictions_dir) if args.predictions_dir else None
    result = class_tables(load_rows(args.results), args.dataset, args.arm, predictions_dir)
    text = render(result, args.dataset, args.arm)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    print(text)
    return text


if __name__ == "__main__":
    main()
