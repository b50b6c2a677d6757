"""Turns the accuracy benchmark's JSON lines into a markdown report and a bar chart.

    python -m benchmarks.accuracy.report outputs/accuracy/results.jsonl [--output report.md] [--png accuracy.png]

One table per (dataset, protocol, quick) group: a row per arm and view (M2A arms give the attribute-aware view, M2A†
after stage 2 and M2A† before it), mean ± sample std over seeds where a row has ≥ 2 seeds, and Δ accuracy against the
`lora` row of the same group. FDU-MTL groups (any group whose rows carry per-value accuracies) also get a per-domain
table, groups with `m2a-joint` and other M2A arms (ablations, KL) a paired-seed ablation table beside the paper's
Table 3 gaps, and every group a check of the benchmark's targets. Rows of `--quick` runs are labelled as smoke tests.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.accuracy.keys import keyed_config, resolved_record, row_key


logger = logging.getLogger("accuracy.report")

# (view key in the row, suffix in the table); views missing from a row are skipped.
VIEWS: tuple[tuple[str, str], ...] = (
    ("iid", ""),
    ("fine", ""),
    ("coarse", " †"),
    ("coarse_stage1", " † before stage 2"),
)
BASELINE = ("lora", "iid")
M2A_ARMS = ("m2a-joint", "m2a-stochastic")  # the default view policy (the reference's) first, then the one-pass one
MIN_SEEDS = 3
REFERENCE_ARM = "m2a-joint"  # ablations are compared with the reference behaviour, on the seeds both ran
# The paper's Table 3 (B-M2A‡, FDU-MTL test accuracy): full M2A minus the ablated model, in points.
PAPER_ABLATION_GAPS = {("fdu-mtl", "m2a-no-fine"): 93.86 - 92.78, ("fdu-mtl", "m2a-no-mlm"): 93.86 - 92.70}
RMSE_GAIN = 0.02  # amazon-mi: M2A's RMSE at least 2 % below LoRA's
HALF_TIME_RATIO = 0.6  # "about half the training time": stochastic/joint train-runtime ratio at most this


# ----------------------------------------------------------------------------------------------------------------------
# Loading and aggregation
# ----------------------------------------------------------------------------------------------------------------------
def load_rows(path: str | Path) -> list[dict[str, Any]]:
    """All JSON rows of a JSONL file (a malformed line is skipped with a warning), each `config_key` as today's
    canonical form makes it from the row's record (`keys.row_key`)."""
    rows = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                logger.warning("%s:%d: not JSON (%s); skipped", path, number, err)
    for row in rows:
        row["config_key"] = row_key(row)
    return rows


def latest_ok(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Successful rows, the newest one per configuration and seed (a `--force` re-run replaces the older row)."""
    latest: dict[tuple[Any, Any], dict[str, Any]] = {}
    for row in rows:
        if row.get("status") == "ok":
            latest[(row.get("config_key"), row.get("seed"))] = row
    return list(latest.values())


def group_key(row: dict[str, Any]) -> tuple[str, str, bool]:
    return (str(row["dataset"]), str(row["protocol"]), bool(row.get("quick")))


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _settings(row: dict[str, Any]) -> dict[str, Any]:
    """What of the row's configuration determines its result (`keys.keyed_config`), as flat `field: value` over the
    model, data, procedure and training sections."""
    record = {section: {} for section in ("arm", "model", "data", "procedure", "training", "runner")}
    record.update(resolved_record(row) or row.get("config") or {})
    config = keyed_config(record)
    return {
        name: value
        for section in ("model", "data", "procedure", "training")
        for name, value in config[section].items()
    }


def _short(value: Any) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


def _arm_labels(rows: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """Display name per (arm, config_key): the arm name, plus what sets the configuration apart when one arm ran with
    several (`lora [learning_rate=0.0002]`: the fields every configuration records and that differ between them),
    or the key's first characters when no recorded field differs."""
    configs: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        configs[row["arm"]].setdefault(row["config_key"], _settings(row))
    labels = {}
    for arm, by_key in configs.items():
        if len(by_key) == 1:
            labels[(arm, next(iter(by_key)))] = arm
            continue
        shared = set.intersection(*(set(settings) for settings in by_key.values()))
        differing = sorted(
            name for name in shared if len({json.dumps(s[name], sort_keys=True) for s in by_key.values()}) > 1
        )
        for key, settings in by_key.items():
            tag = ", ".join(f"{name}={_short(settings[name])}" for name in differing) or key[:6]
            labels[(arm, key)] = f"{arm} [{tag}]"
    return labels


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (arm, configuration, view) of a group, in arm order (lora first, then first appearance)."""
    by_config: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_config[(row["arm"], row["config_key"])].append(row)
    order = sorted(by_config, key=lambda k: (k[0] != "lora", k[0] != "fft", _first_index(rows, k)))
    labels = _arm_labels(rows)
    entries = []
    for arm, key in order:
        seeded = sorted(by_config[(arm, key)], key=lambda r: r["seed"])
        # without the fine view (the no-fine ablation) the attribute-aware view *is* the coarse one: no † rows
        no_fine = all((r.get("config") or {}).get("model", {}).get("use_fine_view") is False for r in seeded)
        for view, suffix in VIEWS:
            if no_fine and view.startswith("coarse"):
                continue
            present = [r for r in seeded if view in r["metrics"]["views"]]
            if not present:
                continue
            metric = {
                name: mean_std([r["metrics"]["views"][view].get(name) for r in present])
                for name in ("accuracy", "rmse", "macro_f1", "seen_accuracy", "unseen_accuracy")
            }
            metric["train_minutes"] = mean_std([r.get("train_seconds", 0) / 60 for r in present])
            metric["train_runtime"] = mean_std([_train_runtime(r) for r in present])
            entries.append(
                {
                    "arm": arm,
                    "config_key": key,
                    "view": view,
                    "label": labels[(arm, key)] + suffix,
                    "seeds": [r["seed"] for r in present],
                    "metrics": metric,
                    "counts": present[0]["metrics"]["views"][view],
                    "rows": present,
                }
            )
    return entries


def _first_index(rows: list[dict[str, Any]], key: tuple[str, str]) -> int:
    return next(i for i, r in enumerate(rows) if (r["arm"], r["config_key"]) == key)


def _train_runtime(row: dict[str, Any]) -> float | None:
    dev = row.get("dev") or {}
    total = sum((stage or {}).get("train_runtime_seconds") or 0.0 for stage in dev.values())
    return total or None


def _find(entries: list[dict[str, Any]], arm: str, view: str) -> dict[str, Any] | None:
    matches = [e for e in entries if e["arm"] == arm and e["view"] == view]
    return max(matches, key=lambda e: len(e["seeds"])) if matches else None


# ----------------------------------------------------------------------------------------------------------------------
# Formatting
# ----------------------------------------------------------------------------------------------------------------------
def _fmt(pair: tuple[float | None, float | None], scale: float = 100.0, digits: int = 2) -> str:
    mean, std = pair
    if mean is None:
        return "–"
    text = f"{mean * scale:.{digits}f}"
    return text + (f" ± {std * scale:.{digits}f}" if std is not None else "")


def _delta(value: float | None, reference: float | None) -> str:
    if value is None or reference is None:
        return "–"
    return f"{100 * (value - reference):+.2f}"


def results_table(entries: list[dict[str, Any]]) -> str:
    baseline = _find(entries, *BASELINE)
    reference = baseline["metrics"]["accuracy"][0] if baseline else None
    lines = [
        "| arm | seeds | acc | RMSE | macro-F1 | seen acc | unseen acc | train min | Δ acc vs lora |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        m = e["metrics"]
        is_reference = baseline is not None and e is baseline
        lines.append(
            f"| {e['label']} | {len(e['seeds'])} | {_fmt(m['accuracy'])} | {_fmt(m['rmse'], 1.0, 3)} | "
            f"{_fmt(m['macro_f1'])} | {_fmt(m['seen_accuracy'])} | {_fmt(m['unseen_accuracy'])} | "
            f"{_fmt(m['train_minutes'], 1.0, 1)} | {'—' if is_reference else _delta(m['accuracy'][0], reference)} |"
        )
    return "\n".join(lines)


def per_group_table(entries: list[dict[str, Any]]) -> str | None:
    """Per-value accuracy (e.g. per FDU-MTL domain), mean over seeds, for the views that have it; None if none do."""
    columns = []
    for e in entries:
        view = e["view"]
        per = [(r["metrics"].get("per_group") or {}).get("views", {}).get(view) for r in e["rows"]]
        if per and all(p is not None for p in per):
            attribute = e["rows"][0]["metrics"]["per_group"]["attribute"]
            columns.append((e["label"], per, attribute))
    if not columns:
        return None
    values = list(dict.fromkeys(v for _, per, _ in columns for p in per for v in p["values"]))
    attribute = columns[0][2]
    lines = [
        f"| {attribute} | n | " + " | ".join(label for label, _, _ in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for value in values:
        count = next(p["values"][value]["count"] for _, per, _ in columns for p in per if value in p["values"])
        cells = [_fmt(mean_std([p["values"].get(value, {}).get("accuracy") for p in per])) for _, per, _ in columns]
        lines.append(f"| {value} | {count} | " + " | ".join(cells) + " |")
    averages = [_fmt(mean_std([p["mean_accuracy"] for p in per])) for _, per, _ in columns]
    lines.append("| **Avg.** | | " + " | ".join(averages) + " |")
    return "\n".join(lines)


def _paired(a: dict[str, Any], b: dict[str, Any], view: str) -> tuple[list[int], float, float | None]:
    """Seeds both entries ran, mean accuracy difference a − b (points) and mean train-runtime ratio a / b on them."""
    rows_a = {r["seed"]: r for r in a["rows"]}
    rows_b = {r["seed"]: r for r in b["rows"]}
    seeds = sorted(set(rows_a) & set(rows_b))
    diffs = [
        100 * (rows_a[k]["metrics"]["views"][view]["accuracy"] - rows_b[k]["metrics"]["views"][view]["accuracy"])
        for k in seeds
    ]
    ratios = [
        _train_runtime(rows_a[k]) / _train_runtime(rows_b[k])
        for k in seeds
        if _train_runtime(rows_a[k]) and _train_runtime(rows_b[k])
    ]
    return seeds, (sum(diffs) / len(diffs) if diffs else math.nan), (sum(ratios) / len(ratios) if ratios else None)


def ablation_table(dataset_key: str, entries: list[dict[str, Any]]) -> str | None:
    """`m2a-joint` minus every other M2A arm (ablations, KL), attribute-aware view, on the seeds both ran; the paper's
    gap where Table 3 has one. None when there is no `m2a-joint` row or no other M2A arm."""
    reference = _find(entries, REFERENCE_ARM, "fine")
    others = [e for e in entries if e["view"] == "fine" and e["arm"] not in (REFERENCE_ARM, *M2A_ARMS)]
    if reference is None or not others:
        return None
    lines = [
        f"| {REFERENCE_ARM} minus | paired seeds | Δ acc (pts) | variant train time × | paper (B-M2A‡, Table 3) |",
        "|---|---|---|---|---|",
    ]
    for entry in others:
        seeds, diff, ratio = _paired(reference, entry, "fine")
        if not seeds:
            continue
        paper = PAPER_ABLATION_GAPS.get((dataset_key, entry["arm"]))
        lines.append(
            f"| {entry['label']} | {','.join(map(str, seeds))} | {diff:+.2f} | "
            f"{'–' if ratio is None else f'×{1 / ratio:.2f}'} | {'–' if paper is None else f'{paper:+.2f}'} |"
        )
    return "\n".join(lines) if len(lines) > 2 else None


def targets(dataset_key: str, entries: list[dict[str, Any]], quick: bool) -> list[tuple[str, str, str]]:
    """The benchmark's targets for a group: (target, measured, status) with status PASS / FAIL / n/a. The M2A targets
    are checked for each view policy that ran (`m2a-joint`, the reference and default, and `m2a-stochastic`)."""

    def acc(entry):
        return entry["metrics"]["accuracy"][0] if entry else None

    def gain(entry) -> float | None:
        return None if (acc(entry) is None or acc(base) is None) else 100 * (acc(entry) - acc(base))

    def pts(value: float | None) -> str:
        return "–" if value is None else f"{value:+.2f} pts"

    checks: list[tuple[str, str, str]] = []

    def check(name: str, measured: str, ok: bool | None) -> None:
        status = "n/a" if ok is None else ("PASS" if ok else "FAIL")
        checks.append((name, measured, status + (" (quick: smoke test)" if quick and ok is not None else "")))

    base = _find(entries, *BASELINE)
    policies = [arm for arm in M2A_ARMS if _find(entries, arm, "fine")] or [M2A_ARMS[0]]
    for arm in policies:
        m2a, dagger = _find(entries, arm, "fine"), _find(entries, arm, "coarse")
        n = len(m2a["seeds"]) if m2a else 0
        seeds = f" ({n} seed{'s' if n != 1 else ''})" if m2a else ""
        if dataset_key == "fdu-mtl":
            g = gain(m2a)
            check(f"{arm} avg accuracy ≥ LoRA + 1.0", pts(g) + seeds, None if g is None else g >= 1.0)
        elif dataset_key == "clothing":
            g = gain(m2a)
            check(f"{arm} accuracy ≥ LoRA − 0.3 (does no harm)", pts(g) + seeds, None if g is None else g >= -0.3)
            rmse_m2a = m2a["metrics"]["rmse"][0] if m2a else None
            rmse_base = base["metrics"]["rmse"][0] if base else None
            ok = None if (rmse_m2a is None or rmse_base is None) else rmse_m2a <= rmse_base
            check(f"{arm} RMSE ≤ LoRA RMSE", "–" if ok is None else f"{rmse_m2a:.3f} vs {rmse_base:.3f}", ok)
            g = gain(dagger)
            check(f"{arm} † accuracy ≥ LoRA − 0.3", pts(g), None if g is None else g >= -0.3)
        elif dataset_key == "amazon-mi":  # user + item: where the attributes should show (RMSE, rare ratings)
            rmse_m2a = m2a["metrics"]["rmse"][0] if m2a else None
            rmse_base = base["metrics"]["rmse"][0] if base else None
            ok = None if (rmse_m2a is None or rmse_base is None) else rmse_m2a <= (1 - RMSE_GAIN) * rmse_base
            measured = "–" if ok is None else f"{rmse_m2a:.3f} vs {rmse_base:.3f} ({rmse_m2a / rmse_base - 1:+.1%})"
            check(f"{arm} RMSE ≥ {RMSE_GAIN:.0%} below LoRA's", measured + seeds, ok)
            g = gain(m2a)
            check(f"{arm} accuracy ≥ LoRA", pts(g) + seeds, None if g is None else g >= 0)
            f1_m2a = m2a["metrics"]["macro_f1"][0] if m2a else None
            f1_base = base["metrics"]["macro_f1"][0] if base else None
            ok = None if (f1_m2a is None or f1_base is None) else f1_m2a >= f1_base
            check(f"{arm} macro-F1 ≥ LoRA", "–" if ok is None else f"{100 * f1_m2a:.2f} vs {100 * f1_base:.2f}", ok)
        else:
            label = "gain over LoRA (reported, no threshold" + (
                "; synthetic data)" if dataset_key == "synthetic" else ")"
            )
            check(f"{arm} {label}", pts(gain(m2a)) + seeds, None)
    joint, stochastic = _find(entries, "m2a-joint", "fine"), _find(entries, "m2a-stochastic", "fine")
    if joint and stochastic:
        seeds, diff, ratio = _paired(stochastic, joint, "fine")
        measured = f"{diff:+.2f} pts, train time ×{ratio:.2f}" if ratio else f"{diff:+.2f} pts"
        ok = bool(seeds) and diff >= -0.5 and (ratio is not None and ratio <= HALF_TIME_RATIO)
        check(
            f"stochastic within 0.5 pts of joint at ≤ {HALF_TIME_RATIO}× its train time (paired seeds: "
            f"{','.join(map(str, seeds)) or 'none'})",
            measured,
            ok if seeds else None,
        )
    for name in ("lora", *policies):
        entry = _find(entries, name, "iid" if name == "lora" else "fine")
        n = len(entry["seeds"]) if entry else 0
        check(f"≥ {MIN_SEEDS} seeds for headline row {name}", str(n), n >= MIN_SEEDS if entry else None)
    return checks


def _group_header(key: tuple[str, str, bool], rows: list[dict[str, Any]]) -> list[str]:
    dataset, protocol, quick = key
    title = f"## {dataset} · protocol `{protocol}`" + (
        " · QUICK (smoke test: tiny subsets, 1 epoch — not a result)" if quick else ""
    )
    sizes = rows[0].get("data_sizes", {})
    commits = sorted({(r.get("git") or {}).get("commit") or "?" for r in rows})
    dirty = any((r.get("git") or {}).get("dirty") for r in rows)
    first = next(iter(rows[0]["metrics"]["views"].values()))
    lines = [
        title,
        "",
        f"data: train {sizes.get('train')} / dev {sizes.get('validation')} / test {sizes.get('test')} "
        f"(test seen {first.get('seen_count')}, unseen {first.get('unseen_count')}); "
        f"commit {', '.join(c[:10] for c in commits)}{' (dirty tree)' if dirty else ''}; "
        f"machine {rows[0].get('machine', {}).get('cuda') or str(rows[0].get('machine', {}).get('cpu_count')) + ' CPU cores'}.",
        "",
    ]
    return lines


def render(rows: list[dict[str, Any]], source: str = "") -> str:
    """The markdown report of all rows."""
    ok = latest_ok(rows)
    failed = [r for r in rows if r.get("status") != "ok"]
    lines = [
        "# M2A accuracy benchmark",
        "",
        f"Source: `{source}` — {len(ok)} result rows" + (f", {len(failed)} failed runs" if failed else "") + ".",
        "acc / macro-F1 / seen / unseen in %, RMSE on the rating scale (labels as ordinal ratings); mean ± sample std "
        "over seeds where a row has ≥ 2 seeds. `†` = M2A† (the same model with the attributes dropped at test time), "
        "after stage 2 unless marked. *seen* = test samples whose attribute value(s) occurred in training; *unseen* = "
        "the rest (routed to the unknown LoRAs). Δ = accuracy points against `lora` of the same group.",
        "",
    ]
    groups: dict[tuple[str, str, bool], list[dict[str, Any]]] = defaultdict(list)
    for row in ok:
        groups[group_key(row)].append(row)
    for key in sorted(groups, key=lambda k: (k[2], k[0], k[1])):
        group_rows = groups[key]
        entries = aggregate(group_rows)
        lines += _group_header(key, group_rows)
        lines += [results_table(entries), ""]
        per_group = per_group_table(entries)
        if per_group:
            lines += ["Per-value test accuracy:", "", per_group, ""]
        dataset_key = group_rows[0].get("dataset_key", key[0])
        ablations = ablation_table(dataset_key, entries)
        if ablations:
            lines += [
                f"Ablations: what the full model gains over each variant ({REFERENCE_ARM} − variant):",
                "",
                ablations,
                "",
            ]
        lines += ["Targets:", "", "| target | measured | status |", "|---|---|---|"]
        lines += [f"| {t} | {m} | {s} |" for t, m, s in targets(dataset_key, entries, key[2])]
        lines.append("")
    if failed:
        lines += ["## Failed runs", ""]
        lines += [f"- {r.get('dataset')} / {r.get('arm')} / seed {r.get('seed')}: {r.get('error')}" for r in failed]
        lines.append("")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: str | Path) -> bool:
    """Bar chart of test accuracy (mean ± std) per arm and view, one panel per group; False without matplotlib."""
    try:
        from matplotlib.figure import Figure  # a Figure of its own: no pyplot, no global backend
    except ImportError:
        logger.warning("matplotlib is not installed: no %s", path)
        return False
    groups: dict[tuple[str, str, bool], list[dict[str, Any]]] = defaultdict(list)
    for row in latest_ok(rows):
        groups[group_key(row)].append(row)
    if not groups:
        return False
    keys = sorted(groups, key=lambda k: (k[2], k[0], k[1]))
    fig = Figure(figsize=(10, 3.6 * len(keys)))
    axes = fig.subplots(len(keys), 1, squeeze=False)
    for ax, key in zip(axes[:, 0], keys, strict=True):
        entries = aggregate(groups[key])
        means = [100 * (e["metrics"]["accuracy"][0] or 0.0) for e in entries]
        stds = [100 * (e["metrics"]["accuracy"][1] or 0.0) for e in entries]
        colors = [
            "#7f7f7f" if e["view"] == "iid" else "#1f77b4" if e["view"] == "fine" else "#ff7f0e" for e in entries
        ]
        ax.bar(range(len(entries)), means, yerr=stds, color=colors, capsize=3)
        baseline = _find(entries, *BASELINE)
        if baseline:
            ax.axhline(100 * baseline["metrics"]["accuracy"][0], color="k", linestyle="--", linewidth=0.8)
        ax.set_xticks(range(len(entries)), [e["label"] for e in entries], rotation=30, ha="right", fontsize=8)
        low = min(means) if means else 0.0
        ax.set_ylim(max(0.0, low - 10), min(100.0, max(means) + 5) if means else 100.0)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{key[0]} · {key[1]}" + (" · QUICK (smoke test)" if key[2] else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def write_report(results: str | Path, output: str | Path | None = None, png: str | Path | None = None) -> str:
    """Writes `report.md` and `accuracy.png` (default: beside the results file) and returns the markdown."""
    results = Path(results)
    output = Path(output) if output else results.with_name("report.md")
    png = Path(png) if png else results.with_name("accuracy.png")
    rows = load_rows(results)
    markdown = render(rows, str(results))
    if plot(rows, png):
        markdown += f"\nChart: `{png}`\n"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(markdown, encoding="utf-8")
    return markdown


def estimate_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of `run.py --estimate` rows."""
    lines = [
        "| dataset | protocol | arm | train / dev / test | epochs (+ stage 2) | s/step stage 1 | s/step stage 2 | "
        "infer tokens/s | test passes | est. train / dev / test min | est. total min | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r["sizes"]
        load = (r.get("machine") or {}).get("load_average") or [None]
        est = {k: v / 60 for k, v in r["estimated_seconds"].items()}
        lines.append(
            f"| {r['dataset']} | {r['protocol']}{' (quick)' if r.get('quick') else ''} | {r['arm']} | "
            f"{s['train']} / {s['validation']} / {s['test']} | {s['epochs']:g} (+{s['stage2_epochs']:g}) | "
            f"{r['seconds_per_step']['stage1']} | {r['seconds_per_step']['stage2'] or '–'} | "
            f"{r['inference']['tokens_per_second']} | {s['test_passes']} | "
            f"{est['stage1_train'] + est['stage2_train']:.0f} / {est['dev_evals']:.0f} / {est['test_passes']:.0f} | "
            f"{r['estimated_minutes_total']:.0f} | {load[0] if load[0] is None else round(load[0], 1)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="results.jsonl written by run.py")
    parser.add_argument("--output", help="markdown file (default: report.md beside the results)")
    parser.add_argument("--png", help="bar chart (default: accuracy.png beside the results)")
    args = parser.parse_args(argv)
    markdown = write_report(args.results, args.output, args.png)
    print(markdown)
    return markdown


__all__ = ["aggregate", "estimate_table", "latest_ok", "load_rows", "mean_std", "plot", "render", "write_report"]


if __name__ == "__main__":
    main()
