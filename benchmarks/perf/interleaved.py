"""Step-time ratios with every arm in one process, interleaved step by step (drift and load hit all arms alike).

    python -m benchmarks.perf.interleaved --output_dir outputs/perf-interleaved \\
        [--backbone minilm|bert-base] [--seq_len 128] [--batch_size 8] [--threads 2] [--rounds 10] [--compile]

`run.py` measures each arm in its own process (memory peaks need that); on a shared machine its ratios move with the
load between processes. Here the arms (`lora_r128`, `m2a_fine`, `m2a_stochastic`, `m2a_joint`, built by `arms.py` on
the same batches) take turns: each round runs one training step (forward + backward + AdamW) of every arm, in an
order rotated every round, then one inference batch of LoRA and of M2A (fine view). After `--warmup` rounds, the median
of `--rounds` rounds per arm, and its ratio to LoRA r=128's median, go to `interleaved.json` / `.md`. `--compile`
compiles every model with `torch.compile` (LoRA too: compiled M2A against compiled LoRA).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import git_info, machine_info
from benchmarks.perf.arms import ARMS, ParamCountError, backbone_config, make_batches, seed_everything
from benchmarks.perf.backbones import BACKBONES
from benchmarks.perf.targets import REFERENCE_ARM, ratio_targets


logger = logging.getLogger("perf.interleaved")

TRAIN_ARMS = ("lora_r128", "m2a_fine", "m2a_stochastic", "m2a_joint")
INFER_ARMS = ("lora_r128", "m2a_fine")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--backbone", default="minilm", choices=BACKBONES)
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--num_users", type=int, default=1000)
    parser.add_argument("--num_items", type=int, default=500)
    parser.add_argument("--num_labels", type=int, default=5)
    parser.add_argument("--lora_rank", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compile", action="store_true", help="torch.compile every model (default backend)")
    parser.add_argument(
        "--mlm_weight",
        type=float,
        default=None,
        help="M2A's auxiliary-loss weight (default: M2AConfig's, 1.0); 0 times M2A without its masked-/causal-LM term",
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    spec = {
        "backbone": args.backbone,
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
        "num_labels": args.num_labels,
        "attributes": {"user": args.num_users, "item": args.num_items},
        "lora_rank": args.lora_rank,
        "seed": args.seed,
        "mlm_weight": args.mlm_weight,
    }
    arms, optimizers, steps = {}, {}, {}
    for name in TRAIN_ARMS:
        arm = ARMS[name](dict(spec, arm=name))
        mismatch = {k: (arm.actual.get(k), v) for k, v in arm.expected.items() if arm.actual.get(k) != v}
        if mismatch:
            raise ParamCountError(
                f"{name}: trainable parameters differ from the closed form (actual, expected): {mismatch}"
            )
        arms[name] = arm
        optimizers[name] = torch.optim.AdamW([p for p in arm.model.parameters() if p.requires_grad], lr=1e-4)
        steps[name] = _step_fns(arm.model, m2a=name != REFERENCE_ARM, compile_=args.compile)
    batches = make_batches(spec, backbone_config(spec).vocab_size, 4)
    train_ms: dict[str, list[float]] = {name: [] for name in TRAIN_ARMS}
    infer_ms: dict[str, list[float]] = {name: [] for name in INFER_ARMS}
    for round_ in range(args.warmup + args.rounds):
        batch = batches[round_ % len(batches)]
        order = TRAIN_ARMS[round_ % len(TRAIN_ARMS) :] + TRAIN_ARMS[: round_ % len(TRAIN_ARMS)]
        for name in order:
            loss_fn = steps[name][0]
            arms[name].model.train()
            start = time.perf_counter()
            loss_fn(batch).backward()
            optimizers[name].step()
            optimizers[name].zero_grad(set_to_none=True)
            if round_ >= args.warmup:
                train_ms[name].append(1000 * (time.perf_counter() - start))
        for name in INFER_ARMS:
            infer_fn = steps[name][1]
            arms[name].model.eval()
            start = time.perf_counter()
            with torch.no_grad():
                infer_fn(batch)
            if round_ >= args.warmup:
                infer_ms[name].append(1000 * (time.perf_counter() - start))
        logger.info("round %d/%d done", round_ + 1, args.warmup + args.rounds)
    result = {
        "settings": vars(args),
        "machine": machine_info(),
        "git": git_info(),
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "train": _summary(train_ms),
        "inference": _summary(infer_ms),
    }
    return result


def _step_fns(model: torch.nn.Module, m2a: bool, compile_: bool) -> tuple[Any, Any]:
    """The training loss and the inference logits of a batch, through `torch.compile(model)` when `compile_`."""
    call = torch.compile(model) if compile_ else model
    keys = ("input_ids", "attention_mask") + (("attribute_ids",) if m2a else ())

    def loss_fn(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # an encoder's M2A trains the MLM term on the batch's labels; a decoder's builds its causal-LM term itself
        extra = {"mlm_labels": batch["mlm_labels"]} if m2a and not model.config.is_causal_lm else {}
        return call(**{k: batch[k] for k in keys}, labels=batch["labels"], **extra).loss

    def infer_fn(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return call(**{k: batch[k] for k in keys}).logits

    return loss_fn, infer_fn


def _summary(times: dict[str, list[float]]) -> dict[str, Any]:
    base = statistics.median(times[REFERENCE_ARM])
    return {
        name: {
            "median_ms": round(statistics.median(values), 1),
            "ratio": round(statistics.median(values) / base, 3),
            "all_ms": [round(v, 1) for v in values],
        }
        for name, values in times.items()
    }


def target_lines(result: dict[str, Any]) -> list[str]:
    """`| phase | arm | ratio | target | met |` rows for `targets.RATIO_TARGETS` of this run's setting (none for compiled
    runs or a non-default `--mlm_weight`)."""
    s = result["settings"]
    if s.get("compile") or s.get("mlm_weight") is not None:  # targets are set for eager, default M2A
        return []
    rows = []
    for (phase, arm), limit in ratio_targets(s["backbone"], s["seq_len"]).items():
        ratio = result[phase][arm]["ratio"]
        rows.append(f"| {phase} | {arm} | {ratio:.2f} | ≤ {limit} | {'met' if ratio <= limit else 'MISSED'} |")
    return rows


def render(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = [
        f"Interleaved, {s['backbone']}, batch {s['batch_size']}, seq {s['seq_len']}, {s['threads']} threads, "
        f"{s['rounds']} rounds after {s['warmup']} warm-up, {'compiled' if s['compile'] else 'eager'}"
        + ("" if s.get("mlm_weight") is None else f", M2A mlm_weight {s['mlm_weight']}")
        + f"; load average at the end {result['loadavg_end']}.",
        "",
        "| arm | train step ms (median) | × LoRA r=128 | inference ms | × LoRA r=128 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, t in result["train"].items():
        inf = result["inference"].get(name)
        infer_cells = f"{inf['median_ms']:,.1f} | {inf['ratio']:.2f}" if inf else "– | –"
        lines.append(f"| {name} | {t['median_ms']:,.1f} | {t['ratio']:.2f} | {infer_cells} |")
    targets = target_lines(result)
    if targets:
        lines += ["", "| phase | arm | × LoRA r=128 | target | |", "|---|---|---:|---|---|", *targets]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = run(args)
    (out / "interleaved.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    text = render(result)
    (out / "interleaved.md").write_text(text, encoding="utf-8")
    print(text)
    return result


if __name__ == "__main__":
    main()
