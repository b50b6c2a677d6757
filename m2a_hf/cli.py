"""`m2a-hf` command line: train, evaluate, predict, demo, push.

Arguments are parsed by `transformers.HfArgumentParser` over `TrainingArguments` and our dataclasses, so every
Trainer flag works under its usual name (`--output_dir`, `--learning_rate`, `--num_train_epochs`, `--max_steps`, ...).
This is the only module that prints.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import HfArgumentParser, TrainingArguments

from m2a_hf.training import (
    DataArguments,
    ModelArguments,
    ProcedureArguments,
    load_data,
    train_baseline,
    train_m2a,
    training_defaults,
)


logger = logging.getLogger("m2a_hf")

COMMANDS = ("train", "evaluate", "predict", "demo", "push")


@dataclass
class EvaluateArguments:
    model_path: str = field(metadata={"help": "A saved M2A checkpoint (directory or Hub repo id)."})
    split: str = field(default="test", metadata={"help": "Split to evaluate: train | validation | test."})
    output_file: str | None = field(default=None, metadata={"help": "Write the metrics JSON here."})
    batch_size: int = field(default=64, metadata={"help": "Evaluation batch size."})


@dataclass
class PredictArguments:
    model_path: str = field(metadata={"help": "A saved M2A checkpoint (directory or Hub repo id)."})
    input: str = field(
        default="-",
        metadata={
            "help": "JSON lines ({'text': ..., 'user': ..., ...} or {'text': ..., 'attributes': {...}}) or plain text "
            "lines, from a file or '-' for stdin."
        },
    )
    output: str = field(default="-", metadata={"help": "Where to write JSON-lines predictions ('-' = stdout)."})
    view: str | None = field(default=None, metadata={"help": "None (use attributes) or 'coarse' (ignore them)."})
    top_k: int = field(default=1, metadata={"help": "Labels per input."})


@dataclass
class DemoArguments:
    quick: bool = field(default=False, metadata={"help": "A smaller, faster run (for CI and smoke tests)."})
    skip_baseline: bool = field(default=False, metadata={"help": "Do not train the attribute-free LoRA baseline."})


@dataclass
class PushArguments:
    model_path: str = field(metadata={"help": "A saved M2A checkpoint directory."})
    repo_id: str = field(metadata={"help": "Hub repository, e.g. 'me/m2a-clothing'."})
    adapter_only: bool = field(default=False, metadata={"help": "Upload only the trained adapter weights."})
    private: bool = field(default=False, metadata={"help": "Create the repository as private."})


def _parser(*types: type) -> HfArgumentParser:
    parser = HfArgumentParser(types)
    if TrainingArguments in types:
        parser.set_defaults(**training_defaults())
    return parser


def _print_table(rows: list[tuple[str, dict[str, Any]]]) -> None:
    header = f"{'model':<34} {'acc':>6} {'macroF1':>8} {'RMSE':>6} {'acc seen':>9} {'acc unseen':>11}"
    print(header)
    print("-" * len(header))

    def fmt(value: Any, width: int, pct: bool = True) -> str:
        if value is None:
            return f"{'-':>{width}}"
        return f"{100 * value:>{width}.1f}" if pct else f"{value:>{width}.3f}"

    for name, m in rows:
        print(
            f"{name:<34} {fmt(m['accuracy'], 6)} {fmt(m['macro_f1'], 8)} {fmt(m['rmse'], 6, False)} "
            f"{fmt(m.get('seen_accuracy'), 9)} {fmt(m.get('unseen_accuracy'), 11)}"
        )


def cmd_train(argv: list[str]) -> dict[str, Any]:
    model_args, data_args, procedure, training_args = _parser(
        ModelArguments, DataArguments, ProcedureArguments, TrainingArguments
    ).parse_args_into_dataclasses(argv)
    result = train_m2a(model_args, data_args, training_args, procedure)
    rows = [(f"M2A ({view} view)", result.metrics["test"][view]) for view in ("fine", "coarse")]
    if procedure.baseline:
        base_args = dataclasses.replace(training_args, output_dir=str(Path(training_args.output_dir) / "baseline"))
        base = train_baseline(model_args, data_args, base_args, procedure)
        rows.append(("LoRA baseline (no attributes)", base.metrics["test"]["iid"]))
        result.metrics["baseline"] = base.metrics
    _print_table(rows)
    print(f"\nsaved to {result.output_dir} (metrics.json, training_curves.png, README.md model card)")
    return result.metrics


def cmd_evaluate(argv: list[str]) -> dict[str, Any]:
    eval_args, data_args = _parser(EvaluateArguments, DataArguments).parse_args_into_dataclasses(argv)
    from m2a_hf.training import evaluate_checkpoint

    metrics = evaluate_checkpoint(
        eval_args.model_path, data_args, split=eval_args.split, batch_size=eval_args.batch_size
    )
    _print_table([(f"M2A ({view} view), {eval_args.split}", metrics[view]) for view in ("fine", "coarse")])
    if eval_args.output_file:
        Path(eval_args.output_file).write_text(json.dumps(metrics, indent=2) + "\n")
        print(f"metrics written to {eval_args.output_file}")
    return metrics


def _read_records(source: str) -> list[dict[str, Any]]:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise SystemExit(f"input line {number} is not valid JSON ({err.msg}): {line[:80]!r}") from err
            if "text" not in record:
                raise SystemExit(f"input line {number} has no 'text' field: {line[:80]!r}")
            attributes = record.get("attributes")
            if attributes is None:
                attributes = {k: v for k, v in record.items() if k not in ("text", "text_pair", "id", "label")}
            records.append({"text": record["text"], "attributes": attributes})
        else:
            records.append({"text": line, "attributes": {}})
    return records


def cmd_predict(argv: list[str]) -> list[dict[str, Any]]:
    (args,) = _parser(PredictArguments).parse_args_into_dataclasses(argv)
    from m2a_hf.hub import load_pipeline

    records = _read_records(args.input)
    pipe = load_pipeline(args.model_path)
    outputs = pipe(records, view=args.view, top_k=args.top_k) if records else []
    lines = []
    for record, out in zip(records, outputs, strict=True):
        if args.top_k == 1 and isinstance(out, list):
            out = out[0]
        ids = pipe.attribute_ids_for(record["attributes"])
        lines.append(
            {
                "text": record["text"],
                "attributes": record["attributes"],
                "unknown_attributes": [n for n, i in zip(pipe.attribute_names, ids, strict=True) if i < 0],
                "prediction": out,
            }
        )
    payload = "".join(json.dumps(line) + "\n" for line in lines)
    if args.output == "-":
        sys.stdout.write(payload)
    else:
        Path(args.output).write_text(payload, encoding="utf-8")
        print(f"{len(lines)} predictions written to {args.output}")
    return lines


def cmd_push(argv: list[str]) -> str:
    (args,) = _parser(PushArguments).parse_args_into_dataclasses(argv)
    from m2a_hf.hub import push_checkpoint

    url = push_checkpoint(args.model_path, args.repo_id, adapter_only=args.adapter_only, private=args.private)
    print(f"pushed {'adapter' if args.adapter_only else 'model'} to {url}")
    return url


def cmd_demo(argv: list[str]) -> dict[str, Any]:
    demo, model_args, data_args, training_args = _parser(
        DemoArguments, ModelArguments, DataArguments, TrainingArguments
    ).parse_args_into_dataclasses(argv, args_filename=None)
    explicit = {a.split("=")[0].lstrip("-") for a in argv if a.startswith("--")}

    def default(obj: Any, name: str, value: Any) -> None:  # demo defaults, unless given on the command line
        if name not in explicit:
            setattr(obj, name, value)

    default(training_args, "output_dir", "outputs/demo")
    default(model_args, "lora_rank", 8)
    default(model_args, "lora_alpha", 16)
    default(data_args, "max_length", 64)
    default(training_args, "learning_rate", 1e-3)
    default(training_args, "num_train_epochs", 2 if demo.quick else 4)
    default(training_args, "disable_tqdm", False)
    if data_args.dataset != "synthetic":
        default(data_args, "max_train_samples", 1000 if demo.quick else 4000)
        default(data_args, "max_eval_samples", 300 if demo.quick else 1000)
        default(data_args, "max_length", 128)
    elif demo.quick:
        default(data_args, "max_train_samples", 600)
    out = Path(training_args.output_dir)
    print(f"== M2A demo on {data_args.dataset!r} data, backbone {model_args.resolved_backbone()}")
    data = load_data(data_args, seed=training_args.seed)
    print({split: len(ds) for split, ds in data.items()})
    m2a_args = dataclasses.replace(training_args, output_dir=str(out / "m2a"))
    procedure = ProcedureArguments(stage2_epochs=1)
    procedure.overwrite_output_dir = True  # a demo replaces its previous run (the flag's home varies by transformers)
    result = train_m2a(model_args, data_args, m2a_args, procedure, data=data)
    rows = [
        ("M2A, attributes used (fine view)", result.metrics["test"]["fine"]),
        ("M2A, attributes dropped (coarse)", result.metrics["test"]["coarse"]),
    ]
    if not demo.skip_baseline:
        base_args = dataclasses.replace(training_args, output_dir=str(out / "baseline"))
        base = train_baseline(model_args, data_args, base_args, procedure, data=data)
        rows.append(("LoRA baseline (no attributes)", base.metrics["test"]["iid"]))
        result.metrics["baseline"] = base.metrics
    print("\n== test results (accuracy, macro-F1 in %; seen/unseen = attribute values seen in training or not)")
    _print_table(rows)
    print(f"\n== Hub-ready checkpoint: {result.output_dir}")
    print("   " + ", ".join(sorted(p.name for p in Path(result.output_dir).iterdir() if p.is_file())))
    _demo_predictions(result, data)
    (out / "demo_metrics.json").write_text(json.dumps(result.metrics, indent=2, default=float) + "\n")
    return result.metrics


def _demo_predictions(result: Any, data: Any) -> None:
    """The same text for a known user and for an unknown one."""
    from m2a_hf.hub import load_pipeline

    pipe = load_pipeline(result.output_dir)
    name = result.vocab.names[0]
    test = data["test"]
    known_values = set(result.vocab.values(name))
    seen_row = next((r for r in test if r[name] in known_values), None)
    unseen_row = next((r for r in test if r[name] not in known_values), None)
    print(
        f"\n== predictions (attribute {name!r}; an unknown value uses that attribute's coarse unknown-value adapter)"
    )
    for row, tag in ((seen_row, "known"), (unseen_row, "unknown")):
        if row is None:
            continue
        attrs = {n: row[n] for n in result.vocab.names}
        out = pipe({"text": row["text"], "attributes": attrs})
        out = out[0] if isinstance(out, list) else out
        print(f"  [{tag} {name}={row[name]!r}] {row['text'][:70]!r}")
        print(
            f"      -> {out['label']} (p={out['score']:.2f}); true label {result.model.config.id2label[row['label']]}"
        )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: m2a-hf {train,evaluate,predict,demo,push} [--help] [options]")
        print(
            "  train     train M2A (and optionally the LoRA baseline) on a dataset; every TrainingArguments flag works"
        )
        print("  evaluate  evaluate a saved checkpoint on a split, attribute-aware and attribute-free views")
        print("  predict   predict labels for texts with attribute values (JSON lines from a file or stdin)")
        print("  demo      synthetic data (or --dataset clothing): M2A vs a LoRA baseline, in minutes on a CPU")
        print("  push      upload a checkpoint (or only its adapter) to the Hugging Face Hub")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    command, rest = argv[0], argv[1:]
    {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "demo": cmd_demo, "push": cmd_push}[
        command
    ](rest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
