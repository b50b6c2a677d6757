"""What the CLI checks before any work: user errors (`UsageError`), model paths, output files and `max_length`, and
the JSON-lines input of `predict` (strict UTF-8, every line validated, errors name the line)."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


# Encoders whose position ids start after the padding index (RoBERTa family): `max_position_embeddings` - 2 tokens.
_OFFSET_POSITION_MODEL_TYPES = frozenset(
    {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text", "longformer", "mpnet"}
)


class UsageError(Exception):
    """A mistake in the command line or in the input it names; `main` prints it as one line and exits with 2."""


def _one_line(err: BaseException, first_line_only: bool = False) -> str:
    """The message of `err` on one line (its first line only, if asked)."""
    text = str(err.args[0] if isinstance(err, KeyError) and err.args else err).strip()
    if first_line_only:
        text = text.splitlines()[0] if text else text
    return " ".join(text.split()) or type(err).__name__


@contextlib.contextmanager
def user_input(
    what: str,
    errors: tuple[type[BaseException], ...] = (ValueError, KeyError, OSError),
    first_line_only: bool = False,
) -> Iterator[None]:
    """Report `errors` raised inside the block (loading what the user named) as a `UsageError` about `what`."""
    try:
        yield
    except UsageError:
        raise
    except errors as err:
        raise UsageError(f"{what}: {_one_line(err, first_line_only)}") from err


def _plausible_repo_id(value: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    parent = Path(value).parent  # 'outputs/model' with a local folder 'outputs' is a path, not a Hub id
    return parent == Path(".") or not parent.is_dir()


def check_model_path(value: str, flag: str = "--model_path", *, local_only: bool = False) -> None:
    """Check that `value` is a model folder (with `config.json`), or else a plausible Hub repo id.

    Raises:
        UsageError: A file, a folder without `config.json`, or a path that exists neither here nor as a Hub id.
    """
    path = Path(value).expanduser()
    expected = "a saved model folder (with config.json)" + ("" if local_only else " or a Hub repo id such as 'me/m2a'")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UsageError(f"{flag} {value!r} is a folder without config.json; expected {expected}.")
        return
    if path.exists():
        raise UsageError(f"{flag} {value!r} is a file; expected {expected}.")
    if local_only or not _plausible_repo_id(value):
        raise UsageError(f"{flag}: no such model folder {value!r}; expected {expected}.")


def check_output_file(value: str | None, flag: str) -> None:
    """Check, before any work, that the folder `value` is to be written in exists (`None` / `'-'`: nothing to do)."""
    if value is None or value == "-":
        return
    path = Path(value).expanduser()
    if path.is_dir():
        raise UsageError(f"{flag} {value!r} is a folder; expected a file name.")
    if not path.parent.is_dir():
        raise UsageError(f"{flag} {value!r}: the folder {str(path.parent)!r} does not exist; create it first.")


def max_positions(backbone_config: Any) -> int | None:
    """How many tokens the encoder of `backbone_config` takes (`max_position_embeddings`), or None if unbounded."""
    limit = getattr(backbone_config, "max_position_embeddings", None)
    if not isinstance(limit, int) or limit <= 0:
        return None
    if getattr(backbone_config, "model_type", None) in _OFFSET_POSITION_MODEL_TYPES:
        pad = getattr(backbone_config, "pad_token_id", None)
        limit -= (pad if isinstance(pad, int) else 1) + 1
    return limit


def check_max_length(max_length: int, backbone_config: Any, model: str) -> None:
    """Reject a `--max_length` the backbone cannot take (more tokens than position embeddings), before any work.

    Raises:
        UsageError: `max_length` < 1 or above the backbone's limit.
    """
    if max_length < 1:
        raise UsageError(f"--max_length must be a positive number of tokens, got {max_length}.")
    limit = max_positions(backbone_config)
    if limit is not None and max_length > limit:
        raise UsageError(
            f"--max_length {max_length} is more than {model} takes: its max_position_embeddings allow {limit} "
            f"tokens; pass --max_length {limit} or less."
        )


# ------------------------------------------------------------------------------------------------- predict
_RECORD_EXAMPLE = '{"text": ..., "<attribute>": ...}'


_NON_ATTRIBUTE_KEYS = frozenset({"text", "text_pair", "id", "label", "attributes"})


@dataclass
class InputRecord:
    """One input line of `predict`: its 1-based line number, text and attribute values (by name)."""

    line: int
    text: str
    attributes: dict[str, Any]
    text_pair: str | None = None
    id: Any = None


def _json_kind(value: Any) -> str:
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return kinds.get(type(value), "number")


def _bad_character(err: UnicodeError) -> str:
    """The offending byte of a decoding error (also a byte smuggled in as a surrogate escape)."""
    bad = err.object[err.start]
    if isinstance(bad, str) and 0xDC80 <= ord(bad) <= 0xDCFF:  # surrogateescape of a non-UTF-8 byte
        bad = ord(bad) - 0xDC00
    return f"0x{bad:02x}" if isinstance(bad, int) else repr(bad)


def _decoded_lines(stream: Iterable[bytes | str]) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(stream, 1):
        try:
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            line.encode("utf-8")  # a text stream may carry undecodable bytes as surrogates
        except UnicodeError as err:
            raise UsageError(
                f"input line {number} is not valid UTF-8 (byte {_bad_character(err)} at position {err.start + 1}); "
                "expected UTF-8 text: re-encode the input (e.g. `iconv -f latin1 -t utf-8`)."
            ) from None
        yield number, line.removeprefix("\ufeff") if number == 1 else line


def input_lines(source: str) -> Iterator[tuple[int, str]]:
    """The lines of `source` (a file, or '-' for stdin) with their 1-based numbers, strictly decoded as UTF-8.

    Raises:
        UsageError: No such file, or a line that is not UTF-8 (naming the line).
    """
    if source == "-":
        yield from _decoded_lines(getattr(sys.stdin, "buffer", sys.stdin))
        return
    path = Path(source).expanduser()
    if not path.is_file():
        problem = "is a folder" if path.is_dir() else "no such file"
        raise UsageError(f"--input {source!r}: {problem}; expected a file of JSON or text lines, or '-' for stdin.")
    with path.open("rb") as stream:
        yield from _decoded_lines(stream)


def parse_record(number: int, line: str) -> InputRecord | None:
    """One input line as a record (None for a blank line): a JSON object, or else plain text.

    Raises:
        UsageError: Naming the line: invalid JSON (a line starting with `{`), JSON that is not an object, no
            string `text`, or attributes that are not an object of strings, numbers, booleans or nulls.
    """
    line = line.strip()
    if not line:
        return None
    if not line.startswith(("{", "[", '"')):
        return InputRecord(number, line, {})
    try:
        value = json.loads(line)
    except json.JSONDecodeError as err:
        if not line.startswith("{"):
            return InputRecord(number, line, {})  # plain text that happens to start with [ or "
        raise UsageError(
            f"input line {number} is not valid JSON ({err.msg} at column {err.colno}): {line[:80]!r}"
        ) from err
    where = f"input line {number}"
    if not isinstance(value, dict):
        raise UsageError(
            f"{where} is a JSON {_json_kind(value)}, not an object; expected {_RECORD_EXAMPLE} or plain text."
        )
    if "text" not in value:
        raise UsageError(f"{where} has no 'text' field; expected {_RECORD_EXAMPLE}: {line[:80]!r}")
    for key in ("text", "text_pair"):
        if key in value and not isinstance(value[key], str) and (key == "text" or value[key] is not None):
            raise UsageError(f"{where}: {key!r} must be a string, got a JSON {_json_kind(value[key])}.")
    if value.get("attributes") is not None:
        attributes = value["attributes"]
        if not isinstance(attributes, dict):
            raise UsageError(
                f"{where}: 'attributes' must be an object {{name: value}}, got a JSON {_json_kind(attributes)}."
            )
    else:
        attributes = {key: item for key, item in value.items() if key not in _NON_ATTRIBUTE_KEYS}
    for name, item in attributes.items():
        if isinstance(item, (dict, list)):
            raise UsageError(
                f"{where}: attribute {name!r} must be a string, number, boolean or null, got a JSON {_json_kind(item)}."
            )
    return InputRecord(number, value["text"], attributes, value.get("text_pair"), value.get("id"))


def read_records(source: str) -> list[InputRecord]:
    """Every record of `source`, all checked (see `parse_record`) before any is used."""
    records = (parse_record(number, line) for number, line in input_lines(source))
    return [record for record in records if record is not None]
