"""Reading files: lines with an encoding fallback, (loose) JSON lines, and tables (CSV/TSV/JSON/Parquet), gzip or not."""

from __future__ import annotations

import ast
import csv
import gzip
import itertools
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, AnyStr, BinaryIO

import pandas as pd


logger = logging.getLogger(__name__)

OPEN_QUOTE_NEWLINES = 5
"""A quoted CSV / TSV field with more line breaks than this is checked for a quote left open."""

SHOWN_LINES = 10
"""How many line numbers a message lists."""


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


def parse_json_line(path: Path, number: int, line: str) -> dict[str, Any]:
    """Parses one line of a JSON-lines file: strict JSON, else a Python literal (the "loose JSON" of older dumps).

    Raises:
        ValueError: Naming ``path`` and the 1-based line ``number`` when the line is neither, or not an object.
    """
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        try:
            record = ast.literal_eval(line)
        except (ValueError, SyntaxError) as error:
            raise ValueError(f"{path}: line {number} is neither JSON nor a Python literal: {error}.") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: line {number} is a {type(record).__name__}; expected a JSON object.")
    return record


def iter_json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yields ``(line number, record)`` for a JSON-lines file (optionally gzip).

    Lines that are not strict JSON are read as Python literals (the "loose JSON" of the older Amazon dumps).
    """
    for number, line in iter_lines(path):
        yield number, parse_json_line(path, number, line)


def columns_from_records(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Records to columns (the union of their keys, in first-seen order; absent keys give ``None``)."""
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    return {name: [record.get(name) for record in records] for name in names}


def columns_from_frame(frame: pd.DataFrame) -> dict[str, list[Any]]:
    """A DataFrame to columns."""
    return {str(name): frame[name].tolist() for name in frame.columns}


def _split_lines(data: AnyStr) -> list[AnyStr]:
    """Splits on ``\\n`` only, keeping it at the end of each line (no empty last piece)."""
    newline = b"\n" if isinstance(data, bytes) else "\n"
    pieces = data.split(newline)
    lines = [piece + newline for piece in pieces[:-1]]
    if pieces[-1]:
        lines.append(pieces[-1])
    return lines


def decode_lines(data: bytes) -> tuple[list[str], list[int]]:
    """Decodes a file's bytes into lines (split on ``\\n``, which is kept), with the fallback of :func:`decode_line`.

    The whole file is decoded as UTF-8 when it can be; otherwise each line is decoded on its own, so one stray
    cp1252 byte spoils neither the other lines nor the line numbers. A UTF-8 byte-order mark is dropped.

    Returns:
        The lines, and the 1-based numbers of the lines that were not UTF-8 (decoded as cp1252 or latin-1).
    """
    fallback: list[int] = []
    try:
        lines = _split_lines(data.decode("utf-8"))
    except UnicodeDecodeError:
        lines = []
        for number, raw in enumerate(_split_lines(data), start=1):
            try:
                lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                lines.append(decode_line(raw))
                fallback.append(number)
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    return lines, fallback


def _shown(numbers: Sequence[int]) -> str:
    """``"line 4"`` or ``"lines 4, 9, 13, ..."`` (at most :data:`SHOWN_LINES` numbers)."""
    listed = ", ".join(str(number) for number in numbers[:SHOWN_LINES])
    more = ", ..." if len(numbers) > SHOWN_LINES else ""
    return f"line{'s' if len(numbers) > 1 else ''} {listed}{more}"


def _read_lines(file: Path) -> list[str]:
    """The decoded lines of a text file (optionally gzip); logs a warning naming it when a fallback was used."""
    try:
        data = read_bytes(file)
    except (gzip.BadGzipFile, EOFError) as error:
        raise ValueError(f"{file}: cannot read the file (a damaged gzip?): {error}.") from error
    lines, fallback = decode_lines(data)
    if fallback:
        logger.warning(
            "%s: %d line%s not UTF-8, decoded as cp1252 (latin-1 for the bytes cp1252 lacks): %s.",
            file,
            len(fallback),
            "s are" if len(fallback) > 1 else " is",
            _shown(fallback),
        )
    if not any(line.strip() for line in lines):
        raise ValueError(f"{file}: the file is empty (no header row, no records).")
    return lines


def _column_names(header: list[str]) -> list[str]:
    """Column names as pandas gives them: ``Unnamed: <i>`` for a blank name, ``name.1``, ... for repeats."""
    names: dict[str, None] = {}
    for index, raw in enumerate(header):
        name = raw or f"Unnamed: {index}"
        candidate, count = name, 0
        while candidate in names:
            count += 1
            candidate = f"{name}.{count}"
        names[candidate] = None
    return list(names)


def _describe(error: csv.Error) -> str:
    """A csv error in the file's terms (its "new-line character" error is a lone carriage return)."""
    if "new-line character" in str(error):
        return "a carriage return (\\r) inside an unquoted field (quote the field, or remove the \\r)"
    return str(error)


def _is_blank(fields: list[str]) -> bool:
    """Whether a record is a blank line (skipped, as pandas does)."""
    return not fields or (len(fields) == 1 and not fields[0].strip())


class _DelimitedReader:
    """Reads a CSV / TSV file's decoded lines into rows, knowing the physical line of every record.

    Bad records: a wrong number of fields, a ``csv`` error, and a quoted field that looks like a quote left open
    (see :meth:`open_quote_line`). The reader runs on, so that all of them can be listed; after a quote left open it
    starts again on the line after the one where the quoted field starts, which recovers the rows it swallowed.
    """

    def __init__(self, file: Path, lines: list[str], delimiter: str) -> None:
        self.file, self.lines, self.delimiter = file, lines, delimiter
        self._categories: dict[int, set[str]] | None = None
        self.header_end = 0  # index of the line after the header
        self.names: list[str] = []
        self.rows: list[list[str]] = []
        self.row_lines: list[int] = []
        self.bad: list[tuple[int, str]] = []  # (1-based line, what is wrong there)

    def records(self, begin: int) -> Iterator[tuple[int, int, list[str] | csv.Error]]:
        """Yields ``(first line, last line, fields or the csv error)`` of each record from line index ``begin`` on."""
        reader = csv.reader(itertools.islice(self.lines, begin, None), delimiter=self.delimiter)
        while True:
            first = begin + reader.line_num + 1
            try:
                fields: list[str] | csv.Error = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                fields = error
            yield first, begin + reader.line_num, fields

    def read(self) -> None:
        """Reads the header, then every record into :attr:`rows` / :attr:`row_lines` or :attr:`bad`."""
        for first, last, fields in self.records(0):
            if isinstance(fields, csv.Error):
                raise ValueError(f"{self.file}: line {first}: cannot read the header row: {_describe(fields)}.")
            if not _is_blank(fields):
                self.names, self.header_end = _column_names(fields), last
                break
        if not self.names:
            raise ValueError(f"{self.file}: the file is empty (no header row).")
        position: int | None = self.header_end
        while position is not None:
            position = self._read_from(position)

    def _read_from(self, begin: int) -> int | None:
        """Reads records from line index ``begin``; returns where to start again after a quote left open, else None."""
        expected = len(self.names)
        for first, last, fields in self.records(begin):
            if isinstance(fields, csv.Error):
                self.bad.append((first, f"line {first}: {_describe(fields)}"))
                continue
            if _is_blank(fields):
                continue
            quote_line = self.open_quote_line(first, last, fields)
            if quote_line is not None:
                self.bad.append(
                    (
                        quote_line,
                        f"line {quote_line}: a quoted field starts here and runs to line {last}, over lines that look "
                        f"like rows of their own (a quote left open on line {quote_line})",
                    )
                )
                return quote_line  # the index of the line after it
            if len(fields) != expected:
                detail = f"line {first}: {len(fields)} field{'s' if len(fields) != 1 else ''}, expected {expected}"
                detail += f" ({self.delimiter.join(self.names)})" if expected <= 12 else ""
                if last > first:
                    detail += f"; the row runs over lines {first}-{last} (a quoted field with line breaks)"
                self.bad.append((first, detail))
                continue
            self.rows.append(fields)
            self.row_lines.append(first)
        return None

    def open_quote_line(self, first: int, last: int, fields: list[str]) -> int | None:
        """The line where a quoted field that looks like a quote left open starts, else None.

        A quote left open makes the parser read the following rows into one field, up to the next quote character.
        A field is taken for that when it holds more than :data:`OPEN_QUOTE_NEWLINES` line breaks (or, at the
        end of the file, when the record lacks fields) and at least half of its complete lines look like rows of the
        file (:meth:`looks_like_row`). So a properly quoted text with up to that many line breaks is never flagged,
        nor one with more whose lines are mostly prose; a one-column file is never checked (no delimiter to go by).
        """
        if len(self.names) < 2:
            return None
        newlines_before = 0
        at_end = last >= len(self.lines) and len(fields) != len(self.names)
        for index, field in enumerate(fields):
            count = field.count("\n")
            many = count > OPEN_QUOTE_NEWLINES or (at_end and index == len(fields) - 1 and count > 0)
            if many:
                complete = field.split("\n")[:-1]
                row_like = sum(self.looks_like_row(line) for line in complete)
                if row_like and 2 * row_like >= len(complete):
                    return first + newlines_before
            newlines_before += count
        return None

    def looks_like_row(self, line: str) -> bool:
        """Whether a line inside a field looks like a row: as many delimiters as the header, and, in each column
        with few distinct values (labels, categories: at most 50, and at most half of the rows), a value that
        column holds in the single-line rows of the file."""
        pieces = line.rstrip("\r").split(self.delimiter)
        if len(pieces) != len(self.names):
            return False
        return all(pieces[column] in values for column, values in self.categories().items())

    def categories(self) -> dict[int, set[str]]:
        """The columns with few distinct values and their values, from the single-line rows (computed once)."""
        if self._categories is None:
            seen: list[set[str]] = [set() for _ in self.names]
            count = 0
            for first, last, fields in self.records(self.header_end):
                if isinstance(fields, csv.Error) or first != last or len(fields) != len(self.names):
                    continue
                count += 1
                for column, value in enumerate(fields):
                    seen[column].add(value)
            self._categories = {
                column: values
                for column, values in enumerate(seen)
                if count >= 4 and len(values) <= 50 and 2 * len(values) <= count
            }
        return self._categories


def _read_delimited(file: Path, delimiter: str, skip_bad_rows: bool) -> tuple[dict[str, list[Any]], list[int]]:
    """Reads a CSV / TSV file with :class:`_DelimitedReader`; raises on bad rows, or skips and logs them."""
    reader = _DelimitedReader(file, _read_lines(file), delimiter)
    reader.read()
    if reader.bad:
        bad = sorted(reader.bad)
        lines = [line for line, _ in bad]
        if not skip_bad_rows:
            total = f" ({len(bad)} bad rows in all: {_shown(lines)})" if len(bad) > 1 else ""
            raise ValueError(
                f"{file}: {bad[0][1]}.{total} Fix the file, or pass skip_bad_rows=True (--skip_bad_rows) to skip "
                "bad rows."
            )
        logger.warning(
            "%s: skipped %d bad row%s (%s); the first: %s.",
            file,
            len(bad),
            "s" if len(bad) > 1 else "",
            _shown(lines),
            bad[0][1],
        )
    columns = {name: [row[column] for row in reader.rows] for column, name in enumerate(reader.names)}
    return columns, reader.row_lines


def _read_json(file: Path, kind: str) -> tuple[dict[str, list[Any]], list[int] | None]:
    """Reads a JSON array / JSON object of lists (no line numbers) or JSON lines (with them)."""
    lines = _read_lines(file)
    if kind == ".json" and "".join(lines).lstrip()[:1] in ("[", "{"):
        try:
            loaded = json.loads("".join(lines))
        except json.JSONDecodeError:
            loaded = None  # JSON lines saved as .json
        if isinstance(loaded, list):
            for index, record in enumerate(loaded):
                if not isinstance(record, dict):
                    raise ValueError(
                        f"{file}: element {index} (0-based) of the JSON array is not an object "
                        f"({type(record).__name__})."
                    )
            return columns_from_records(loaded), None
        if isinstance(loaded, dict) and all(isinstance(v, list) for v in loaded.values()):
            return {str(k): list(v) for k, v in loaded.items()}, None
    numbers, records = [], []
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if line.strip():
            records.append(parse_json_line(file, number, line))
            numbers.append(number)
    return columns_from_records(records), numbers


def read_table_with_lines(file: Path, *, skip_bad_rows: bool = False) -> tuple[dict[str, list[Any]], list[int] | None]:
    """Reads a table file like :func:`read_table_file`, with the 1-based line where each row starts.

    Returns:
        The columns, and the line of each row (``None`` for Parquet and JSON arrays, which have no row lines).
    """
    suffixes = [s.lower() for s in file.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    kind = suffixes[-1] if suffixes else ""
    if kind in (".csv", ".tsv", ".tab"):
        return _read_delimited(file, "," if kind == ".csv" else "\t", skip_bad_rows)
    if kind == ".parquet":
        try:
            frame = pd.read_parquet(file)
        except Exception as error:  # pyarrow raises many kinds; name the file
            raise ValueError(f"{file}: cannot read the Parquet file: {error}") from error
        return columns_from_frame(frame), None
    if kind in (".json", ".jsonl", ".ndjson"):
        return _read_json(file, kind)
    raise ValueError(
        f"cannot tell the format of {str(file)!r} from its suffix {''.join(file.suffixes)!r}; expected .csv, .tsv, "
        ".json, .jsonl or .parquet (the text formats optionally followed by .gz)."
    )


def read_table_file(file: Path, *, skip_bad_rows: bool = False) -> dict[str, list[Any]]:
    """Reads CSV / TSV / JSON / JSON lines / Parquet (the text formats optionally gzip) into columns.

    Text files are decoded as UTF-8, falling back per line to cp1252 and then latin-1 (a warning names the file and
    the lines). CSV / TSV are parsed with :mod:`csv` (``"`` quotes, doubled to escape; values kept as strings) and
    checked row by row; every error names the file and the 1-based line:

    * a row with too few or too many fields;
    * a quote left open: a quoted field with more than :data:`OPEN_QUOTE_NEWLINES` line breaks whose lines
      mostly look like rows of the file (as many delimiters as the header; in the columns with few distinct values,
      such as labels, a value those columns hold). Properly quoted texts with line breaks still load.

    Args:
        file: The file; its format comes from the suffix (``.csv``, ``.tsv``/``.tab``, ``.json``, ``.jsonl``/
            ``.ndjson``, ``.parquet``; the text formats optionally followed by ``.gz``).
        skip_bad_rows: Skip the bad rows of a CSV / TSV (logged: how many, and their first lines) instead of raising.
            After a quote left open, reading starts again on the next line, so the rows it swallowed are kept.

    Raises:
        ValueError: On an empty file, a bad row (unless ``skip_bad_rows``), a bad JSON line, an unknown suffix.
    """
    return read_table_with_lines(file, skip_bad_rows=skip_bad_rows)[0]


__all__ = [
    "OPEN_QUOTE_NEWLINES",
    "columns_from_frame",
    "columns_from_records",
    "decode_line",
    "decode_lines",
    "iter_json_lines",
    "iter_lines",
    "open_binary",
    "parse_json_line",
    "read_bytes",
    "read_table_file",
    "read_table_with_lines",
]
