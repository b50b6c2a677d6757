"""`m2a-hf` command line: train, evaluate, predict, demo, push.

Arguments are parsed by `transformers.HfArgumentParser` over `TrainingArguments` and our dataclasses, so every
Trainer flag works under its usual name (`--output_dir`, `--learning_rate`, `--num_train_epochs`, `--max_steps`, ...).
This is the only module that prints.

Errors: a user error is reported as one line on stderr, `m2a-hf <command>: error: <what is wrong, what is expected>`,
with exit status 2, and its traceback only with `--debug` (`m2a-hf --debug predict ...`, or `--debug` after the
command). User errors are the `UsageError`s raised here: a bad, missing or unknown flag; a model path, input file or
output folder that does not exist; input that cannot be read (with its line number); an attribute the model does not
have; and the `ValueError` / `KeyError` / `OSError` raised while the arguments' files (model, data) are loaded. Any
other exception is a bug: it propagates with its traceback (exit status 1).
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import logging
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from transformers import TrainingArguments

from m2a_hf.cli_arguments import (
    DemoArguments,
    EvaluateArguments,
    PredictArguments,
    PushArguments,
    _backbone_flag,
    given_flags,
    parse_arguments,
    requested_steps,
)
from m2a_hf.cli_input import (
    InputRecord,
    UsageError,
    _one_line,
    check_max_length,
    check_model_path,
    check_output_file,
    read_records,
    user_input,
)
from m2a_hf.distributed import check_launch, is_main_process
from m2a_hf.training import (
    DataArguments,
    ModelArguments,
    ProcedureArguments,
    attribute_columns,
    load_data,
    train_baseline,
    train_m2a,
)


logger = logging.getLogger("m2a_hf")

COMMANDS = ("train", "evaluate", "predict", "demo", "push")
EXIT_USAGE = 2
"""Exit status of a user error (as argparse uses)."""


@contextlib.contextmanager
def _loading_model(value: str, flag: str = "--model_path") -> Iterator[None]:
    """Report a model that cannot be loaded (no such Hub repo, offline, not an M2A checkpoint) as a `UsageError`."""
    problem = "cannot load the model" if Path(value).expanduser().is_dir() else "no such model folder, nor Hub model"
    with user_input(f"{flag} {value!r}: {problem}", first_line_only=True):
        yield


@contextlib.contextmanager
def _no_progress_bar(local: bool = True) -> Iterator[None]:
    """Without the "Loading weights" bar of a local model on stderr (downloads from the Hub keep theirs)."""
    from transformers.utils import logging as hf_logging

    if not local or not hf_logging.is_progress_bar_enabled():
        yield
        return
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()


def _check_backbone(model_args: ModelArguments, data_args: DataArguments, flag: str = "--backbone") -> str:
    """The backbone path, checked to exist, to be an encoder (not an M2A checkpoint) and to take `--max_length`
    tokens."""
    from transformers import AutoConfig

    with user_input(flag, (ImportError,)):
        backbone = model_args.resolved_backbone()
    check_model_path(backbone, flag)
    with _loading_model(backbone, flag):
        config = AutoConfig.from_pretrained(backbone)
    if getattr(config, "model_type", None) == "m2a":
        raise UsageError(
            f"{flag} {backbone!r} is an M2A checkpoint; training starts from an encoder (e.g. MiniLM, bert-base-"
            "uncased). To evaluate or predict with this model pass --do_train False --do_eval True (or --do_predict "
            "True); to continue an interrupted run use --resume_from_checkpoint."
        )
    check_max_length(data_args.max_length, config, f"the backbone {backbone!r}")
    return backbone


def _data_flag(data_args: DataArguments) -> str:
    """The flag(s) naming the data, with their values, for messages."""
    if data_args.dataset is not None:
        return f"--dataset {data_args.dataset!r}"
    if data_args.dataset_name is not None:
        return f"--dataset_name {data_args.dataset_name!r}"
    return " ".join(f"--{split}_file {path!r}" for split, path in data_args.data_files().items())


def _load_checked_data(data_args: DataArguments, seed: int, map_labels: bool = True) -> Any:
    """`load_data`, with its errors about the data flags reported as `UsageError`s; checks the attribute flags."""
    from m2a_hf.data import DATASET_NAMES

    dataset = data_args.dataset
    named = dataset is None or dataset == "synthetic" or dataset.strip().lower() in DATASET_NAMES
    if not named and Path(dataset).is_file() and not data_args.text_column:
        raise UsageError(
            f"--dataset {dataset!r} is a table file: name its columns with --text_column_names and "
            "--label_column_name (and --attribute_columns)."
        )
    with user_input(_data_flag(data_args)):
        data = load_data(data_args, seed=seed, map_labels=map_labels)
    with user_input("--attribute_columns"):
        names = attribute_columns(data, data_args)
    if not names:  # M2A without attributes would train, then fail to split its evaluation by seen / unseen values
        raise UsageError(
            f"{_data_flag(data_args)}: no attribute columns; M2A adapts to at least one attribute: name the columns "
            "with --attribute_columns (e.g. --attribute_columns user,item)."
        )
    _check_seen_attribute(data_args.seen_attribute, names)
    return data


def _check_seen_attribute(seen_attribute: str | None, names: Sequence[str]) -> None:
    if seen_attribute is not None and seen_attribute not in names:
        raise UsageError(
            f"--seen_attribute {seen_attribute!r} is not an attribute here; expected one of {list(names)}."
        )


def _check_launch(training_args: TrainingArguments) -> None:
    """`m2a_hf.distributed.check_launch`: a multi-process launch without distributed training is a `UsageError`."""
    with user_input("multi-process launch", errors=(ValueError,)):
        check_launch(training_args)


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


def _load_m2a_config(model_path: str, flag: str = "--model_path") -> Any:
    """The `M2AConfig` of a checked `--model_path`; a config of another model type is a `UsageError`."""
    from m2a_hf.modeling import M2AConfig

    with _loading_model(model_path, flag):
        config_dict, _ = M2AConfig.get_config_dict(model_path)
        model_type = config_dict.get("model_type")
        if model_type != M2AConfig.model_type:
            raise UsageError(
                f"{flag} {model_path!r} is not an M2A checkpoint (its config.json has model_type "
                f"{model_type!r}, expected {M2AConfig.model_type!r}); pass a folder written by `m2a-hf train`."
            )
        return M2AConfig.from_dict(config_dict)  # from_pretrained would read config.json a second time


def cmd_train(argv: list[str]) -> dict[str, Any]:
    """`m2a-hf train`: train M2A (and `--baseline`); `--do_eval` / `--do_predict` add the validation metrics
    (`eval_results.json`) and the test predictions (`predict_results.txt`); `--do_train False` evaluates / predicts
    with the M2A checkpoint given as `--model_name_or_path`, training nothing."""
    model_args, data_args, procedure, training_args = parse_arguments(
        "train", (ModelArguments, DataArguments, ProcedureArguments, TrainingArguments), argv
    )
    _check_launch(training_args)
    do_train, do_eval, do_predict = requested_steps(argv)
    if not do_train:
        return _evaluate_without_training(model_args, data_args, training_args, do_eval, do_predict, argv)
    _check_backbone(model_args, data_args, _backbone_flag(argv))
    from m2a_hf.output_dir import check_output_dir
    from m2a_hf.training import overwrite_requested

    resume = training_args.resume_from_checkpoint
    with user_input("--output_dir", errors=(FileExistsError,)):
        check_output_dir(
            training_args.output_dir,
            overwrite=overwrite_requested(training_args, procedure),
            resume=resume is not None and str(resume).strip().lower() != "false",
        )
    data = _load_checked_data(data_args, seed=training_args.seed)
    result = train_m2a(model_args, data_args, training_args, procedure, data=data)
    rows = [(f"M2A ({view} view)", result.metrics["test"][view]) for view in ("fine", "coarse")]
    if procedure.baseline:
        # the baseline is a comparison, not the model: its Trainer must not push a peft adapter into M2A's repo
        base_args = dataclasses.replace(
            training_args, output_dir=str(Path(training_args.output_dir) / "baseline"), push_to_hub=False
        )
        base = train_baseline(model_args, data_args, base_args, procedure, data=data)
        rows.append(("LoRA baseline (no attributes)", base.metrics["test"]["iid"]))
        result.metrics["baseline"] = base.metrics
    if is_main_process(training_args):  # the other processes of a multi-process run print nothing
        _print_table(rows)
        print(f"\nsaved to {result.output_dir} (metrics.json, training_curves.png, README.md model card)")
        if training_args.push_to_hub:
            from m2a_hf.hub import hub_repo_id

            print(f"pushed to the Hub repository {hub_repo_id(training_args)}")
        if do_eval:
            from m2a_hf.training import evaluate_checkpoint

            batch_size = training_args.per_device_eval_batch_size
            evaluation = evaluate_checkpoint(result.output_dir, data_args, "validation", batch_size, data=data)
            _report_split(evaluation, "validation", Path(result.output_dir) / EVAL_RESULTS)
            result.metrics["validation"] = evaluation
        if do_predict:
            path = Path(result.output_dir) / PREDICT_RESULTS
            write_predict_results(path, result.test_predictions["fine"], result.model.config.id2label)
            print(f"test predictions (fine view) written to {path}")
    return result.metrics


EVAL_RESULTS = "eval_results.json"
"""`--do_eval`: the validation metrics of both views, in the output folder."""
TEST_RESULTS = "test_results.json"
"""`--do_predict --do_train False`: the test metrics of both views, in the output folder."""
PREDICT_RESULTS = "predict_results.txt"
"""`--do_predict`: the test predictions, as transformers' `run_classification.py` writes them."""


def write_predict_results(path: Path, predicted: Sequence[int], id2label: dict[int, str]) -> None:
    """`run_classification.py`'s `predict_results.txt`: a header `index<TAB>prediction`, then one line per test row
    with its predicted label (the fine view: each row's attributes used, unknown values by their unknown LoRA)."""
    lines = ["index\tprediction\n"] + [f"{i}\t{id2label[int(label)]}\n" for i, label in enumerate(predicted)]
    path.write_text("".join(lines), encoding="utf-8")


def _report_split(metrics: dict[str, Any], split: str, path: Path | None) -> None:
    """Print both views' metrics on `split`; write them to `path` when given."""
    _print_table([(f"M2A ({view} view), {split}", metrics[view]) for view in ("fine", "coarse")])
    if path is not None:
        path.write_text(json.dumps(metrics, indent=2, default=float) + "\n", encoding="utf-8")
        print(f"metrics written to {path}")


def _model_and_data(
    model_path: str, data_args: DataArguments, splits: Sequence[str], flag: str
) -> tuple[Any, DataArguments, Any]:
    """The data to evaluate the M2A checkpoint `model_path` on, checked before any work: the model's attributes
    are the default `--attribute_columns` and must be columns of every split in `splits`; `--max_length` must fit
    the model. Labels stay values, matched with the model's classes by `evaluate_checkpoint`.

    Returns:
        The model's `M2AConfig`, the (possibly updated) data arguments and the data.
    """
    check_model_path(model_path, flag)
    config = _load_m2a_config(model_path, flag)
    names = list(config.attribute_names)
    if data_args.attribute_columns is None and names:  # the model's attributes, by default
        data_args = dataclasses.replace(data_args, attribute_columns=",".join(names))
    check_max_length(data_args.max_length, config.backbone_config, f"the model {model_path!r}")
    data = _load_checked_data(data_args, seed=42, map_labels=False)
    for split in splits:
        missing = [name for name in names if name not in data[split].column_names]
        if missing:
            raise UsageError(
                f"the {split} split has no column for the model's attribute(s) {missing}; the model has "
                f"attributes {names} (pass --attribute_columns, or --text_column/--label_column for a table file)."
            )
        if len(data[split]) == 0:
            raise UsageError(f"{_data_flag(data_args)}: the {split} split is empty; give data for it.")
    _check_seen_attribute(data_args.seen_attribute, names)
    return config, data_args, data


def _evaluate_without_training(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: TrainingArguments,
    do_eval: bool,
    do_predict: bool,
    argv: Sequence[str],
) -> dict[str, Any]:
    """`m2a-hf train --do_train False`: the M2A checkpoint `--model_name_or_path` on the validation split
    (`--do_eval`) and the test split (`--do_predict`), results in `--output_dir`."""
    from m2a_hf.training import evaluate_checkpoint

    flag = _backbone_flag(argv)
    if not (do_eval or do_predict):
        raise UsageError("--do_train False with neither --do_eval nor --do_predict: there is nothing to do.")
    if model_args.backbone is None:
        raise UsageError(
            "--do_train False evaluates a trained M2A model: pass its folder or Hub id as --model_name_or_path."
        )
    model_path = model_args.backbone
    splits = [split for split, wanted in (("validation", do_eval), ("test", do_predict)) if wanted]
    config, data_args, data = _model_and_data(model_path, data_args, splits, flag)
    out = Path(training_args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    batch_size = training_args.per_device_eval_batch_size
    results: dict[str, Any] = {}
    if do_eval:
        results["validation"] = evaluate_checkpoint(model_path, data_args, "validation", batch_size, data=data)
        _report_split(results["validation"], "validation", out / EVAL_RESULTS)
    if do_predict:
        predictions: dict[str, Any] = {}
        results["test"] = evaluate_checkpoint(
            model_path, data_args, "test", batch_size, data=data, predictions=predictions
        )
        _report_split(results["test"], "test", out / TEST_RESULTS)
        write_predict_results(out / PREDICT_RESULTS, predictions["fine"], config.id2label)
        print(f"test predictions (fine view) written to {out / PREDICT_RESULTS}")
    return results


def cmd_evaluate(argv: list[str]) -> dict[str, Any]:
    eval_args, data_args = parse_arguments("evaluate", (EvaluateArguments, DataArguments), argv)
    from m2a_hf.training import evaluate_checkpoint

    check_output_file(eval_args.output_file, "--output_file")
    _, data_args, data = _model_and_data(eval_args.model_path, data_args, [eval_args.split], "--model_path")
    metrics = evaluate_checkpoint(
        eval_args.model_path, data_args, split=eval_args.split, batch_size=eval_args.batch_size, data=data
    )
    _print_table([(f"M2A ({view} view), {eval_args.split}", metrics[view]) for view in ("fine", "coarse")])
    if eval_args.output_file:
        Path(eval_args.output_file).write_text(json.dumps(metrics, indent=2) + "\n")
        print(f"metrics written to {eval_args.output_file}")
    return metrics


def attribute_ids(records: Sequence[InputRecord], pipe: Any, check_vocab: bool = True) -> list[list[int]]:
    """The attribute ids of every record (by `pipe`'s vocabulary); an attribute name the model does not have is a
    `UsageError` naming the line."""
    attribute_names = list(pipe.attribute_names)
    known = set(attribute_names)
    for record in records:
        unknown = sorted(set(record.attributes) - known)
        if unknown:
            raise UsageError(
                f"input line {record.line}: unknown attribute(s) {unknown}; this model has attributes "
                f"{attribute_names}."
            )
    return [pipe.attribute_ids_for(record.attributes, check_vocab=check_vocab) for record in records]


@contextlib.contextmanager
def _output_stream(target: str) -> Iterator[IO[str]]:
    if target == "-":
        yield sys.stdout
        return
    with open(Path(target).expanduser(), "w", encoding="utf-8") as stream:
        yield stream


def cmd_predict(argv: list[str]) -> int:
    """Check every input line, then predict `--batch_size` lines at a time, writing each batch when it is done.

    Returns:
        The number of predictions written.
    """
    (args,) = parse_arguments("predict", (PredictArguments,), argv)
    from m2a_hf.hub import load_pipeline

    check_model_path(args.model_path)
    check_output_file(args.output_file, "--output_file")
    records = read_records(args.input)
    _load_m2a_config(args.model_path)
    with _loading_model(args.model_path), _no_progress_bar(local=Path(args.model_path).expanduser().is_dir()):
        pipe = load_pipeline(args.model_path)
    ids = attribute_ids(records, pipe, check_vocab=args.view is None)  # other views ignore the attributes
    with _output_stream(args.output_file) as out:
        for start in range(0, len(records), args.batch_size):
            batch = records[start : start + args.batch_size]
            batch_ids = ids[start : start + args.batch_size]
            inputs = [
                {"text": r.text, "attribute_ids": i, **({"text_pair": r.text_pair} if r.text_pair is not None else {})}
                for r, i in zip(batch, batch_ids, strict=True)
            ]
            outputs = pipe(inputs, batch_size=len(inputs), view=args.view, top_k=args.top_k)
            rows = []
            for record, record_ids, output in zip(batch, batch_ids, outputs, strict=True):
                row = {} if record.id is None else {"id": record.id}
                row["text"] = record.text
                if record.text_pair is not None:
                    row["text_pair"] = record.text_pair
                row["attributes"] = record.attributes
                row["unknown_attributes"] = [
                    name for name, i in zip(pipe.attribute_names, record_ids, strict=True) if i < 0
                ]
                row["prediction"] = output[0] if args.top_k == 1 and isinstance(output, list) else output
                rows.append(json.dumps(row) + "\n")
            out.write("".join(rows))
            out.flush()
    if args.output_file != "-":
        print(f"{len(records)} predictions written to {args.output_file}")
    return len(records)


def cmd_push(argv: list[str]) -> str:
    (args,) = parse_arguments("push", (PushArguments,), argv)
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from m2a_hf.hub import push_checkpoint

    check_model_path(args.model_path, local_only=True)
    try:
        validate_repo_id(args.repo_id)
    except HFValidationError as err:
        raise UsageError(f"--repo_id {args.repo_id!r}: {_one_line(err)}") from err
    url = push_checkpoint(args.model_path, args.repo_id, adapter_only=args.adapter_only, private=args.private)
    print(f"pushed {'adapter' if args.adapter_only else 'model'} to {url}")
    return url


def cmd_demo(argv: list[str]) -> dict[str, Any]:
    demo, model_args, data_args, training_args = parse_arguments(
        "demo", (DemoArguments, ModelArguments, DataArguments, TrainingArguments), argv
    )
    explicit = given_flags(argv)

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
    _check_launch(training_args)
    main_process = is_main_process(training_args)  # the others of a multi-process run train, print and write nothing
    backbone = _check_backbone(model_args, data_args, _backbone_flag(argv))
    if main_process:
        print(f"== M2A demo on {data_args.source()!r} data, backbone {backbone}")
    data = _load_checked_data(data_args, seed=training_args.seed)
    if main_process:
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
    if not main_process:
        return result.metrics
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
    print(f"\n== predictions (attribute {name!r}; an unknown value uses that attribute's unknown LoRA)")
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


USAGE = """\
usage: m2a-hf [--debug] {train,evaluate,predict,demo,push} [--help] [options]
  train     train M2A (and optionally the LoRA baseline) on a dataset; every TrainingArguments flag works
  evaluate  evaluate a saved checkpoint on a split, attribute-aware and attribute-free views
  predict   predict labels for texts with attribute values (JSON lines from a file or stdin)
  demo      synthetic data (or --dataset clothing): M2A vs a LoRA baseline, in minutes on a CPU
  push      upload a checkpoint (or only its adapter) to the Hugging Face Hub
  --debug   show the traceback of an error (also accepted after the command)
"""
_COMMAND_FUNCTIONS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "demo": cmd_demo,
    "push": cmd_push,
}


def split_debug_flag(argv: list[str]) -> tuple[bool, list[str]]:
    """Take the global `--debug` out of `argv`, wherever it is.

    After `train` or `demo`, `--debug VALUE` is `TrainingArguments.debug` and stays.
    """
    debug, rest = False, []
    for index, arg in enumerate(argv):
        if arg == "--debug":
            value = argv[index + 1] if index + 1 < len(argv) else None
            trainer_flag = bool(rest) and rest[0] in ("train", "demo") and value is not None
            if not (trainer_flag and not value.startswith("-")):
                debug = True
                continue
        rest.append(arg)
    return debug, rest


def main(argv: list[str] | None = None) -> int:
    """Run `m2a-hf`; returns the exit status (0, or 2 for a user error; other errors propagate)."""
    debug, argv = split_debug_flag(list(sys.argv[1:] if argv is None else argv))
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="", file=sys.stdout if argv else sys.stderr)
        return 0 if argv else EXIT_USAGE
    command, rest = argv[0], argv[1:]
    prog = f"m2a-hf {command}" if command in COMMANDS else "m2a-hf"
    try:
        if command not in COMMANDS:
            close = difflib.get_close_matches(command, COMMANDS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UsageError(
                f"unknown command {command!r}; {hint}expected one of {', '.join(COMMANDS)} (see `m2a-hf --help`)."
            )
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        _COMMAND_FUNCTIONS[command](rest)
    except UsageError as err:
        if debug:
            traceback.print_exc()
        print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
