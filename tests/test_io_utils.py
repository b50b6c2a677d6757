"""`m2a_hf.io_utils`: a file is its previous content or the complete new one, never partial."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from m2a_hf.io_utils import write_json_atomic, write_text_atomic


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_json_atomic_formats_and_creates_the_folder(tmp_path):
    path = write_json_atomic(tmp_path / "sub" / "a.json", {"b": 1, "é": [1.5]}, indent=1, ensure_ascii=False)
    assert path.read_text(encoding="utf-8") == json.dumps({"b": 1, "é": [1.5]}, indent=1, ensure_ascii=False) + "\n"
    write_json_atomic(path, {"b": 2})  # replaces
    assert json.loads(path.read_text()) == {"b": 2}
    assert _leftovers(path.parent) == []


def test_mode_follows_the_umask_like_open(tmp_path):
    write_text_atomic(tmp_path / "atomic.txt", "x")
    (tmp_path / "plain.txt").write_text("x")
    assert os.stat(tmp_path / "atomic.txt").st_mode == os.stat(tmp_path / "plain.txt").st_mode


def test_failures_leave_the_previous_file(tmp_path, monkeypatch):
    path = write_json_atomic(tmp_path / "a.json", {"v": 1})
    before = path.read_bytes()
    with pytest.raises(TypeError):  # not serialisable: nothing is touched
        write_json_atomic(path, {"v": {1, 2}})
    assert path.read_bytes() == before and _leftovers(tmp_path) == []

    def dies(*args, **kwargs):
        raise KeyboardInterrupt  # a BaseException, as an interrupt would be

    monkeypatch.setattr(os, "replace", dies)
    with pytest.raises(KeyboardInterrupt):
        write_json_atomic(path, {"v": 2})
    assert path.read_bytes() == before and _leftovers(tmp_path) == []
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(tmp_path / "new.md", "card")
    assert not (tmp_path / "new.md").exists() and _leftovers(tmp_path) == []
