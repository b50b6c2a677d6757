"""Adapter-only vs full checkpoint sizes of M2A on MiniLM, at the reference ranks and at small ranks.

Run: `.venv/bin/python -m benchmarks.adapter_sizes [--output outputs/adapter_sizes.md]`
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from m2a_hf import M2AForSequenceClassification
from m2a_hf.adapters import num_parameters_by_group, save_adapter
from m2a_hf.training import default_backbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", default="outputs/adapter_sizes.md")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--items", type=int, default=100)
    args = parser.parse_args()
    rows = [
        "| ranks | full checkpoint | adapter only | trainable parameters |",
        "|---|---|---|---|",
    ]
    for name, rank in (("reference (LoRA r=128, α=256)", 128), ("r=8, α=16", 8)):
        model = M2AForSequenceClassification.from_backbone(
            default_backbone(),
            attributes={"user": args.users, "item": args.items},
            num_labels=5,
            lora_rank=rank,
            lora_alpha=2 * rank,
        )
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(f"{tmp}/full")
            save_adapter(model, f"{tmp}/adapter")
            full = os.path.getsize(f"{tmp}/full/model.safetensors")
            adapter = os.path.getsize(f"{tmp}/adapter/m2a_adapter_model.safetensors")
        groups = num_parameters_by_group(model)
        rows.append(
            f"| {name} | {full / 1e6:.1f} MB | {adapter / 1e6:.1f} MB ({100 * adapter / full:.0f} %) | "
            f"{groups['trainable'] / 1e6:.2f} M of {groups['total'] / 1e6:.2f} M (fine generators "
            f"{groups['fine'] / 1e6:.2f} M) |"
        )
    text = (
        f"MiniLM backbone, attributes user ({args.users} values) and item ({args.items} values).\n\n"
        + "\n".join(rows)
        + "\n"
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
