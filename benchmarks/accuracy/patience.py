"""What would another early-stopping patience have kept? Replays the dev-accuracy curves that the runner records.

    python -m benchmarks.accuracy.patience RESULTS.jsonl [MORE.jsonl ...] [--patience 1] [--output patience.md]

Every row holds `dev.stage1.dev_accuracy`: the dev accuracy after each epoch of stage 1, as transformers'
`EarlyStoppingCallback` saw it. A run stops after the first epoch at which dev accuracy has failed to improve on the
best so far `patience` times in a row (an equal value is no improvement, as in the callback) or at the epoch cap, and
keeps its best epoch. Replaying a curve with a patience below the one the run used is exact: the shorter run would
have seen the same first epochs. A larger patience cannot be replayed (the epochs it would add were never run).
The table says, for the chosen patience, where each replayable run would have stopped and how much best dev accuracy
it would have lost; runs made with that patience are listed by how they ended (a drop, a tie, the cap).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from benchmarks.accuracy.report import _arm_labels, latest_ok, load_rows, mean_std


logger = logging.getLogger("accuracy.patience")


def epochs_run(curve: list[float], patience: int) -> int:
    """Epochs a run with `patience` trains, given its dev accuracy per epoch `curve`: the first epoch at which dev
    accuracy has failed to improve on the best so far `patience` times in a row, else all of `curve`."""
    if patience < 1:
        raise ValueError(f"patience must be at least 1, got {patience}.")
    best, misses = None, 0
    for epoch, value in enumerate(curve, 1):
        if best is None or value > best:
            best, misses = value, 0
        else:
            misses += 1
            if misses >= patience:
                return epoch
    return len(curve)


def _ending(curve: list[float], cap: int) -> str:
    """How a recorded run ended: `cap` (ran all its epochs), `tie` or `drop` (the last epoch did not improve)."""
    if len(curve) >= cap or len(curve) < 2:
        return "cap"
    return "tie" if curve[-1] == max(curve[:-1]) else "drop"


def replay(rows: list[dict[str, Any]], patience: int) -> dict[str, list[dict[str, Any]]]:
    """Per successful run (one per configuration and seed): its curve, the patience it ran with and, where
    replayable, where `patience` would have stopped it and the best dev accuracy it would have kept.
    Returns {"replayed": runs made with a larger patience and more than `patience + 1` epochs (a shorter one cannot
    stop early), "same": runs made with `patience`}. Arms are labelled as in the report (the arm, plus what sets its
    configuration apart when one arm ran with several on a dataset)."""
    out: dict[str, list[dict[str, Any]]] = {"replayed": [], "same": []}
    rows = latest_ok(rows)
    labels = {
        key: label
        for dataset in {row["dataset"] for row in rows}
        for key, label in _arm_labels([row for row in rows if row["dataset"] == dataset]).items()
    }
    for row in rows:
        curve = ((row.get("dev") or {}).get("stage1") or {}).get("dev_accuracy") or []
        config = row.get("config") or {}
        ran_with = int((config.get("procedure") or {}).get("early_stopping_patience") or 0)
        if not curve or not ran_with:
            continue
        training = config.get("training") or {}
        cap = int(training.get("num_train_epochs") or len(curve))
        entry = {
            "dataset": row["dataset"],
            "arm": labels[(row["arm"], row["config_key"])],
            "seed": row["seed"],
            "learning_rate": training.get("learning_rate"),
            "cap": cap,
            "patience": ran_with,
            "curve": [float(v) for v in curve],
            "best": max(curve),
        }
        if ran_with == patience:
            out["same"].append({**entry, "ending": _ending(curve, cap)})
        elif ran_with > patience and len(curve) > patience + 1:  # shorter: patience cannot stop it early
            stop = epochs_run(curve, patience)
            out["replayed"].append({**entry, "stop": stop, "best_at": max(curve[:stop])})
    for entries in out.values():
        entries.sort(key=lambda e: (e["dataset"], e["arm"], e["learning_rate"] or 0, e["seed"]))
    return out


def _curve(values: list[float], stop: int | None = None) -> str:
    text = [f"{100 * v:.1f}" for v in values]
    if stop is not None and stop < len(text):
        text[stop - 1] += " ‖"
    return " / ".join(text)


def render(result: dict[str, list[dict[str, Any]]], patience: int) -> str:
    replayed, same = result["replayed"], result["same"]
    lines = [f"# Early-stopping patience {patience}, replayed on the recorded dev curves", ""]
    if replayed:
        cut = [e for e in replayed if e["stop"] < len(e["curve"])]
        lost = [100 * (e["best"] - e["best_at"]) for e in cut if e["best_at"] < e["best"]]
        mean, _ = mean_std(lost)
        lines += [
            f"Runs made with a larger patience and more than {patience + 1} epochs: {len(replayed)}. "
            f"Patience {patience} would have stopped {len(cut)} of them earlier; {len(lost)} of those would have kept "
            "a lower best dev accuracy"
            + (f" (by {mean:.2f} points on average, at most {max(lost):.2f})." if lost else "."),
            "",
            f"`‖` marks where patience {patience} stops; dev accuracy in %.",
            "",
            f"| dataset | arm | lr | seed | ran with | dev accuracy per epoch | best dev | best dev at patience {patience} "
            "| lost |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for e in replayed:
            loss = 100 * (e["best"] - e["best_at"])
            lines.append(
                f"| {e['dataset']} | {e['arm']} | {e['learning_rate']:g} | {e['seed']} | patience {e['patience']}, "
                f"≤ {e['cap']} epochs | {_curve(e['curve'], e['stop'])} | {100 * e['best']:.2f} | "
                f"{100 * e['best_at']:.2f} | {f'{loss:.2f}' if loss else '–'} |"
            )
        lines.append("")
    if same:
        endings = {kind: sum(e["ending"] == kind for e in same) for kind in ("drop", "tie", "cap")}
        flat = sum(len(e["curve"]) >= 2 and max(e["curve"]) == e["curve"][0] for e in same)
        lines += [
            f"Runs made with patience {patience}: {len(same)}; ended by a drop of dev accuracy {endings['drop']}, by "
            f"a tie {endings['tie']}, at the epoch cap {endings['cap']}; {flat} never improved on their first "
            "epoch. What they would have done with a larger patience was not run.",
            "",
            "| dataset | arm | lr | seed | dev accuracy per epoch | ended by |",
            "|---|---|---|---|---|---|",
        ]
        for e in same:
            lines.append(
                f"| {e['dataset']} | {e['arm']} | {e['learning_rate']:g} | {e['seed']} | {_curve(e['curve'])} | "
                f"{e['ending']} |"
            )
        lines.append("")
    if not replayed and not same:
        lines.append("No successful run with a recorded dev curve.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="results.jsonl files of the accuracy runner")
    parser.add_argument("--patience", type=int, default=1)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    if args.patience < 1:
        parser.error(f"--patience must be at least 1, got {args.patience}.")
    rows = [row for path in args.results for row in load_rows(path)]
    text = render(replay(rows, args.patience), args.patience)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        logger.info("wrote %s", args.output)
    else:
        print(text)
    return text


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    main()
