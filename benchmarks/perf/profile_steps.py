"""Op profile of one training step of LoRA r=128, M2A fine and M2A joint (MiniLM, batch 8, seq 128, 1 thread).

    python -m benchmarks.perf.profile_steps OUT.json

After two untimed steps, one step per arm under `torch.profiler`; the total self CPU time and the top 8 ops by self
CPU time go to OUT.json and stdout. Shares, not absolute times, are the point (see results/.../README.md).
"""

import json
import sys

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.perf.arms import ARMS, backbone_config, make_batches


def main(path: str) -> dict:
    torch.set_num_threads(1)
    spec = {
        "backbone": "minilm",
        "seq_len": 128,
        "batch_size": 8,
        "num_labels": 5,
        "attributes": {"user": 1000, "item": 500},
        "lora_rank": 128,
        "seed": 0,
    }
    batch = make_batches(spec, backbone_config(spec).vocab_size, 1)[0]
    out = {}
    for name in ("lora_r128", "m2a_fine", "m2a_joint"):
        arm = ARMS[name](dict(spec, arm=name))
        arm.model.train()
        for _ in range(2):
            arm.loss_fn(batch).backward()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            arm.loss_fn(batch).backward()
        averages = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in averages)
        top = sorted(averages, key=lambda e: e.self_cpu_time_total, reverse=True)[:8]
        out[name] = {
            "total_ms": round(total / 1000, 1),
            "top": [(e.key, e.count, round(e.self_cpu_time_total / 1000, 1)) for e in top],
        }
        print(name, out[name])
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main(sys.argv[1])
