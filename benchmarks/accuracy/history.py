"""How much history does a value need? M2A's gain over LoRA by the number of training rows of the test sample's value.

    python -m benchmarks.accuracy.history outputs/accuracy/results.jsonl --dataset amazon-mi \\
        [--attributes user,item] [--arm m2a-joint] [--output history.md] [--png history.png]

For every seed that both `--arm` (its attribute-aware view) and `lora` ran, the test predictions the runner saved
(`test_predictions.json` in the run folder, or `<predictions_dir>/<arm>-seed<k>.json`) are joined with the number of
training rows of each test sample's attribute value in that run's data (rebuilt exactly as the runner built it), then
bucketed: 0 (unseen), 1, 2-3, 4-7, 8+. Per bucket: test rows, LoRA and M2A accuracy and RMSE (labels as ordinal
ratings), and the gain, mean ± sample std over the paired seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks.accuracy.report import latest_ok, load_rows, mean_std
from benchmarks.accuracy.run import benchmark_data
from m2a_hf.data import normalize_attribute_value
from m2a_hf.training import DataArguments


if TYPE_CHECKING:
    from matplotlib.figure import Figure


logger = logging.getLogger("accuracy.history")

BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0", 0, 0),
    ("1", 1, 1),
    ("2-3", 2, 3),
    ("4-7", 4, 7),
    ("8+", 8, None),
)
BASELINE_ARM = "lora"


def bucket_of(count: int) -> str:
    """The history bucket of a training-row count."""
    for name, low, high in BUCKETS:
        if count >= low and (high is None or count <= high):
            return name
    raise ValueError(f"count {count} is negative; expected >= 0.")


def history_counts(train_values: list[Any], test_values: list[Any]) -> np.ndarray:
    """For each test value, the number of training rows with the same (normalised) value; missing values count 0."""
    counts = Counter(normalize_attribute_value(v) for v in train_values)
    counts.pop(None, None)
    return np.asarray([counts.get(normalize_attribute_value(v), 0) for v in test_values], dtype=int)


def _predictions(row: dict[str, Any], predictions_dir: Path | None) -> dict[str, Any] | None:
    candidates = []
    if predictions_dir is not None:
        candidates.append(predictions_dir / f"{row['arm']}-seed{row['seed']}.json")
    if row.get("output_dir"):
        candidates.append(Path(row["output_dir"]) / "test_predictions.json")
    for path in candidates:
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    logger.warning(
        "no test predictions for %s seed %s (tried %s)", row["arm"], row["seed"], [str(p) for p in candidates]
    )
    return None


def _test_data(row: dict[str, Any]):
    """The run's data, rebuilt as the runner built it (fields a newer DataArguments lacks are ignored)."""
    known = {f.name for f in dataclasses.fields(DataArguments)}
    data_args = DataArguments(**{k: v for k, v in row["config"]["data"].items() if k in known})
    return benchmark_data(data_args, row["config"]["runner"])


def _headline_key(rows: list[dict[str, Any]], arm: str) -> str | None:
    """The configuration of `arm` with the most seeds (the first one on a tie): sensitivity runs of other settings
    are left out."""
    counts: dict[str, int] = {}
    for row in rows:
        if row["arm"] == arm:
            counts[row["config_key"]] = counts.get(row["config_key"], 0) + 1
    return max(counts, key=counts.get) if counts else None


def bucket_rows(
    rows: list[dict[str, Any]],
    dataset: str,
    attributes: list[str],
    arm: str,
    predictions_dir: Path | None = None,
    against: str = BASELINE_ARM,
) -> dict[str, list[dict[str, Any]]]:
    """Per attribute, one entry per bucket: rows, per-seed baseline/M2A accuracy and RMSE, and the paired seeds.

    `against` is `lora` (the LoRA arm of the same seed) or `coarse` (the same M2A model with its attributes dropped,
    which isolates what the per-value view buys)."""
    rows = [r for r in latest_ok(rows) if r["dataset"] == dataset and not r.get("quick")]
    rows = [r for r in rows if r["config_key"] == _headline_key(rows, r["arm"])]  # one configuration per arm
    by_seed = {(r["arm"], r["seed"]): r for r in rows}
    own = against == "coarse"  # the same model with its attributes dropped: what the per-value view buys
    seeds = sorted(s for (a, s) in by_seed if a == arm and (own or (BASELINE_ARM, s) in by_seed))
    per_seed: dict[str, dict[str, list[dict[str, float]]]] = {a: {b[0]: [] for b in BUCKETS} for a in attributes}
    sizes: dict[str, dict[str, int]] = {a: {} for a in attributes}
    used = []
    for seed in seeds:
        m2a_row = by_seed[(arm, seed)]
        m2a_pred = _predictions(m2a_row, predictions_dir)
        base_pred = m2a_pred if own else _predictions(by_seed[(BASELINE_ARM, seed)], predictions_dir)
        base_view = "coarse" if own else "iid"
        if not m2a_pred or not base_pred or "fine" not in m2a_pred["predictions"]:
            continue
        if base_view not in base_pred["predictions"]:
            logger.warning("seed %s: no %r test predictions (run with --predict_views all)", seed, base_view)
            continue
        if m2a_pred["id"] != base_pred["id"]:
            raise ValueError(f"seed {seed}: {arm} and {BASELINE_ARM} predicted different test rows.")
        data = _test_data(m2a_row)
        test = data["test"]  # the runner's ids: the `id` column, else row positions (as in run.run_arm)
        test_ids = [str(i) for i in (test["id"] if "id" in test.column_names else range(len(test)))]
        position = {i: n for n, i in enumerate(test_ids)}
        order = [position[str(i)] for i in m2a_pred["id"]]
        labels = np.asarray(m2a_pred["label"])
        m2a, base = np.asarray(m2a_pred["predictions"]["fine"]), np.asarray(base_pred["predictions"][base_view])
        used.append(seed)
        for attribute in attributes:
            counts = history_counts(list(data["train"][attribute]), [data["test"][attribute][i] for i in order])
            names = np.asarray([bucket_of(int(c)) for c in counts])
            for name, _, _ in BUCKETS:
                mask = names == name
                sizes[attribute][name] = int(mask.sum())
                if not mask.any():
                    continue
                y, p, q = labels[mask], m2a[mask], base[mask]
                per_seed[attribute][name].append(
                    {
                        "m2a_acc": float((p == y).mean()),
                        "lora_acc": float((q == y).mean()),
                        "m2a_rmse": float(np.sqrt(((p - y) ** 2).mean())),
                        "lora_rmse": float(np.sqrt(((q - y) ** 2).mean())),
                    }
                )
    out: dict[str, list[dict[str, Any]]] = {}
    for attribute in attributes:
        entries = []
        for name, _, _ in BUCKETS:
            values = per_seed[attribute][name]
            if not values:
                continue
            entry = {"bucket": name, "rows": sizes[attribute].get(name, 0), "seeds": len(values)}
            for key in ("m2a_acc", "lora_acc", "m2a_rmse", "lora_rmse"):
                entry[key] = mean_std([v[key] for v in values])
            entry["acc_gain"] = mean_std([100 * (v["m2a_acc"] - v["lora_acc"]) for v in values])
            entry["rmse_gain"] = mean_std([v["lora_rmse"] - v["m2a_rmse"] for v in values])
            entries.append(entry)
        out[attribute] = entries
    out["_seeds"] = used  # type: ignore[assignment]
    return out


def _pm(pair: tuple[float | None, float | None], fmt: str, scale: float = 1.0) -> str:
    mean, std = pair
    if mean is None:
        return "–"
    text = format(scale * mean, fmt)
    return text if std is None else f"{text} ± {format(scale * std, fmt.lstrip('+'))}"


def render(result: dict[str, Any], dataset: str, arm: str, against: str = BASELINE_ARM) -> str:
    seeds = result["_seeds"]
    other = f"{arm} † (attributes dropped)" if against == "coarse" else against
    base = "M2A†" if against == "coarse" else "LoRA"
    lines = [
        f"## {dataset}: {arm} vs {other} by training history of the test sample's value",
        "",
        f"Paired seeds: {', '.join(map(str, seeds)) or 'none'}. Bucket = training rows with the same value (0 = unseen). "
        f"acc in %, RMSE on the rating scale; gains are M2A minus {base} (accuracy points; RMSE: {base} minus M2A, "
        "so positive = M2A better). Mean ± sample std over seeds.",
    ]
    for attribute, entries in result.items():
        if attribute.startswith("_"):
            continue
        lines += [
            "",
            f"### by {attribute}",
            "",
            f"| history | test rows | {base} acc | M2A acc | acc gain | {base} RMSE | M2A RMSE | RMSE gain |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for e in entries:
            lines.append(
                f"| {e['bucket']} | {e['rows']} | {_pm(e['lora_acc'], '.1f', 100)} | {_pm(e['m2a_acc'], '.1f', 100)} | "
                f"{_pm(e['acc_gain'], '+.2f')} | {_pm(e['lora_rmse'], '.3f')} | {_pm(e['m2a_rmse'], '.3f')} | "
                f"{_pm(e['rmse_gain'], '+.3f')} |"
            )
    return "\n".join(lines) + "\n"


def figure(result: dict[str, Any], dataset: str, arm: str, against: str = BASELINE_ARM) -> Figure:
    """Bars of the accuracy gain per bucket, one panel per attribute (a matplotlib Figure)."""
    from matplotlib.figure import Figure

    attributes = [a for a in result if not a.startswith("_")]
    fig = Figure(figsize=(4.5 * max(1, len(attributes)), 3.4))
    axes = fig.subplots(1, max(1, len(attributes)), squeeze=False)[0]
    for ax, attribute in zip(axes, attributes, strict=False):
        entries = result[attribute]
        names = [e["bucket"] for e in entries]
        means = [e["acc_gain"][0] or 0.0 for e in entries]
        # one seed has no spread: no error bars rather than zero-length ones
        errs = [e["acc_gain"][1] for e in entries]
        yerr = None if all(err is None for err in errs) else [err or 0.0 for err in errs]
        positions = range(len(entries))
        ax.bar(positions, means, yerr=yerr, color=["#888" if n == "0" else "#3a7" for n in names], capsize=3)
        ax.axhline(0, color="black", linewidth=0.8)
        # the row count goes under the bucket name, where no bar can cover it
        ax.set_xticks(list(positions), [f"{name}\nn={e['rows']}" for name, e in zip(names, entries, strict=True)])
        ax.set_title(f"{dataset}: by {attribute}")
        ax.set_xlabel("training rows of the value")
        ax.set_ylabel(f"{arm} − {'M2A†' if against == 'coarse' else 'LoRA'} accuracy (pts)")
    fig.tight_layout()
    return fig


def plot(result: dict[str, Any], dataset: str, arm: str, path: str | Path, against: str = BASELINE_ARM) -> bool:
    """Write `figure` as a PNG; False when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        logger.warning("matplotlib is not installed; no chart written")
        return False
    figure(result, dataset, arm, against).savefig(path, dpi=120)
    return True


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", help="results.jsonl of the accuracy runner")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--attributes", default=None, help="comma-separated (default: the run's attribute_columns)")
    parser.add_argument("--arm", default="m2a-joint")
    parser.add_argument("--predictions_dir", default=None, help="folder of <arm>-seed<k>.json prediction files")
    parser.add_argument(
        "--against", default=BASELINE_ARM, choices=(BASELINE_ARM, "coarse"), help="lora, or the arm's own coarse view"
    )
    parser.add_argument("--output", default=None)
    parser.add_argument("--png", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    rows = load_rows(args.results)
    attributes = args.attributes
    if attributes is None:
        arm_rows = [r for r in rows if r["dataset"] == args.dataset and r["arm"] == args.arm]
        if not arm_rows:
            raise SystemExit(f"no {args.arm!r} rows for dataset {args.dataset!r} in {args.results}")
        attributes = arm_rows[-1]["config"]["data"]["attribute_columns"]
        if attributes is None:  # a built-in set that names its own attributes (synthetic): the model's, in order
            attributes = ",".join((arm_rows[-1].get("resolved_model_config") or {}).get("attributes") or {})
    names = [a.strip() for a in str(attributes).split(",") if a.strip()]
    if not names:
        raise SystemExit(f"no attributes known for {args.arm!r} on {args.dataset!r}: pass --attributes a,b")
    predictions_dir = Path(args.predictions_dir) if args.predictions_dir else None
    result = bucket_rows(rows, args.dataset, names, args.arm, predictions_dir, against=args.against)
    text = render(result, args.dataset, args.arm, args.against)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    if args.png:
        plot(result, args.dataset, args.arm, args.png, args.against)
    print(text)
    return text


if __name__ == "__main__":
    main()
