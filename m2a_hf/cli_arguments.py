"""The arguments of `m2a-hf`'s commands and their parsing: the command dataclasses (train's live in
`m2a_hf.arguments`), an `HfArgumentParser` that reports user errors as `UsageError` and lists M2A's groups before the
Trainer's, and what the command line itself says (flags given, the `--do_*` steps)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from transformers import HfArgumentParser, TrainingArguments

from m2a_hf.arguments import FLAG_ALIASES
from m2a_hf.cli_input import UsageError, _one_line
from m2a_hf.training import training_defaults


PREDICT_VIEWS = ("fine", "coarse", "iid")
SPLITS = ("train", "validation", "test")


@dataclass
class EvaluateArguments:
    _argument_group_name = "Evaluation arguments"

    model_path: str = field(metadata={"help": "A saved M2A checkpoint (directory or Hub repo id)."})
    split: str = field(default="test", metadata={"help": "Split to evaluate: train | validation | test."})
    output_file: str | None = field(default=None, metadata={"help": "Write the metrics JSON here."})
    batch_size: int = field(default=64, metadata={"help": "Evaluation batch size."})

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"--split must be one of {', '.join(SPLITS)}, got {self.split!r}.")
        if self.batch_size < 1:
            raise ValueError(f"--batch_size must be at least 1, got {self.batch_size}.")


@dataclass
class PredictArguments:
    _argument_group_name = "Prediction arguments"

    model_path: str = field(metadata={"help": "A saved M2A checkpoint (directory or Hub repo id)."})
    input: str = field(
        default="-",
        metadata={
            "help": "UTF-8 JSON lines ({'text': ..., 'user': ..., ...} or {'text': ..., 'attributes': {...}}) or plain "
            "text lines, from a file or '-' for stdin. Every line is checked before the first prediction."
        },
    )
    output_file: str = field(
        default="-",
        metadata={
            "aliases": ["--output"],
            "help": "Where to write JSON-lines predictions ('-' = stdout), one batch at a time.",
        },
    )
    view: str | None = field(
        default=None,
        metadata={"help": "Unset or 'fine' (use the attributes), 'coarse' (ignore them) or 'iid'."},
    )
    top_k: int = field(default=1, metadata={"help": "Labels per input (at least 1)."})
    batch_size: int = field(default=64, metadata={"help": "Inputs per forward pass."})

    def __post_init__(self) -> None:
        if self.view is not None and self.view not in PREDICT_VIEWS:
            raise ValueError(f"--view must be one of {', '.join(PREDICT_VIEWS)} (or unset), got {self.view!r}.")
        if self.top_k < 1:
            raise ValueError(f"--top_k must be at least 1, got {self.top_k}.")
        if self.batch_size < 1:
            raise ValueError(f"--batch_size must be at least 1, got {self.batch_size}.")


@dataclass
class DemoArguments:
    _argument_group_name = "Demo arguments"

    quick: bool = field(default=False, metadata={"help": "A smaller, faster run (for CI and smoke tests)."})
    skip_baseline: bool = field(default=False, metadata={"help": "Do not train the attribute-free LoRA baseline."})


@dataclass
class PushArguments:
    _argument_group_name = "Push arguments"

    model_path: str = field(metadata={"help": "A saved M2A checkpoint directory."})
    repo_id: str = field(metadata={"help": "Hub repository, e.g. 'me/m2a-clothing'."})
    adapter_only: bool = field(default=False, metadata={"help": "Upload only the trained adapter weights."})
    private: bool = field(default=False, metadata={"help": "Create the repository as private."})


# ------------------------------------------------------------------------------------------------ arguments
TRAINER_GROUP = (
    "Trainer arguments (transformers.TrainingArguments: the standard flags of every Trainer script, such as "
    "run_classification.py; see TrainingArguments in the transformers documentation)"
)
"""The `--help` title of the `TrainingArguments` flags, listed after M2A's own groups."""


class _ArgumentParser(HfArgumentParser):
    """`HfArgumentParser` that raises `UsageError` instead of printing usage and exiting, and lists each dataclass's
    flags under a titled group (ours by their `_argument_group_name`; `TrainingArguments` under `TRAINER_GROUP`)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`).")

    def _add_dataclass_arguments(self, dtype: Any) -> None:
        if hasattr(dtype, "_argument_group_name") or not issubclass(dtype, TrainingArguments):
            super()._add_dataclass_arguments(dtype)
            return
        # HfArgumentParser makes a group only from `_argument_group_name`, which TrainingArguments lacks: its flags
        # would come first, under "options". A subclass carrying the title builds the same flags in a group.
        super()._add_dataclass_arguments(type(dtype.__name__, (dtype,), {"_argument_group_name": TRAINER_GROUP}))


def _parser(*types: type, prog: str = "m2a-hf") -> HfArgumentParser:
    description = None
    if TrainingArguments in types:
        description = (
            "M2A's own arguments come first (model, data, procedure); every transformers TrainingArguments flag "
            "(--output_dir, --learning_rate, --do_train/--do_eval/--do_predict, --push_to_hub, ...) works as in any "
            "Trainer script and is listed last, under its own title."
        )
    parser = _ArgumentParser(types, prog=prog, usage=f"{prog} [-h] [options]", description=description)
    if TrainingArguments in types:
        parser.set_defaults(**training_defaults())
    return parser


def parse_arguments(command: str, types: Sequence[type], argv: list[str]) -> tuple[Any, ...]:
    """Parse `argv` into one instance of each of `types` (the dataclasses of `command`).

    Raises:
        UsageError: An unknown flag (with the closest known one), a missing or malformed value, or a value the
            dataclasses reject (their `ValueError`s, e.g. `--top_k 0`).
    """
    parser = _parser(*types, prog=f"m2a-hf {command}")
    try:
        *parsed, unknown = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
    except ValueError as err:
        raise UsageError(_one_line(err)) from err
    if unknown:
        flag = next((arg.split("=")[0] for arg in unknown if arg.startswith("-")), unknown[0])
        known = [option for option in parser._option_string_actions if option.startswith("--")]
        close = difflib.get_close_matches(flag, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise UsageError(f"unrecognized argument(s): {' '.join(unknown)}{hint} (see `m2a-hf {command} --help`).")
    return tuple(parsed)


def given_flags(argv: Sequence[str]) -> set[str]:
    """The fields set on the command line (`--name value` or `--name=value`), aliases as the field they set
    (`--max_seq_length` -> `max_length`, see `m2a_hf.arguments.FLAG_ALIASES`)."""
    names = {arg.split("=")[0][2:] for arg in argv if arg.startswith("--")}
    return {FLAG_ALIASES.get(name, name) for name in names}


def _backbone_flag(argv: Sequence[str]) -> str:
    """The flag the user named the backbone with, for messages."""
    return "--model_name_or_path" if any(a.split("=")[0] == "--model_name_or_path" for a in argv) else "--backbone"


STEPS = ("do_train", "do_eval", "do_predict")


def requested_steps(argv: Sequence[str]) -> tuple[bool, bool, bool]:
    """`(do_train, do_eval, do_predict)` as given on the command line.

    None of the three given: train as always (with M2A's own evaluation: dev for model selection, test in
    `metrics.json`) and nothing more. Else each is `False` unless set, as in `run_classification.py`. Read from
    `argv`, not from `TrainingArguments`, whose `__post_init__` turns `do_eval` on whenever `eval_strategy` is set.
    """
    import argparse

    from transformers.hf_argparser import string_to_bool

    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for step in STEPS:
        parser.add_argument(f"--{step}", type=string_to_bool, nargs="?", const=True, default=None)
    given, _ = parser.parse_known_args(list(argv))
    values = [getattr(given, step) for step in STEPS]
    if all(value is None for value in values):
        return True, False, False
    return tuple(bool(value) for value in values)  # type: ignore[return-value]


__all__ = [
    "PREDICT_VIEWS",
    "SPLITS",
    "STEPS",
    "TRAINER_GROUP",
    "DemoArguments",
    "EvaluateArguments",
    "PredictArguments",
    "PushArguments",
    "given_flags",
    "parse_arguments",
    "requested_steps",
]
