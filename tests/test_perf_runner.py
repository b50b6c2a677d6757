"""The performance benchmark (benchmarks/perf), imported as a package: the plan of `--quick`, and one tiny run of
`main` (two arms, each in its own `python -m benchmarks.perf.arms` process) that writes results.json, results.md and
the chart."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks.perf import report, run
from m2a_hf.training import default_backbone


def test_quick_plan_resolves_minilm_once_in_the_parent():
    plan = run.build_plan(run.parse_args(["--quick"]))
    ids = [spec["id"] for spec in plan]
    assert len(ids) == len(set(ids))
    assert {spec["id"] for spec in plan if spec["backbone"] == "bert-base"} == {
        "bert-base-s128-lora_r128",
        "bert-base-s128-m2a_fine",
        "bert-base-s128-m2a_fine-u100000",
    }
    assert sum(spec["backbone"] == "minilm" for spec in plan) == len(run.ARM_NAMES)
    for spec in plan:  # the child reads MiniLM's folder from its spec instead of importing m2a_hf.training
        assert spec.get("backbone_path") == (default_backbone() if spec["backbone"] == "minilm" else None)


@pytest.mark.slow
def test_tiny_run_writes_results_report_and_chart(tmp_path):
    flags = (
        "--backbones minilm --seq_lens 16 --arms lora_r8 --user_sweep 100 --sweep_backbone minilm --sweep_seq 16 "
        "--batch_size 2 --warmup 1 --steps 1 --infer_warmup 1 --infer_batches 1 --threads 1 --timeout 300"
    )
    assert run.main([*flags.split(), "--output_dir", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "results.json").read_text())
    assert [r["id"] for r in data["runs"]] == ["minilm-s16-lora_r8", "minilm-s16-m2a_fine"]
    assert all(r["status"] == "ok" and r["params"]["check"] == "ok" for r in data["runs"])
    machine = data["meta"]["machine"]
    assert machine["cpu_count"] and machine["git_commit"] and machine["torch_threads"] == 1
    assert "minilm" in (tmp_path / "results.md").read_text() and (tmp_path / "perf.png").stat().st_size > 0
    assert report.markdown(data) == (tmp_path / "results.md").read_text()


@pytest.mark.slow
def test_interleaved_run_times_every_arm_and_writes_ratios(tmp_path):
    from benchmarks.perf import interleaved

    argv = ["--output_dir", str(tmp_path), "--seq_len", "16", "--batch_size", "2", "--lora_rank", "4"]
    result = interleaved.main(argv + ["--rounds", "2", "--warmup", "1", "--threads", "1"])
    assert set(result["train"]) == set(interleaved.TRAIN_ARMS)
    assert set(result["inference"]) == set(interleaved.INFER_ARMS)
    for name, timing in result["train"].items():
        assert len(timing["all_ms"]) == 2 and min(timing["all_ms"]) > 0, name
    assert result["train"][interleaved.REFERENCE_ARM]["ratio"] == 1.0
    joint = result["train"]["m2a_joint"]["median_ms"]
    lora = result["train"]["lora_r128"]["median_ms"]
    # the ratio comes from the unrounded medians (each within 0.05 ms of the stored one), then is rounded to 3 decimals
    low, high = (joint - 0.05) / (lora + 0.05) - 5e-4, (joint + 0.05) / (lora - 0.05) + 5e-4
    assert low <= result["train"]["m2a_joint"]["ratio"] <= high
    saved = json.loads((tmp_path / "interleaved.json").read_text())
    assert saved["train"] == result["train"]
    assert (tmp_path / "interleaved.md").read_text() == interleaved.render(result)


def test_interleaved_targets_are_judged_for_their_setting_only():
    from benchmarks.perf import interleaved

    def result(backbone: str, seq_len: int, compile_: bool = False, mlm_weight: float | None = None) -> dict:
        ratios = {"m2a_fine": 1.2, "m2a_stochastic": 1.35, "m2a_joint": 2.4}
        return {
            "settings": {"backbone": backbone, "seq_len": seq_len, "compile": compile_, "mlm_weight": mlm_weight},
            "train": {arm: {"ratio": r} for arm, r in ratios.items()},
            "inference": {"m2a_fine": {"ratio": 1.05}},
        }

    lines = interleaved.target_lines(result("minilm", 128))
    assert lines == [
        "| train | m2a_fine | 1.20 | ≤ 1.25 | met |",
        "| train | m2a_stochastic | 1.35 | ≤ 1.3 | MISSED |",
        "| train | m2a_joint | 2.40 | ≤ 2.3 | MISSED |",
        "| inference | m2a_fine | 1.05 | ≤ 1.1 | met |",
    ]
    assert interleaved.target_lines(result("bert-base", 256)) == ["| train | m2a_fine | 1.20 | ≤ 1.15 | MISSED |"]
    assert interleaved.target_lines(result("minilm", 64)) == []  # no target defined for that setting
    assert interleaved.target_lines(result("minilm", 128, compile_=True)) == []
    assert interleaved.target_lines(result("minilm", 128, mlm_weight=0.0)) == []  # not the configuration they are for


def test_per_process_report_judges_the_same_targets_as_the_interleaved_one():
    """One target table (`benchmarks/perf/targets.py`): the per-process report judges each target at its own setting,
    says n/a for a setting that did not run, and keeps the materialised-baseline targets."""
    from benchmarks.perf import targets

    def arm_run(arm: str, backbone: str, seq_len: int, step: float, batch: float, peak: float) -> dict:
        spec = {"arm": arm, "backbone": backbone, "seq_len": seq_len, "attributes": {"user": report.BASE_USERS}}
        train = {"step_ms": step, "rss_peak_mb": peak, "rss_increase_mb": peak / 2}
        return {
            "spec": {**spec, "device": "cpu", "threads": 1},
            "status": "ok",
            "train": train,
            "infer": {"batch_ms": batch},
        }

    runs = [
        arm_run("lora_r128", "minilm", 128, 100.0, 10.0, 1000.0),
        arm_run("m2a_fine", "minilm", 128, 120.0, 10.5, 1100.0),  # 1.20 / 1.05: both met
        arm_run("m2a_stochastic", "minilm", 128, 135.0, 11.0, 1100.0),  # 1.35: missed
        arm_run("m2a_joint", "minilm", 128, 240.0, 11.0, 1200.0),  # 2.40: missed
        arm_run("materialised", "minilm", 128, 480.0, 30.0, 3000.0),  # 4.0× fine's step, fine at 0.37× its peak
    ]
    lines = report.check_targets(runs)
    limits = targets.ratio_targets("minilm", 128)
    assert lines[:4] == [
        f"- **PASS** M2A single view (fine) step time: 1.20× `lora_r128` (target <= {limits['train', 'm2a_fine']}×) "
        "[minilm, seq 128]",
        f"- **MISS** M2A stochastic step time: 1.35× `lora_r128` (target <= {limits['train', 'm2a_stochastic']}×) "
        "[minilm, seq 128]",
        f"- **MISS** M2A joint step time: 2.40× `lora_r128` (target <= {limits['train', 'm2a_joint']}×) [minilm, seq 128]",
        "- **PASS** M2A single view (fine) inference time per batch (unmerged): 1.05× `lora_r128` "
        f"(target <= {limits['inference', 'm2a_fine']}×) [minilm, seq 128]",
    ]
    assert (
        lines[4]
        == "- **n/a** M2A single view (fine) step time: `m2a_fine` or `lora_r128` was not run at bert-base, seq 256."
    )
    assert lines[5].startswith("- **PASS** materialised-baseline step time: 4.00× `m2a_fine` (target >= 3.0×)")
    assert lines[6].startswith("- **PASS** M2A single-view training peak RSS: 0.37× `materialised` (target <= 0.5×)")
    assert len(lines) == 8  # + the user sweep (n/a: not run)


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["gpt2-tiny", "llama-tiny"])
def test_decoder_backbones_build_train_and_match_their_closed_forms(backbone):
    """Issue 16: the perf benchmark times GPT-2 (Conv1D, fused c_attn) and Llama (grouped-query attention) like BERT —
    the peft baseline at M2A's placement for the family, M2A with its causal-LM term, both counted in closed form."""
    from benchmarks.perf import arms

    spec = {
        "backbone": backbone, "num_labels": 5, "lora_rank": 4, "attributes": {"user": 6, "item": 3}, "seed": 0,
        "batch_size": 2, "seq_len": 12, "value_embedding_dim": 16,
    }  # fmt: skip
    cfg = arms.backbone_config(spec)
    assert arms.is_decoder(cfg) and cfg.pad_token_id == cfg.eos_token_id
    batch = arms.make_batches(spec, cfg.vocab_size, 1)[0]
    for name in ("lora_r8", "m2a_joint", "m2a_unknown"):
        arm = arms.ARMS[name](spec)
        assert arm.expected and arm.expected == {k: arm.actual[k] for k in arm.expected}, name
        loss = arm.loss_fn(batch)
        loss.backward()
        assert torch.isfinite(loss), name
        grads = [p for p in arm.model.parameters() if p.requires_grad and p.grad is not None]
        assert sum(p.numel() for p in grads) > 0, name
        assert arm.infer_fn(batch).shape == (2, 5), name
        if name == "lora_r8":  # M2A's placement for the family: every layer of every block, fused c_attn whole
            assert arm.notes["lora_layers"] == cfg.num_hidden_layers * len(arms.placement(cfg).modules)
    with pytest.raises(ValueError, match="decoder"):
        arms.ARMS["materialised"](spec)
    plan = run.build_plan(run.parse_args(["--backbones", backbone, "--seq_lens", "16", "--user_sweep", "100"]))
    assert {s["arm"] for s in plan if s["kind"] == "grid"} == set(run.ARM_NAMES) - {"materialised"}
