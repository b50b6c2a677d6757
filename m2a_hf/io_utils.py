"""Crash-safe file writes: a file is either its previous content or the complete new one, never a partial write.

Each write goes to a temporary file in the target's directory (same filesystem), is flushed to disk, then renamed over
the target with `os.replace`, which is atomic on POSIX and Windows. A process killed mid-write leaves at most a stray
`.<name>.*.tmp` file beside an intact target.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically (no newline translation) and return the path.

    Args:
        path: Target file; its directory is created if needed.
        text: The complete new content.
        encoding: Text encoding.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode(encoding)  # encode first: an encoding error must not leave a temporary file behind
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    # os.open with 0o666 lets the umask decide the mode, as open() does (mkstemp would force 0o600).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | os.PathLike, payload: Any, **dumps_kwargs: Any) -> Path:
    """Serialise `payload` with `json.dumps(payload, **dumps_kwargs)` plus a final newline and write it atomically.

    Serialisation happens before any file is touched, so a value that is not JSON-serialisable leaves `path` as it was.

    Args:
        path: Target file; its directory is created if needed.
        payload: Any JSON-serialisable value.
        **dumps_kwargs: Formatting for `json.dumps` (`indent`, `ensure_ascii`, `sort_keys`, `default`, ...).
    """
    return write_text_atomic(path, json.dumps(payload, **dumps_kwargs) + "\n")


__all__ = ["write_json_atomic", "write_text_atomic"]
