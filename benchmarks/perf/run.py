"""Performance benchmark of m2a-hf: training step time, peak memory and inference throughput of M2A's training views
against peft LoRA, full fine-tuning and the reference's materialised-Kronecker algorithm.

    python -m benchmarks.perf.run --output_dir outputs/perf [--quick]

Every configuration runs in its own process (`arms.py`), one after the other, with the same backbone, batch, sequence
length, seed and thread count. Writes `results.json` (raw, with machine info), `results.md` (table and PASS/MISS lines
for the targets) and `perf.png` under `--output_dir`. See README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from benchmarks import common
from benchmarks.common import available_cores
from benchmarks.perf import report
from benchmarks.perf.backbones import BACKBONES, DECODER_BACKBONES


logger = logging.getLogger("perf")

ARM_NAMES = [
    "lora_r8",
    "lora_r128",
    "full_ft",
    "m2a_joint",
    "m2a_stochastic",
    "m2a_fine",
    "m2a_unknown",
    "materialised",
]
BASE_USERS = 100
MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": str(2**31 - 1), "MALLOC_MMAP_THRESHOLD_": str(2**30)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--output_dir", default="outputs/perf", help="where results.json/.md and perf.png go.")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a < 5 min check: MiniLM at seq 128 (every arm) and BERT-base at seq 128 (LoRA r=128 and the M2A\n"
        "fine view with 100 and 100k users); 2 warm-up + 3 timed steps.",
    )
    parser.add_argument("--backbones", nargs="+", choices=BACKBONES, help="default: minilm and bert-base.")
    parser.add_argument("--seq_lens", nargs="+", type=int, help="default: 128 256 (quick: 128).")
    parser.add_argument("--arms", nargs="+", choices=ARM_NAMES, help="default: all.")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--num_labels", type=int, default=5)
    parser.add_argument("--num_items", type=int, default=100, help="values of the second attribute (item).")
    parser.add_argument("--lora_rank", type=int, default=128, help="M2A's ranks r = r_a (alpha = 2r).")
    parser.add_argument(
        "--value_embedding_dim", type=int, help="M2A's per-value embedding size E (default: the hidden size)."
    )
    parser.add_argument("--warmup", type=int, help="warm-up training steps (they measure memory); default 2.")
    parser.add_argument("--steps", type=int, help="timed training steps (median reported); default 5 (quick: 3).")
    parser.add_argument("--infer_warmup", type=int, help="warm-up inference batches; default 2 (quick: 1).")
    parser.add_argument("--infer_batches", type=int, help="timed inference batches; default 5 (quick: 3).")
    parser.add_argument(
        "--user_sweep", nargs="+", type=int, help="numbers of users for the M2A fine arm; default 100 10000 100000."
    )
    parser.add_argument("--sweep_backbone", default="bert-base", choices=BACKBONES)
    parser.add_argument("--sweep_seq", type=int, help="sequence length of the user sweep; default 256 (quick: 128).")
    parser.add_argument("--threads", type=int, default=available_cores(), help="torch threads (default: all cores).")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda.")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="bf16: autocast.")
    parser.add_argument(
        "--malloc",
        default="tuned",
        choices=["tuned", "env", "default"],
        help="tuned (default): glibc thresholds raised with mallopt after the memory-measuring warm-up;\n"
        "env: MALLOC_TRIM_THRESHOLD_/MALLOC_MMAP_THRESHOLD_ set for the whole child process (inflates RSS peaks);\n"
        "default: glibc defaults throughout.",
    )
    parser.add_argument(
        "--no_bind_threads",
        dest="bind_threads",
        action="store_false",
        help="do not pin the OpenMP threads to cores (default: OMP_PROC_BIND=close, OMP_PLACES=cores in each child,\n"
        "unless already set; without it a busy machine can stack both threads on one core, see README.md).",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--profile", nargs="*", default=[], choices=ARM_NAMES, help="profile one training step of these arms."
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=0,
        help="re-run an arm whose timed steps ran contended (CPU utilisation < 0.8: other processes took the\n"
        "cores) up to this many times, keeping the least contended run; default 0.",
    )
    parser.add_argument("--timeout", type=int, help="seconds per arm before it is killed; default 1800 (quick: 600).")
    args = parser.parse_args(argv)

    quick = args.quick
    args.backbones = args.backbones or ["minilm", "bert-base"]
    args.seq_lens = args.seq_lens or ([128] if quick else [128, 256])
    args.arms = args.arms or list(ARM_NAMES)
    args.warmup = 2 if args.warmup is None else args.warmup
    args.steps = args.steps or (3 if quick else 5)
    args.infer_warmup = args.infer_warmup or (1 if quick else 2)
    args.infer_batches = args.infer_batches or (3 if quick else 5)
    args.user_sweep = args.user_sweep or ([BASE_USERS, 100_000] if quick else [BASE_USERS, 10_000, 100_000])
    args.sweep_seq = args.sweep_seq or (128 if quick else 256)
    args.timeout = args.timeout or (600 if quick else 1800)
    if args.warmup < 1 or args.steps < 1:
        parser.error("`--warmup` and `--steps` must be >= 1.")
    if args.device.startswith("cuda") and args.malloc == "tuned":
        args.malloc = "default"  # host allocations are not what is measured on a GPU
    return args


def build_plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The specs of every child run: the grid (backbone × seq × arm) and the user sweep of the M2A fine arm."""
    common = {
        "batch_size": args.batch_size,
        "num_labels": args.num_labels,
        "lora_rank": args.lora_rank,
        "value_embedding_dim": args.value_embedding_dim,
        "warmup": args.warmup,
        "steps": args.steps,
        "infer_warmup": args.infer_warmup,
        "infer_batches": args.infer_batches,
        "seed": args.seed,
        "threads": args.threads,
        "device": args.device,
        "dtype": args.dtype,
        "malloc": args.malloc,
    }
    plan = []
    quick_bert = {"lora_r128", "m2a_fine"}  # quick mode: BERT-base only for the reference point and the sweep
    for backbone in args.backbones:
        for seq in args.seq_lens:
            for arm in args.arms:
                if args.quick and backbone == "bert-base" and arm not in quick_bert:
                    continue
                if arm == "materialised" and backbone in DECODER_BACKBONES:  # the reference's algorithm is BERT's
                    logger.info("%s: no materialised arm (a decoder)", backbone)
                    continue
                plan.append(
                    {
                        **common,
                        "id": f"{backbone}-s{seq}-{arm}",
                        "kind": "grid",
                        "arm": arm,
                        "backbone": backbone,
                        "seq_len": seq,
                        "attributes": {"user": BASE_USERS, "item": args.num_items},
                    }
                )
    ids = {s["id"] for s in plan}
    for users in args.user_sweep:
        spec_id = f"{args.sweep_backbone}-s{args.sweep_seq}-m2a_fine"
        if users == BASE_USERS and spec_id in ids:
            next(s for s in plan if s["id"] == spec_id)["sweep"] = True
            continue
        plan.append(
            {
                **common,
                "id": f"{spec_id}-u{users}" if users != BASE_USERS else spec_id,
                "kind": "sweep",
                "sweep": True,
                "arm": "m2a_fine",
                "backbone": args.sweep_backbone,
                "seq_len": args.sweep_seq,
                "attributes": {"user": users, "item": args.num_items},
            }
        )
    minilm = None
    if any(spec["backbone"] == "minilm" for spec in plan):
        from m2a_hf.training import default_backbone

        minilm = default_backbone()
    for spec in plan:
        spec["profile"] = spec["arm"] in args.profile
        if spec["backbone"] == "minilm":
            spec["backbone_path"] = minilm
    return plan


def child_env(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    threads = str(args.threads)
    env.update(
        OMP_NUM_THREADS=threads,
        MKL_NUM_THREADS=threads,
        OPENBLAS_NUM_THREADS=threads,
        PYTHONHASHSEED=str(args.seed),
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TRANSFORMERS_VERBOSITY="error",
        PYTHONWARNINGS="ignore",
    )
    if args.bind_threads:
        env.setdefault("OMP_PROC_BIND", "close")
        env.setdefault("OMP_PLACES", "cores")
    for key in MALLOC_ENV:
        env.pop(key, None)
    if args.malloc == "env":
        env.update(MALLOC_ENV)
    return env


def run_child(
    spec: dict[str, Any], out_dir: Path, env: dict[str, str], timeout: int, attempt: int = 1
) -> dict[str, Any]:
    """Run one arm in a fresh process; return its result (or the error that stopped it)."""
    work = out_dir / "runs"
    work.mkdir(parents=True, exist_ok=True)
    stem = spec["id"] if attempt == 1 else f"{spec['id']}.try{attempt}"
    spec_path, result_path, log_path = (work / f"{stem}{ext}" for ext in (".spec.json", ".json", ".log"))
    if spec["profile"]:
        spec["profile_path"] = str(out_dir / f"profile-{spec['id']}.txt")
    spec_path.write_text(json.dumps(spec, indent=2))
    result_path.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.perf.arms", "--spec", str(spec_path), "--result", str(result_path)]
    start = time.perf_counter()
    with open(log_path, "w") as log:
        try:
            proc = subprocess.run(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout, cwd=common.REPO_ROOT
            )
            returncode = proc.returncode
        except subprocess.TimeoutExpired:
            returncode = None
    wall = round(time.perf_counter() - start, 1)
    if result_path.exists():
        result = json.loads(result_path.read_text())
    else:
        tail = log_path.read_text()[-2000:] if log_path.exists() else ""
        if returncode is None:
            error = f"timeout: killed after {timeout} s"
        elif returncode < 0:
            error = f"killed by signal {-returncode} (SIGKILL usually means out of memory)"
        else:
            error = f"exited with status {returncode} without a result"
        result = {"spec": spec, "status": "error", "error": error, "log_tail": tail}
    result.update(id=spec["id"], kind=spec["kind"], process_wall_s=wall, log=str(log_path))
    return result


def machine_info(args: argparse.Namespace) -> dict[str, Any]:
    """`benchmarks.common.machine_info` with the git commit, the run's threads and device, and the threading
    environment of this process and of the children."""
    import torch

    git = common.git_info()
    info = common.machine_info()
    info.update(
        git_commit=git["commit"],
        git_dirty=git["dirty"],
        torch_threads=args.threads,
        env_threads={
            k: os.environ.get(k)
            for k in (
                "OMP_NUM_THREADS",
                "MKL_NUM_THREADS",
                "OPENBLAS_NUM_THREADS",
                "OMP_WAIT_POLICY",
                "GOMP_SPINCOUNT",
            )
        },
        child_env_threads={
            k: v for k, v in child_env(args).items() if k.startswith(("OMP_", "MKL_", "OPENBLAS_", "GOMP_", "MALLOC_"))
        },
        torch_parallel_info=torch.__config__.parallel_info(),
    )
    if not args.device.startswith("cuda"):
        info["cuda"] = None  # a GPU that the run does not use
    return info


def _describe(result: dict[str, Any]) -> str:
    if result.get("status") != "ok":
        return f"{result['id']}: FAILED ({result.get('error')})"
    params = result["params"]
    train, infer = result["train"], result["infer"]
    memory = "gpu_" if "gpu_peak_mb" in train else "rss_"
    return (
        f"{result['id']}: trainable {params['trainable']:,} (closed form {params['expected_closed_form']['trainable']:,}, "
        f"{params['check']}); step {train['step_ms']:.0f} ms, train peak {train[memory + 'peak_mb']:.0f} MB "
        f"(+{train[memory + 'increase_mb']:.0f}), inference {infer['samples_per_s']:.1f} samples/s"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = build_plan(args)
    env = child_env(args)
    meta = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": dict(vars(args)),
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "machine": machine_info(args),
    }
    logger.info(
        "%d runs, %d threads, device %s, malloc %s -> %s", len(plan), args.threads, args.device, args.malloc, out_dir
    )
    if meta["loadavg_start"][0] > 0.5 * args.threads:
        logger.warning("load average %s on %d threads: timings will be noisy.", meta["loadavg_start"], args.threads)

    results: list[dict[str, Any]] = []
    start = time.perf_counter()
    with logging_redirect_tqdm():
        for spec in (bar := tqdm(plan, desc="arms", unit="arm")):
            bar.set_postfix_str(spec["id"])
            result = run_child(spec, out_dir, env, args.timeout)
            for attempt in range(args.retries):
                if not report.contended(result):
                    break
                logger.warning(
                    "%s ran contended (CPU util %.2f); retry %d",
                    spec["id"],
                    report.cpu_utilisation(result),
                    attempt + 1,
                )
                again = run_child(spec, out_dir, env, args.timeout, attempt=attempt + 2)
                if report.cpu_utilisation(again) is not None and (
                    report.cpu_utilisation(result) is None
                    or report.cpu_utilisation(again) > report.cpu_utilisation(result)
                ):
                    result = again
                result["attempts"] = attempt + 2
            results.append(result)
            (logger.info if result.get("status") == "ok" else logger.error)(_describe(result))
    meta.update(
        finished=dt.datetime.now().isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - start, 1),
        loadavg_end=[round(x, 2) for x in os.getloadavg()],
    )
    data = {"meta": meta, "runs": results}
    (out_dir / "results.json").write_text(json.dumps(data, indent=2))
    paths = report.write_report(data, out_dir)
    logger.info("wrote %s, %s", out_dir / "results.json", ", ".join(str(p) for p in paths))

    mismatched = [r["id"] for r in results if r.get("param_check_failed")]
    failed = [r["id"] for r in results if r.get("status") != "ok"]
    if mismatched:
        logger.error("TRAINABLE-PARAMETER COUNT DIFFERS FROM THE CLOSED FORM in %s (see results.md).", mismatched)
        return 2
    if failed:
        logger.error("%d arm(s) failed: %s (errors recorded in results.json).", len(failed), failed)
        return 1
    return 0


__all__ = ["build_plan", "main"]


if __name__ == "__main__":
    sys.exit(main())
