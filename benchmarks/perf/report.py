"""Markdown table, target checks and bar chart from the benchmark's `results.json`.

python -m benchmarks.perf.report outputs/perf/results.json   # rewrites results.md and perf.png beside it
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.perf.targets import RATIO_TARGETS, REFERENCE_ARM


BASE_USERS = 100
TARGET_SETTING = ("bert-base", 256)
"""Where the materialised-baseline targets are judged (the reference's own scale: BERT-base, long inputs)."""
CONTENDED_BELOW = 0.8  # CPU utilisation of the timed steps under which an arm is flagged as contended
ARM_LABELS = {
    "lora_r8": "peft LoRA r=8",
    "lora_r128": "peft LoRA r=128",
    "full_ft": "full fine-tuning",
    "m2a_joint": "M2A joint",
    "m2a_stochastic": "M2A stochastic",
    "m2a_fine": "M2A single view (fine)",
    "m2a_unknown": "M2A all ids unknown",
    "materialised": "materialised Kronecker (reference)",
}


def _ok(run: dict[str, Any] | None) -> bool:
    return run is not None and run.get("status") == "ok"


def _users(run: dict[str, Any]) -> int:
    return run["spec"]["attributes"]["user"]


def _key(run: dict[str, Any]) -> tuple[str, str, int, int]:
    spec = run["spec"]
    return spec["arm"], spec["backbone"], spec["seq_len"], _users(run)


def _index(runs: list[dict[str, Any]]) -> dict[tuple[str, str, int, int], dict[str, Any]]:
    return {_key(r): r for r in runs}


def _fmt(value: float | None, digits: int = 0, suffix: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}{suffix}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if (a is not None and b) else None


def step_ms(run: dict[str, Any] | None) -> float | None:
    return run["train"]["step_ms"] if _ok(run) else None


def peak_mb(run: dict[str, Any] | None) -> float | None:
    """Training peak: the CUDA allocator's on a GPU, else the process's resident set."""
    if not _ok(run):
        return None
    return run["train"].get("gpu_peak_mb", run["train"]["rss_peak_mb"])


def increase_mb(run: dict[str, Any] | None) -> float | None:
    if not _ok(run):
        return None
    return run["train"].get("gpu_increase_mb", run["train"]["rss_increase_mb"])


def infer_ms(run: dict[str, Any] | None) -> float | None:
    return run["infer"]["batch_ms"] if _ok(run) else None


def cpu_utilisation(run: dict[str, Any] | None) -> float | None:
    """Median CPU time of a timed step or batch ÷ (its wall time × threads), the lower of training and inference: ~1
    when the arm had its cores to itself, well below 1 when other processes took them (OpenMP threads then wait on
    each other, and timings balloon)."""
    if not _ok(run):
        return None
    threads = run.get("threads") or run["spec"]["threads"]
    values = [
        run[phase]["cpu_median_ms"] / (run[phase][key] * threads)
        for phase, key in (("train", "step_ms"), ("infer", "batch_ms"))
        if run[phase].get("cpu_median_ms") is not None and run[phase][key]
    ]
    return min(values) if values else None


def contended(run: dict[str, Any] | None) -> bool:
    util = cpu_utilisation(run)
    return util is not None and util < CONTENDED_BELOW and run["spec"]["device"] == "cpu"


def _mark(run: dict[str, Any] | None) -> str:
    return " †" if contended(run) else ""


def infer_peak_mb(run: dict[str, Any] | None) -> float | None:
    if not _ok(run):
        return None
    return run["infer"].get("gpu_peak_mb", run["infer"]["rss_peak_mb"])


def samples_per_s(run: dict[str, Any] | None) -> float | None:
    return run["infer"]["samples_per_s"] if _ok(run) else None


# ----------------------------------------------------------------------------------------------------------------------
# Targets
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class Target:
    arm: str
    other: str  # the arm it is compared with
    metric: Callable[[dict[str, Any] | None], float | None]
    limit: float
    kind: str  # "<=" : metric(arm) / metric(other) <= limit;  ">=": >= limit
    what: str


PHASE_METRICS = {"train": (step_ms, "step time"), "inference": (infer_ms, "inference time per batch (unmerged)")}
"""How a `targets.RATIO_TARGETS` phase is measured here, and its name in the report."""

BASELINE_TARGETS = [
    Target("materialised", "m2a_fine", step_ms, 3.0, ">=", "materialised-baseline step time"),
    Target("m2a_fine", "materialised", peak_mb, 0.5, "<=", "M2A single-view training peak RSS"),
]
"""Against the reference's algorithm (materialised Kronecker products), judged at `TARGET_SETTING` or the largest
setting that ran; only this runner measures them."""


def _judge(target: Target, a: dict[str, Any], b: dict[str, Any], where: str) -> str:
    value = _ratio(target.metric(a), target.metric(b))
    if value is None:
        return f"- **n/a** {target.what}: a run failed ({where})."
    passed = value <= target.limit if target.kind == "<=" else value >= target.limit
    extra = ""
    if target.metric is peak_mb:
        extra = f"; increase over the built model: {_fmt(_ratio(increase_mb(a), increase_mb(b)), 2)}×"
    elif contended(a) or contended(b):
        extra = "; **† contended: timing unreliable**"
    rel = f"{value:.2f}× `{target.other}` (target {target.kind} {target.limit}×)"
    return f"- **{'PASS' if passed else 'MISS'}** {target.what}: {rel} [{where}]{extra}"


def check_targets(runs: list[dict[str, Any]]) -> list[str]:
    """PASS/MISS/n/a lines: `targets.RATIO_TARGETS` at their own settings, then `BASELINE_TARGETS`, then the sweep.

    The time ratios here come from one process per arm; `interleaved.py` measures the same targets with the arms
    taking turns in one process, which holds up better on a shared machine."""
    index = _index([r for r in runs if "spec" in r])
    lines = []
    for (backbone, seq_len), targets in RATIO_TARGETS.items():
        where = f"{backbone}, seq {seq_len}"
        for (phase, arm), limit in targets.items():
            metric, name = PHASE_METRICS[phase]
            target = Target(arm, REFERENCE_ARM, metric, limit, "<=", f"{ARM_LABELS.get(arm, arm)} {name}")
            a = index.get((arm, backbone, seq_len, BASE_USERS))
            b = index.get((REFERENCE_ARM, backbone, seq_len, BASE_USERS))
            if a is None or b is None:
                lines.append(f"- **n/a** {target.what}: `{arm}` or `{REFERENCE_ARM}` was not run at {where}.")
            else:
                lines.append(_judge(target, a, b, where))
    for target in BASELINE_TARGETS:
        candidates = [
            (b, s)
            for (arm, b, s, u) in index
            if arm == target.arm and u == BASE_USERS and (target.other, b, s, BASE_USERS) in index
        ]
        ordered = sorted(candidates, key=lambda c: (c == TARGET_SETTING, c[0] == "bert-base", c[1]), reverse=True)
        if not ordered:
            lines.append(f"- **n/a** {target.what}: `{target.arm}` or `{target.other}` was not run.")
            continue
        setting = ordered[0]
        where = f"{setting[0]}, seq {setting[1]}" + (
            "" if setting == TARGET_SETTING else " — *not the target setting*"
        )
        lines.append(
            _judge(
                target, index[(target.arm, *setting, BASE_USERS)], index[(target.other, *setting, BASE_USERS)], where
            )
        )
    lines += _sweep_targets(runs)
    return lines


def _sweep_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((r for r in runs if r.get("spec", {}).get("sweep")), key=_users)


def _sweep_targets(runs: list[dict[str, Any]]) -> list[str]:
    sweep = _sweep_runs(runs)
    if len(sweep) < 2:
        return ["- **n/a** growth with the number of users: the sweep was not run."]
    first, last = sweep[0], sweep[-1]
    where = f"{first['spec']['backbone']}, seq {first['spec']['seq_len']}, users {_users(first):,} → {_users(last):,}"
    lines = []
    for what, metric in (("step time", step_ms), ("training peak RSS", peak_mb)):
        grow = _ratio(metric(last), metric(first))
        if grow is None:
            lines.append(f"- **n/a** {what} growth [{where}]: a run failed.")
            continue
        pct = 100 * (grow - 1)
        extra = ""
        if metric is peak_mb:
            table = 4 * (_users(last) - _users(first)) * _embedding_dim(last) / 2**20
            extra = (
                f"; the user table's weight + gradient + two AdamW moments add {4 * table:,.0f} MB "
                f"(4 × {table:,.0f} MB)"
            )
        if metric is step_ms and (contended(first) or contended(last)):
            extra = "; **† contended: timing unreliable**"
        lines.append(
            f"- **{'PASS' if pct < 10 else 'MISS'}** {what} growth {pct:+.1f} % (target < 10 %) [{where}]{extra}"
        )
    return lines


def _embedding_dim(run: dict[str, Any]) -> int:
    params = run.get("params", {}).get("actual", {})
    values = params.get("value_embeddings")
    total = sum(run["spec"]["attributes"].values())
    return values // total if values and total else 0


# ----------------------------------------------------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------------------------------------------------
def markdown(data: dict[str, Any]) -> str:
    meta, runs = data["meta"], data["runs"]
    machine, settings = meta["machine"], meta["settings"]
    index = _index([r for r in runs if "spec" in r])
    out = ["# m2a-hf performance benchmark", ""]
    out.append(
        f"`{meta['command']}` — {meta['started']} → {meta.get('finished', '?')} ({_fmt(meta.get('duration_s'), 0)} s). "
        f"Batch {settings['batch_size']}, {settings['threads']} threads "
        f"({'pinned to cores' if settings.get('bind_threads') else 'not pinned'}), device {settings['device']}, "
        f"{settings['dtype']}, malloc `{settings['malloc']}`, {settings['warmup']} warm-up + {settings['steps']} timed "
        f"steps (median), {settings['infer_batches']} timed inference batches (median)."
    )
    out.append("")
    out.append(
        f"Machine: {machine['cpu_model']}, {machine['available_cores']} cores available "
        f"({machine['cpu_count']} logical), {machine['memory_gb']} GB; torch {machine['torch']}, "
        f"transformers {machine['transformers']}, peft {machine['peft']}; commit `{(machine['git_commit'] or '?')[:12]}`"
        f"{' (dirty tree)' if machine.get('git_dirty') else ''}. Load average at start {meta['loadavg_start']}, "
        f"at end {meta.get('loadavg_end')}. OMP_WAIT_POLICY: {machine['env_threads'].get('OMP_WAIT_POLICY') or 'unset'}."
    )
    busy = max(meta["loadavg_start"][0], (meta.get("loadavg_end") or [0])[0])
    flagged = [r["id"] for r in runs if contended(r)]
    if flagged:
        out += ["", f"> **Contended arms** (CPU util < {CONTENDED_BELOW}, timings unreliable): {', '.join(flagged)}."]
    if busy > 0.5 * settings["threads"]:
        out += [
            "",
            f"> **Noisy run**: load average up to {busy} on {settings['threads']} threads — other processes shared the CPU, so timings (and their ratios) are unreliable.",
        ]

    out += ["", "## Targets", ""]
    out += check_targets(runs)

    out += ["", "## Results", ""]
    if settings["device"].startswith("cuda"):
        memory = "Peak = `torch.cuda.max_memory_allocated` during the training warm-up"
    else:
        allocator = "MALLOC_* variables set" if settings["malloc"] == "env" else "glibc defaults"
        memory = f"Peak = peak resident memory of the arm's process during the training warm-up ({allocator})"
    out.append(
        "Ratios are against peft LoRA r=128 of the same backbone and sequence length (time ratios: > 1 is slower). "
        f"{memory}, Δ = its increase over the built model. Inference: eval mode, no_grad; ratio = time per batch. "
        f"CPU util = CPU time ÷ (wall time × threads) of the timed steps and batches (the lower); † = below {CONTENDED_BELOW}: other processes "
        "took the cores, that arm's timings are unreliable."
    )
    out.append("")
    header = [
        "arm",
        "backbone",
        "seq",
        "step ms",
        "× LoRA-128",
        "peak MB",
        "Δ MB",
        "× LoRA-128",
        "infer samples/s",
        "× LoRA-128 (time)",
        "infer peak MB",
        "trainable params",
        "CPU util",
    ]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "|".join(["---"] + ["---"] * 2 + ["---:"] * (len(header) - 3)) + "|")
    grid = [r for r in runs if r.get("kind") == "grid" and "spec" in r]
    for run in grid:
        arm, backbone, seq, _ = _key(run)
        ref = index.get((REFERENCE_ARM, backbone, seq, BASE_USERS))
        if not _ok(run):
            out.append(f"| {arm} | {backbone} | {seq} | **failed**: {run.get('error', '?')[:80]} |" + " |" * 9)
            continue
        out.append(
            "| "
            + " | ".join(
                [
                    arm,
                    backbone,
                    str(seq),
                    _fmt(step_ms(run)),
                    _fmt(_ratio(step_ms(run), step_ms(ref)), 2),
                    _fmt(peak_mb(run)),
                    _fmt(increase_mb(run)),
                    _fmt(_ratio(peak_mb(run), peak_mb(ref)), 2),
                    _fmt(samples_per_s(run), 1),
                    _fmt(_ratio(infer_ms(run), infer_ms(ref)), 2),
                    _fmt(infer_peak_mb(run)),
                    f"{run['params']['trainable']:,}",
                    _fmt(cpu_utilisation(run), 2) + _mark(run),
                ]
            )
            + " |"
        )

    sweep = _sweep_runs(runs)
    if sweep:
        out += ["", "## Number of attribute values (M2A single view)", ""]
        out.append(
            "| users | backbone | seq | step ms | growth | peak MB | Δ MB | growth | value-embedding params | trainable params |"
        )
        out.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        first = sweep[0]
        for run in sweep:
            if not _ok(run):
                out.append(f"| {_users(run):,} | **failed**: {run.get('error', '?')[:80]} |" + " |" * 8)
                continue
            g_step, g_peak = _ratio(step_ms(run), step_ms(first)), _ratio(peak_mb(run), peak_mb(first))
            out.append(
                f"| {_users(run):,} | {run['spec']['backbone']} | {run['spec']['seq_len']} | {_fmt(step_ms(run))}{_mark(run)} | "
                f"{_fmt(None if g_step is None else 100 * (g_step - 1), 1, ' %')} | {_fmt(peak_mb(run))} | "
                f"{_fmt(increase_mb(run))} | {_fmt(None if g_peak is None else 100 * (g_peak - 1), 1, ' %')} | "
                f"{run['params']['actual'].get('value_embeddings', 0):,} | {run['params']['trainable']:,} |"
            )

    out += ["", "## Trainable parameters vs the closed form", ""]
    checked = [r for r in runs if _ok(r) or r.get("param_check_failed")]
    bad = [r for r in runs if r.get("param_check_failed")]
    seen = set()
    for run in checked:
        arm, backbone, _, users = _key(run)
        if (arm, backbone, users) in seen or "params" not in run:
            continue
        seen.add((arm, backbone, users))
        params = run["params"]
        out.append(
            f"- {arm} ({backbone}, {users:,} users): {params['actual']['trainable']:,} counted, "
            f"{params['expected_closed_form']['trainable']:,} closed form — {params['check']}"
        )
    if not seen:
        out.append("- no arm was built.")
    if bad:
        out.append("")
        out.append(f"**FAILED**: the counts differ from the closed form for {[r['id'] for r in bad]}.")

    failed = [r for r in runs if not _ok(r)]
    if failed:
        out += ["", "## Failed runs", ""]
        out += [f"- `{r['id']}`: {r.get('error')} (log: `{r.get('log')}`)" for r in failed]

    profiled = [r for r in runs if _ok(r) and r.get("profile")]
    for run in profiled:
        out += [
            "",
            f"## Profile of one training step: {run['id']}",
            "",
            "| op | calls | self CPU ms | % |",
            "|---|---:|---:|---:|",
        ]
        for op in run["profile"]["top_ops"][:15]:
            out.append(f"| `{op['op']}` | {op['calls']} | {op['self_cpu_ms']:.1f} | {op['self_cpu_pct']:.1f} |")

    spread = [
        (r["id"], statistics.pstdev(r["train"]["all_ms"][r["train"]["skipped"] :]) / r["train"]["step_ms"])
        for r in runs
        if _ok(r) and len(r["train"]["all_ms"]) - r["train"]["skipped"] > 1
    ]
    if spread:
        worst = max(spread, key=lambda x: x[1])
        out += ["", f"Largest step-time spread: {worst[0]} (σ/median {100 * worst[1]:.0f} %)."]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------------------------------
# Chart
# ----------------------------------------------------------------------------------------------------------------------
def plot(data: dict[str, Any], path: Path) -> Path | None:
    try:
        from matplotlib import colormaps
        from matplotlib.figure import Figure  # a Figure of its own: no pyplot, no global backend
    except ImportError:
        return None
    runs = [r for r in data["runs"] if "spec" in r]
    index = _index(runs)
    grid = [r for r in runs if r.get("kind") == "grid"]
    settings = sorted(
        {(r["spec"]["backbone"], r["spec"]["seq_len"]) for r in grid}, key=lambda s: (s[0] != "minilm", s[1])
    )
    arms = [a for a in ARM_LABELS if any(r["spec"]["arm"] == a for r in grid)]
    sweep = _sweep_runs(runs)
    ncols = 3 + bool(sweep)
    fig = Figure(figsize=(5.2 * ncols, 5.0))
    axes = fig.subplots(1, ncols)
    width = 0.8 / max(len(arms), 1)
    panels = [
        ("training step time ÷ LoRA r=128", step_ms, True),
        ("training peak memory (MB)", peak_mb, False),
        ("inference time per batch ÷ LoRA r=128", infer_ms, True),
    ]
    colors = colormaps["tab10"]
    for ax, (title, metric, relative) in zip(axes[: len(panels)], panels, strict=True):
        for j, arm in enumerate(arms):
            values = []
            for backbone, seq in settings:
                value = metric(index.get((arm, backbone, seq, BASE_USERS)))
                if relative:
                    value = _ratio(value, metric(index.get((REFERENCE_ARM, backbone, seq, BASE_USERS))))
                values.append(value if value is not None else 0.0)
            xs = [i + (j - (len(arms) - 1) / 2) * width for i in range(len(settings))]
            ax.bar(xs, values, width, label=ARM_LABELS[arm], color=colors(j))
        if relative:
            ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_xticks(range(len(settings)), [f"{b}\nseq {s}" for b, s in settings])
        ax.set_title(title, fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(arms), 8), fontsize=8, frameon=False)
    if sweep:
        ax = axes[-1]
        labels = [f"{_users(r):,}" for r in sweep]
        base_step, base_peak = step_ms(sweep[0]), peak_mb(sweep[0])
        xs = range(len(sweep))
        ax.bar([x - 0.2 for x in xs], [_ratio(step_ms(r), base_step) or 0 for r in sweep], 0.4, label="step time")
        ax.bar([x + 0.2 for x in xs], [_ratio(peak_mb(r), base_peak) or 0 for r in sweep], 0.4, label="peak memory")
        ax.axhline(1.1, color="red", linewidth=0.8, linestyle="--", label="+10 %")
        ax.set_xticks(list(xs), labels)
        ax.set_xlabel("users")
        spec = sweep[0]["spec"]
        ax.set_title(
            f"M2A fine view vs users ({spec['backbone']}, seq {spec['seq_len']}), ÷ {_users(sweep[0])} users",
            fontsize=10,
        )
        ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=120)
    return path


def write_report(data: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write `results.md` and `perf.png` into `out_dir`; return the written paths."""
    out_dir = Path(out_dir)
    md = out_dir / "results.md"
    md.write_text(markdown(data))
    written = [md]
    png = plot(data, out_dir / "perf.png")
    if png is not None:
        written.append(png)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rewrite results.md and perf.png from a results.json.")
    parser.add_argument("results", help="path to results.json")
    args = parser.parse_args(argv)
    path = Path(args.results)
    write_report(json.loads(path.read_text()), path.parent)
    return 0


__all__ = ["check_targets", "contended", "cpu_utilisation", "markdown", "plot", "write_report"]


if __name__ == "__main__":
    raise SystemExit(main())
