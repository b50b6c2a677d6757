"""Reading files: lines with an encoding fallback, (loose) JSON lines, and tables (CSV/TSV/JSON/Parquet), gzip or not."""

from __future__ import annotations

import ast
import gzip
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd


def decode_line(raw: bytes) -> str:
    """Decodes one line as UTF-8, falling back to cp1252 and then latin-1 (which never fails)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def open_binary(path: Path) -> BinaryIO:
    """Opens a file for reading bytes, gunzipping it when it starts with the gzip magic number (whatever its name)."""
    with open(path, "rb") as handle:
        head = handle.read(2)
    return gzip.open(path, "rb") if head == b"\x1f\x8b" else open(path, "rb")


def read_bytes(path: Path) -> bytes:
    """Reads a whole file (gunzipped when needed)."""
    with open_binary(path) as handle:
        return handle.read()


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yields ``(1-based line number, decoded line)`` for every non-blank line of a text file (optionally gzip).

    The file is streamed. Lines are split on ``\\n`` only (never on the Unicode line breaks that ``str.splitlines``
    also honours, such as cp1252's ellipsis byte 0x85 read as latin-1) and each is decoded on its own with
    :func:`decode_line`, so one stray cp1252 byte does not spoil the file.
    """
    with open_binary(path) as handle:
        for number, raw in enumerate(handle, start=1):
            raw = raw.rstrip(b"\r\n")
            if raw.strip():
                yield number, decode_line(raw)


def iter_json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yields ``(line number, record)`` for a JSON-lines file (optionally gzip).

    Lines that are not strict JSON are read as Python literals (the "loose JSON" of the older Amazon dumps).
    """
    for number, line in iter_lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            try:
                record = ast.literal_eval(line)
            except (ValueError, SyntaxError) as error:
                raise ValueError(f"{path}: line {number} is neither JSON nor a Python literal: {error}.") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}: line {number} is a {type(record).__name__}; expected a JSON object.")
        yield number, record


def columns_from_records(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Records to columns (the union of their keys, in first-seen order; absent keys give ``None``)."""
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    return {name: [record.get(name) for record in records] for name in names}


def columns_from_frame(frame: pd.DataFrame) -> dict[str, list[Any]]:
    """A DataFrame to columns."""
    return {str(name): frame[name].tolist() for name in frame.columns}


def read_table_file(file: Path) -> dict[str, list[Any]]:
    """Reads CSV / TSV / JSON / JSON lines / Parquet (the text formats optionally gzip) into columns."""
    suffixes = [s.lower() for s in file.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    kind = suffixes[-1] if suffixes else ""
    if kind in (".csv", ".tsv", ".tab"):
        separator = "," if kind == ".csv" else "\t"
        frame = pd.read_csv(file, sep=separator, dtype=str, keep_default_na=False, compression="infer")
        return columns_from_frame(frame)
    if kind == ".parquet":
        return columns_from_frame(pd.read_parquet(file))
    if kind in (".json", ".jsonl", ".ndjson"):
        data = read_bytes(file)
        stripped = data.lstrip()
        if kind == ".json" and stripped[:1] in (b"[", b"{"):
            try:
                loaded = json.loads(data.decode("utf-8"))
            except json.JSONDecodeError:
                loaded = None  # JSON lines saved as .json
            if isinstance(loaded, list):
                return columns_from_records(loaded)
            if isinstance(loaded, dict) and all(isinstance(v, list) for v in loaded.values()):
                return {str(k): list(v) for k, v in loaded.items()}
        return columns_from_records([record for _, record in iter_json_lines(file)])
    raise ValueError(
        f"cannot tell the format of {str(file)!r} from its suffix {''.join(file.suffixes)!r}; expected .csv, .tsv, "
        ".json, .jsonl or .parquet (the text formats optionally followed by .gz)."
    )


__all__ = [
    "columns_from_frame",
    "columns_from_records",
    "decode_line",
    "iter_json_lines",
    "iter_lines",
    "open_binary",
    "read_bytes",
    "read_table_file",
]
