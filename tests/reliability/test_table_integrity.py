"""CSV/TSV integrity of the table reader (``read_table_file`` / ``load_table``): every problem names the file and
the 1-based line, a quote left open is caught instead of silently swallowing rows, ``skip_bad_rows`` skips and logs,
and non-UTF-8 bytes are decoded with a warning. All files are written here with made-up text.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m2a_hf.data import load_table
from m2a_hf.data.io import read_table_file


HEADER = "text,label,user"
KWARGS = {"text_column": "text", "label_column": "label", "attribute_columns": ["user"], "seed": 0}


def _row(i: int) -> str:
    return f"made-up review number {i},{i % 5},u{i % 3}"


def _write(path: Path, lines: list[str], *, newline: str = "\n") -> Path:
    path.write_bytes((newline.join(lines) + newline).encode("utf-8"))
    return path


def _open_quote_file(path: Path, rows: int = 120) -> Path:
    """``rows`` rows; the text on line 11 opens a quote that is never closed, and line 21 holds a stray quote.

    A CSV parser reads lines 11..21 as one record: a text spanning 11 lines, with the label and user of line 21.
    """
    lines = [HEADER, *(_row(i) for i in range(rows))]
    lines[10] = '"made-up review that opens a quote,4,u1'
    lines[20] = 'made-up review with a 12" ruler,3,u2'
    return _write(path, lines)


def _all_rows(dsd) -> list[dict]:
    return [row for split in dsd.values() for row in split]


# ---------------------------------------------------------------------------------------------- quote left open
def test_open_quote_is_an_error_naming_file_and_line(tmp_path):
    file = _open_quote_file(tmp_path / "reviews.csv")
    with pytest.raises(ValueError, match=r"reviews\.csv.*line 11\b.*quote") as error:
        load_table(file, **KWARGS)
    assert "skip_bad_rows" in str(error.value)
    with pytest.raises(ValueError, match=r"reviews\.csv.*line 11\b"):
        read_table_file(file)


def test_open_quote_skipped_recovers_the_swallowed_rows(tmp_path, caplog):
    file = _open_quote_file(tmp_path / "reviews.csv")
    with caplog.at_level(logging.WARNING, logger="m2a_hf"):
        dsd = load_table(file, skip_bad_rows=True, **KWARGS)
    rows = _all_rows(dsd)
    assert len(rows) == 119  # only line 11 is lost; lines 12..21 are read again as rows
    texts = {row["text"] for row in rows}
    assert "made-up review number 10" in texts and 'made-up review with a 12" ruler' in texts
    assert not any("\n" in text for text in texts)
    message = " ".join(record.getMessage() for record in caplog.records)
    assert re.search(r"reviews\.csv.*skipped 1 bad row.*line 11\b", message)


def test_quote_open_until_end_of_file(tmp_path):
    lines = [HEADER, *(_row(i) for i in range(30))]
    lines[25] = '"made-up review that never closes,1,u0'
    file = _write(tmp_path / "t.csv", lines)
    with pytest.raises(ValueError, match=r"t\.csv.*line 26\b"):
        load_table(file, **KWARGS)
    columns = read_table_file(file, skip_bad_rows=True)
    assert len(columns["text"]) == 29 and columns["text"][-1] == "made-up review number 29"


def test_legitimate_multiline_quoted_text_loads(tmp_path):
    """Properly quoted texts with embedded newlines (a few, or many lines of prose with commas) are not flagged."""
    short = "made-up first paragraph.\nmade-up second, with a comma."
    long = "\n".join(f"made-up paragraph {k}, with commas, {k} of them" for k in range(9))  # 2 commas per line
    blank_lines = "made-up start\n\n\n\n\n\n\nmade-up end, after blank lines"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["text", "label", "user"])
    for i in range(20):
        writer.writerow([f"made-up review number {i}", i % 5, f"u{i % 3}"])
    writer.writerows([[short, 1, "u0"], [long, 2, "u1"], [blank_lines, 3, "u2"]])
    (tmp_path / "t.csv").write_text(buffer.getvalue(), encoding="utf-8")
    columns = read_table_file(tmp_path / "t.csv")
    assert columns["text"][-3:] == [short, long, blank_lines]
    assert columns["label"][-3:] == ["1", "2", "3"] and len(columns["text"]) == 23


def test_line_numbers_count_physical_lines_after_multiline_text(tmp_path):
    """A bad label after a quoted 3-line text is reported on its physical line (10), not its row index (6)."""
    lines = [HEADER, *(_row(i) for i in range(5)), '"made-up text\nover three\nlines",2,u0', "made-up,nine,u1"]
    file = _write(tmp_path / "t.csv", lines)
    with pytest.raises(ValueError, match=r"t\.csv: line 10\b.*'nine'"):
        load_table(file, **KWARGS)


# ---------------------------------------------------------------------------------------------- field counts
def test_too_few_fields_is_an_error_naming_the_line(tmp_path):
    lines = [HEADER, *(_row(i) for i in range(10))]
    lines[6] = "made-up review with no user,3"
    file = _write(tmp_path / "short.csv", lines)
    with pytest.raises(ValueError, match=r"short\.csv: line 7\b.*2 fields.*expected 3"):
        load_table(file, **KWARGS)


def test_too_many_fields_is_an_error_naming_the_line(tmp_path):
    lines = [HEADER, *(_row(i) for i in range(10))]
    lines[4] = "made-up review, with an unquoted comma,3,u1"
    file = _write(tmp_path / "long.csv", lines)
    with pytest.raises(ValueError, match=r"long\.csv: line 5\b.*4 fields.*expected 3"):
        load_table(file, **KWARGS)


def test_tsv_gz_field_count_error_names_the_line(tmp_path):
    lines = ["text\tlabel\tuser", *(f"made-up {i}\t{i % 2}\tu{i}" for i in range(8)), "made-up\t1"]
    file = tmp_path / "t.tsv.gz"
    file.write_bytes(gzip.compress(("\r\n".join(lines) + "\r\n").encode("utf-8")))
    with pytest.raises(ValueError, match=r"t\.tsv\.gz: line 10\b.*2 fields"):
        load_table(file, **KWARGS)


def test_skip_bad_rows_skips_and_logs_count_and_lines(tmp_path, caplog):
    lines = [HEADER, *(_row(i) for i in range(40))]
    for index in (3, 8, 15, 22, 30, 35):
        lines[index] = "made-up review without the other fields"
    lines[12] = "made-up,1,u1,extra"
    file = _write(tmp_path / "bad.csv", lines)
    with pytest.raises(ValueError, match=r"bad\.csv: line 4\b.*7 bad rows"):
        load_table(file, **KWARGS)
    with caplog.at_level(logging.WARNING, logger="m2a_hf"):
        dsd = load_table(file, skip_bad_rows=True, **KWARGS)
    assert len(_all_rows(dsd)) == 40 - 7
    message = " ".join(record.getMessage() for record in caplog.records)
    assert re.search(r"bad\.csv: skipped 7 bad rows.*lines 4, 9, 13, 16, 23", message)


def test_skip_bad_rows_from_data_arguments(tmp_path):
    from m2a_hf.training import DataArguments, load_data

    lines = [HEADER, *(_row(i) for i in range(40))]
    lines[5] = "made-up review without the other fields"
    file = _write(tmp_path / "bad.csv", lines)
    args = DataArguments(dataset=str(file), text_column="text", label_column="label", attribute_columns="user")
    with pytest.raises(ValueError, match=r"bad\.csv: line 6\b"):
        load_data(args)
    args.skip_bad_rows = True
    assert sum(split.num_rows for split in load_data(args).values()) == 39


# ---------------------------------------------------------------------------------------------- empty files
@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
@pytest.mark.parametrize("name", ["empty.csv", "empty.tsv", "empty.jsonl", "empty.json"])
def test_empty_file_is_a_clear_error(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=rf"{re.escape(name)}.*empty"):
        load_table(tmp_path / name, **KWARGS)


# ---------------------------------------------------------------------------------------------- encodings
def test_latin1_and_cp1252_bytes_decode_with_a_warning(tmp_path, caplog):
    utf8_lines = [HEADER.encode(), *(_row(i).encode() for i in range(10))]
    utf8_lines[3] = "made-up café review,2,u0".encode()
    utf8_lines[5] = b"made-up caf\xe9 review,3,u1"  # latin-1 / cp1252 e-acute
    utf8_lines[7] = b"made-up \x93quoted\x94 review,4,u2"  # cp1252 curly quotes
    (tmp_path / "mixed.csv").write_bytes(b"\n".join(utf8_lines) + b"\n")
    with caplog.at_level(logging.WARNING, logger="m2a_hf"):
        columns = read_table_file(tmp_path / "mixed.csv")
    assert columns["text"][2] == "made-up café review"
    assert columns["text"][4] == "made-up café review"
    assert columns["text"][6] == "made-up \u201cquoted\u201d review"
    message = " ".join(record.getMessage() for record in caplog.records)
    assert re.search(r"mixed\.csv.*2 lines.*not UTF-8.*lines 6, 8\b", message)


def test_jsonl_fallback_warns_and_errors_name_the_line(tmp_path, caplog):
    lines = [
        b'{"text": "made-up caf\xe9", "label": 1, "user": "u0"}',
        b'{"text": "made-up", "label": 0, "user": "u1"}',
    ]
    (tmp_path / "t.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    with caplog.at_level(logging.WARNING, logger="m2a_hf"):
        assert read_table_file(tmp_path / "t.jsonl")["text"] == ["made-up café", "made-up"]
    assert re.search(r"t\.jsonl.*1 line.*not UTF-8.*line 1\b", " ".join(r.getMessage() for r in caplog.records))
    (tmp_path / "bad.jsonl").write_bytes(b"\n".join([lines[1], b"", b'{"text": "made-up", "label": ']) + b"\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl: line 3\b"):
        read_table_file(tmp_path / "bad.jsonl")


def test_latin1_json_array_decodes(tmp_path):
    (tmp_path / "t.json").write_bytes(b'[{"text": "made-up caf\xe9", "label": 1}]')
    assert read_table_file(tmp_path / "t.json") == {"text": ["made-up café"], "label": [1]}


# ---------------------------------------------------------------------------------------------- round trip
# "\r" only within "\r\n": Python 3.11's csv.writer leaves a lone "\r" unquoted, which no CSV reader reads back.
_TEXT = (
    st.lists(st.sampled_from([*"abc xyz,;\t\"'\n.é\u201c", "\r\n"]), min_size=1, max_size=40)
    .map("".join)
    .filter(lambda text: text.strip() and text.count("\n") <= 5)
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(_TEXT, min_size=1, max_size=12),
    delimiter=st.sampled_from([",", "\t"]),
    terminator=st.sampled_from(["\n", "\r\n"]),
)
def test_any_properly_quoted_table_round_trips(tmp_path, texts, delimiter, terminator):
    """Whatever the texts hold (delimiters, quotes, newlines, non-ASCII), a table written by ``csv.writer`` reads back."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=terminator)
    writer.writerow(["text", "label"])
    writer.writerows([text, str(i)] for i, text in enumerate(texts))
    file = tmp_path / ("t.csv" if delimiter == "," else "t.tsv")
    file.write_bytes(buffer.getvalue().encode("utf-8"))
    columns = read_table_file(file)
    assert columns["label"] == [str(i) for i in range(len(texts))]
    assert columns["text"] == texts
