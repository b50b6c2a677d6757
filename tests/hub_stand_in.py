"""A local stand-in for the Hugging Face Hub, for tests only.

This is *not* the Hub and not a general mock of it: it is a small stdlib `http.server` on 127.0.0.1 (OS-chosen port)
that answers just the routes the `huggingface_hub` client (2.x, httpx-based) and `transformers` use to push a model
and load it back. Nothing leaves the machine; nothing is contacted.

Routes (model, dataset and space repos; repo ids must be `namespace/name`):

    GET  /api/whoami-v2                                      fixed user `stand-in-user`
    POST /api/repos/create                                   409 if it exists (so `exist_ok=True` works)
    POST /api/validate-yaml                                  parses the README front matter with PyYAML
    POST /api/{type}s/{repo_id}/preupload/{rev}              always "regular" (no LFS, no Xet), with the git oid
    POST /api/{type}s/{repo_id}/commit/{rev}                 NDJSON; `file` (base64), `deletedFile`, `deletedFolder`
    GET  /api/{type}s/{repo_id}[/revision/{rev}]             `sha`, `siblings`, card metadata
    GET  /api/{type}s/{repo_id}/tree/{rev}[/{path}]          one page, `recursive` honoured
    GET  /api/{type}s/{repo_id}/commits/{rev}                newest first
    HEAD|GET /[{type}s/]{repo_id}/resolve/{rev}/{path}       ETag, X-Repo-Commit, Content-Length; simple Range

Each commit gets its own 40-hex sha and an immutable snapshot, so `revision=<sha>` pins an old state. File contents
live in a temporary directory (content-addressed); it is removed on `stop()`. Limits: one request body at most
`max_body_bytes`, all stored blobs at most `max_total_bytes` (413 past either). Write routes (every POST but
`validate-yaml`, which `ModelCard.validate` calls anonymously) need an `Authorization` header (any token), like the
real Hub, so a missing `HF_TOKEN` shows up in tests.

`huggingface_hub` reads `HF_ENDPOINT` (and `HF_HUB_DISABLE_XET`) when it is imported, so code that must talk to the
stand-in through the library defaults runs in a subprocess: see `hub_env` and `run_with_hub`.
"""

from __future__ import annotations

import base64
import collections
import datetime as _dt
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from helpers import thread_env
from typing_extensions import Self


logger = logging.getLogger(__name__)

STAND_IN_USER = "stand-in-user"
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_API_RE = re.compile(
    r"^/api/(models|datasets|spaces)/([^/]+/[^/]+?)(?:/(revision|tree|preupload|commit|commits)(?:/(.*))?)?/?$"
)
_RESOLVE_RE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_INITIAL_GITATTRIBUTES = (
    b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"
)
RESULT_MARKER = "@@HUB_STAND_IN_RESULT@@"


def git_blob_oid(content: bytes) -> str:
    """The git blob sha1 of `content` (what the Hub reports as a regular file's `oid`)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class _HubError(Exception):
    def __init__(self, status: int, message: str, error_code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code


@dataclass
class _Commit:
    sha: str
    title: str
    message: str
    parent: str | None
    files: dict[str, tuple[str, int]]  # path -> (blob oid, size)
    date: str


@dataclass
class _Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, _Commit] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)  # commit shas, oldest first
    branches: dict[str, str] = field(default_factory=dict)  # branch -> sha

    def resolve(self, revision: str) -> _Commit:
        revision = unquote(revision)
        revision = revision.removeprefix("refs/heads/")
        if revision in self.branches:
            return self.commits[self.branches[revision]]
        if revision in self.commits:
            return self.commits[revision]
        raise _HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")


class HubStandIn:
    """A local, in-memory-indexed, disk-backed stand-in for the Hub's HTTP API (see the module docstring).

    Args:
        max_body_bytes: Largest request body accepted.
        max_total_bytes: Largest total size of all stored file contents.

    Example:
        >>> with HubStandIn() as hub:  # doctest: +SKIP
        ...     HfApi(endpoint=hub.url, token="dummy").create_repo("me/model")
    """

    def __init__(self, max_body_bytes: int = 256 * 2**20, max_total_bytes: int = 2 * 2**30):
        self.max_body_bytes = max_body_bytes
        self.max_total_bytes = max_total_bytes
        self.requests: collections.deque[tuple[str, str, int]] = collections.deque(maxlen=2000)
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._lock = threading.RLock()
        self._stored_bytes = 0
        self._commit_counter = 0
        self._root: Path | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the Hub stand-in is not running; call `start()` first.")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        """Bind 127.0.0.1 on a free port, serve in a daemon thread and return the endpoint URL."""
        if self._server is not None:
            return self.url
        self._root = Path(tempfile.mkdtemp(prefix="hub-stand-in-"))
        (self._root / "blobs").mkdir()
        handler = type("_BoundHandler", (_Handler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="hub-stand-in", daemon=True)
        self._thread.start()
        logger.debug("Hub stand-in listening on %s (storage %s)", self.url, self._root)
        return self.url

    def stop(self) -> None:
        """Stop serving, close the socket and delete the stored files."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
        with self._lock:
            self._repos.clear()
            self._stored_bytes = 0

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------------- inspection
    def repo_ids(self, repo_type: str = "model") -> list[str]:
        with self._lock:
            return sorted(rid for rtype, rid in self._repos if rtype == repo_type)

    def commit_shas(self, repo_id: str, repo_type: str = "model") -> list[str]:
        """The repo's commit shas, oldest first (the first one is the repo-creation commit)."""
        with self._lock:
            return list(self._get_repo(repo_type, repo_id).history)

    def read_file(self, repo_id: str, path: str, revision: str = "main", repo_type: str = "model") -> bytes:
        with self._lock:
            commit = self._get_repo(repo_type, repo_id).resolve(revision)
            if path not in commit.files:
                raise KeyError(f"{path!r} is not in {repo_id}@{commit.sha}")
            return self._blob_path(commit.files[path][0]).read_bytes()

    def list_files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> list[str]:
        with self._lock:
            return sorted(self._get_repo(repo_type, repo_id).resolve(revision).files)

    # -------------------------------------------------------------------------------------------------- storage
    def _blob_path(self, oid: str) -> Path:
        assert self._root is not None
        return self._root / "blobs" / oid

    def _store_blob(self, content: bytes) -> tuple[str, int]:
        oid = git_blob_oid(content)
        path = self._blob_path(oid)
        if not path.exists():
            if self._stored_bytes + len(content) > self.max_total_bytes:
                raise _HubError(413, f"storage limit of the Hub stand-in reached ({self.max_total_bytes} bytes)")
            path.write_bytes(content)
            self._stored_bytes += len(content)
        return oid, len(content)

    def _get_repo(self, repo_type: str, repo_id: str) -> _Repo:
        repo = self._repos.get((repo_type, repo_id))
        if repo is None:
            raise _HubError(404, f"Repository not found: {repo_type} {repo_id}", "RepoNotFound")
        return repo

    def _new_commit(self, repo: _Repo, branch: str, files: dict[str, tuple[str, int]], title: str, message: str):
        parent = repo.branches.get(branch)
        self._commit_counter += 1
        listing = json.dumps(sorted(files.items()), separators=(",", ":"))
        digest_input = f"{repo.repo_type}/{repo.repo_id}\n{parent}\n{self._commit_counter}\n{title}\n{listing}"
        sha = hashlib.sha1(digest_input.encode()).hexdigest()
        date = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        commit = _Commit(sha=sha, title=title, message=message, parent=parent, files=dict(files), date=date)
        repo.commits[sha] = commit
        repo.history.append(sha)
        repo.branches[branch] = sha
        return commit

    # --------------------------------------------------------------------------------------------------- routes
    def create_repo(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = payload.get("name")
        if not isinstance(name, str) or not name or "/" in name:
            raise _HubError(400, f"invalid repo name {name!r}")
        namespace = payload.get("organization") or STAND_IN_USER
        repo_type = payload.get("type") or "model"
        if repo_type not in _URL_PREFIX:
            raise _HubError(400, f"invalid repo type {repo_type!r}")
        repo_id = f"{namespace}/{name}"
        url = f"{self.url}/{_URL_PREFIX[repo_type]}{repo_id}"
        with self._lock:
            if (repo_type, repo_id) in self._repos:  # the Hub also sends the url, which `exist_ok=True` reads
                return 409, {"error": "You already created this repo", "url": url}
            now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            private = payload.get("visibility") == "private" or bool(payload.get("private"))
            repo = _Repo(repo_type=repo_type, repo_id=repo_id, private=private, created_at=now)
            self._repos[(repo_type, repo_id)] = repo
            blob = self._store_blob(_INITIAL_GITATTRIBUTES)
            self._new_commit(repo, "main", {".gitattributes": blob}, "initial commit", "")
        return 200, {"url": url, "name": repo_id, "id": repo_id}

    def validate_yaml(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        import yaml

        content = payload.get("content") or ""
        match = re.match(r"^\s*---\s*\n(.*?)\n---\s*\n", content, flags=re.DOTALL)
        if match is None:
            return 200, {"errors": [], "warnings": [{"message": "empty or missing yaml metadata in repo card"}]}
        try:
            meta = yaml.safe_load(match.group(1))
        except yaml.YAMLError as err:
            return 400, {"errors": [{"message": f"invalid YAML: {err}"}], "warnings": []}
        if meta is not None and not isinstance(meta, dict):
            return 400, {"errors": [{"message": "metadata must be a YAML mapping"}], "warnings": []}
        return 200, {"errors": [], "warnings": []}

    def preupload(self, repo: _Repo, revision: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            files = repo.resolve(revision).files
        except _HubError:
            files = {}  # committing to a new branch: nothing to compare with
        answer = []
        for entry in payload.get("files", []):
            path = entry["path"]
            answer.append(
                {
                    "path": path,
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": files[path][0] if path in files else None,
                }
            )
        return {"files": answer}

    def commit(self, repo: _Repo, revision: str, body: bytes, query: dict[str, list[str]]) -> dict[str, Any]:
        if query.get("create_pr", ["0"])[0] not in ("0", "", "false"):
            raise _HubError(501, "the Hub stand-in does not implement pull requests")
        branch = unquote(revision)
        branch = branch.removeprefix("refs/heads/")
        if branch not in repo.branches:
            raise _HubError(
                404, f"Invalid rev id: {branch} (the stand-in commits to existing branches only)", "RevisionNotFound"
            )
        files = dict(repo.commits[repo.branches[branch]].files)
        title, message = "", ""
        for raw_line in body.splitlines():
            if not raw_line.strip():
                continue
            item = json.loads(raw_line)
            key, value = item.get("key"), item.get("value", {})
            if key == "header":
                title, message = value.get("summary", ""), value.get("description", "")
                parent = value.get("parentCommit")
                if parent is not None and parent != repo.branches[branch]:
                    raise _HubError(412, f"parentCommit {parent} is not the head of {branch}")
            elif key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise _HubError(400, f"unsupported encoding {value.get('encoding')!r}")
                files[value["path"]] = self._store_blob(base64.b64decode(value["content"]))
            elif key == "deletedFile":
                if value["path"] not in files:
                    raise _HubError(404, f"A file with this name doesn't exist: {value['path']}", "EntryNotFound")
                del files[value["path"]]
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                for path in [p for p in files if p.startswith(prefix)]:
                    del files[path]
            else:  # "lfsFile" and anything newer: never requested by this stand-in's preupload answers
                raise _HubError(400, f"the Hub stand-in does not accept {key!r} commit operations")
        commit = self._new_commit(repo, branch, files, title or "Upload files", message)
        return {
            "commitUrl": f"{self.url}/{_URL_PREFIX[repo.repo_type]}{repo.repo_id}/commit/{commit.sha}",
            "commitOid": commit.sha,
            "pullRequestUrl": None,
        }

    def repo_info(self, repo: _Repo, revision: str) -> dict[str, Any]:
        commit = repo.resolve(revision)
        card = self._card_metadata(commit)
        info: dict[str, Any] = {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.sha,
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": list(card.get("tags") or []),
            "siblings": [
                {"rfilename": path, "size": size, "blobId": oid} for path, (oid, size) in sorted(commit.files.items())
            ],
        }
        if card:
            info["cardData"] = card
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
            for key in ("pipeline_tag", "library_name"):
                if card.get(key):
                    info[key] = card[key]
        return info

    def _card_metadata(self, commit: _Commit) -> dict[str, Any]:
        if "README.md" not in commit.files:
            return {}
        import yaml

        text = self._blob_path(commit.files["README.md"][0]).read_text(encoding="utf-8", errors="replace")
        match = re.match(r"^\s*---\s*\n(.*?)\n---\s*\n", text, flags=re.DOTALL)
        if match is None:
            return {}
        try:
            meta = yaml.safe_load(match.group(1))
        except yaml.YAMLError:
            return {}
        return meta if isinstance(meta, dict) else {}

    def tree(self, repo: _Repo, revision: str, path: str, recursive: bool) -> list[dict[str, Any]]:
        commit = repo.resolve(revision)
        prefix = unquote(path).strip("/")
        prefix = prefix + "/" if prefix else ""
        if prefix and not any(p.startswith(prefix) for p in commit.files):
            raise _HubError(404, f"{path} does not exist on {revision}", "EntryNotFound")
        entries: dict[str, dict[str, Any]] = {}
        for file_path, (oid, size) in sorted(commit.files.items()):
            if not file_path.startswith(prefix):
                continue
            rest = file_path[len(prefix) :].split("/")
            for depth in range(1, len(rest)):  # intermediate folders
                if not recursive and depth > 1:
                    break
                folder = prefix + "/".join(rest[:depth])
                oid_folder = hashlib.sha1(f"{commit.sha}:{folder}".encode()).hexdigest()
                entries.setdefault(folder, {"type": "directory", "path": folder, "oid": oid_folder})
            if recursive or len(rest) == 1:
                entries[file_path] = {"type": "file", "path": file_path, "size": size, "oid": oid}
        return list(entries.values())

    def commits(self, repo: _Repo, revision: str) -> list[dict[str, Any]]:
        sha: str | None = repo.resolve(revision).sha
        out = []
        while sha is not None:
            commit = repo.commits[sha]
            out.append(
                {
                    "id": commit.sha,
                    "title": commit.title,
                    "message": commit.message,
                    "authors": [],
                    "date": commit.date,
                }
            )
            sha = commit.parent
        return out


class _Handler(BaseHTTPRequestHandler):
    hub: HubStandIn  # set on the per-server subclass
    protocol_version = "HTTP/1.1"
    server_version = "HubStandIn/1"
    timeout = 60  # seconds an idle keep-alive connection may hold its thread

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("hub stand-in: " + format, *args)

    # ------------------------------------------------------------------------------------------------- plumbing
    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > self.hub.max_body_bytes:
                    raise _HubError(413, "request body too large for the Hub stand-in")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.hub.max_body_bytes:
            self.close_connection = True
            raise _HubError(413, "request body too large for the Hub stand-in")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, head: bool = False):
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if body and not head:
            self.wfile.write(body)
        self.hub.requests.append((self.command, self.path, status))

    def _send_json(self, status: int, payload: Any, head: bool = False) -> None:
        body = json.dumps(payload).encode()
        self._send(status, body, {"Content-Type": "application/json"}, head=head)

    def _send_error(self, err: _HubError, head: bool = False) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": err.message.replace("\n", " ")[:500]}
        if err.error_code:
            headers["X-Error-Code"] = err.error_code
        body = json.dumps({"error": err.message}).encode()
        self._send(err.status, body, headers, head=head)

    def _dispatch(self, method: str) -> None:
        head = method == "HEAD"
        try:
            body = self._read_body() if method == "POST" else b""
            parts = urlsplit(self.path)
            path, query = parts.path, parse_qs(parts.query)  # path stays quoted: segments are unquoted one by one
            if method == "POST" and path != "/api/validate-yaml" and not self.headers.get("Authorization"):
                raise _HubError(401, "Invalid credentials in Authorization header (no token sent)")
            self._route(method, path, query, body, head)
        except _HubError as err:
            self._send_error(err, head=head)
        except (ValueError, KeyError, json.JSONDecodeError) as err:
            self._send_error(_HubError(400, f"bad request: {err!r}"), head=head)
        except Exception as err:  # pragma: no cover - keep the server alive and report
            logger.exception("Hub stand-in failed on %s %s", method, self.path)
            self._send_error(_HubError(500, f"Hub stand-in internal error: {err!r}"), head=head)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # --------------------------------------------------------------------------------------------------- routing
    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes, head: bool) -> None:
        hub = self.hub
        if path == "/api/whoami-v2" and method in ("GET", "HEAD"):
            payload = {
                "type": "user",
                "name": STAND_IN_USER,
                "fullname": "Hub stand-in user",
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "dummy", "role": "write"}},
            }
            return self._send_json(200, payload, head=head)
        if path == "/api/repos/create" and method == "POST":
            status, payload = hub.create_repo(json.loads(body or b"{}"))
            return self._send_json(status, payload)
        if path == "/api/validate-yaml" and method == "POST":
            status, payload = hub.validate_yaml(json.loads(body or b"{}"))
            return self._send_json(status, payload)

        match = _API_RE.match(path)
        if match:
            type_plural, repo_id, action, rest = match.groups()
            repo_type = REPO_TYPES[type_plural]
            with hub._lock:
                repo = hub._get_repo(repo_type, repo_id)
                if action is None and method in ("GET", "HEAD"):
                    return self._send_json(200, hub.repo_info(repo, "main"), head=head)
                if action == "revision" and method in ("GET", "HEAD") and rest:
                    return self._send_json(200, hub.repo_info(repo, rest), head=head)
                if action == "preupload" and method == "POST" and rest:
                    return self._send_json(200, hub.preupload(repo, rest, json.loads(body or b"{}")))
                if action == "commit" and method == "POST" and rest:
                    return self._send_json(200, hub.commit(repo, rest, body, query))
                if action == "commits" and method == "GET" and rest:
                    return self._send_json(200, hub.commits(repo, rest))
                if action == "tree" and method == "GET" and rest:
                    revision, _, sub_path = rest.partition("/")
                    recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
                    return self._send_json(200, hub.tree(repo, revision, sub_path, recursive))
            raise _HubError(404, f"the Hub stand-in does not implement {method} {path}")

        match = _RESOLVE_RE.match(path)
        if match and method in ("GET", "HEAD"):
            type_plural, repo_id, revision, file_path = match.groups()
            repo_type = REPO_TYPES[type_plural] if type_plural else "model"
            with hub._lock:
                commit = hub._get_repo(repo_type, repo_id).resolve(revision)
                file_path = unquote(file_path)
                if file_path not in commit.files:
                    raise _HubError(404, f"Entry not found: {file_path}", "EntryNotFound")
                oid, size = commit.files[file_path]
                content = b"" if head else hub._blob_path(oid).read_bytes()
            headers = {
                "Content-Type": "application/octet-stream",
                "ETag": f'"{oid}"',
                "X-Repo-Commit": commit.sha,
                "Accept-Ranges": "bytes",
            }
            status = 200
            range_header = self.headers.get("Range")
            if range_header and not head:
                start_text, _, end_text = range_header.removeprefix("bytes=").partition("-")
                start = int(start_text or 0)
                end = int(end_text) if end_text else size - 1
                content = content[start : end + 1]
                headers["Content-Range"] = f"bytes {start}-{start + len(content) - 1}/{size}"
                status = 206
            headers["Content-Length"] = str(size if head else len(content))
            return self._send(status, content, headers, head=head)
        raise _HubError(404, f"the Hub stand-in does not implement {method} {path}")


# ------------------------------------------------------------------------------------------- subprocess helpers
_PREAMBLE = """\
import json as _hub_json, sys as _hub_sys

def emit(obj):
    '''Hand a JSON-serialisable result back to the test (read it with `read_result`).'''
    print("\\n" + {marker!r} + _hub_json.dumps(obj), flush=True)  # own line, even after a prompt without newline
"""

_BLOCK_M2A = """\
import importlib.abc as _hub_abc

class _BlockM2AHF(_hub_abc.MetaPathFinder):
    '''Makes `import m2a_hf` fail, to prove that a checkpoint works without the library installed.'''
    def find_spec(self, name, path=None, target=None):
        if name == "m2a_hf" or name.startswith("m2a_hf."):
            raise ModuleNotFoundError(f"{name} is blocked in this test: checkpoints must not need m2a_hf", name=name)
        return None

_hub_sys.meta_path.insert(0, _BlockM2AHF())
"""


def hub_env(endpoint: str | None, hf_home: str | os.PathLike, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process that talks to `endpoint` (or to nothing, when `endpoint` is None).

    `HF_ENDPOINT` must be set before `huggingface_hub` is imported, hence a child process. `HF_HOME` points at a
    private cache so that downloads really go through the stand-in and the developer's cache is never touched.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    env.update(
        HF_HOME=str(hf_home),
        HF_TOKEN="dummy",
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        TOKENIZERS_PARALLELISM="false",
        **thread_env(),  # the parent's thread count: numbers computed in the child match the parent's
        PYTHONWARNINGS="ignore::DeprecationWarning",
    )
    if endpoint is None:
        env["HF_HUB_OFFLINE"] = "1"
    else:
        env["HF_ENDPOINT"] = endpoint
    env.update(extra or {})
    return env


def run_with_hub(
    script: str,
    endpoint: str | HubStandIn | None,
    *,
    hf_home: str | os.PathLike | None = None,
    block_m2a_hf: bool = False,
    pythonpath: list[str | os.PathLike] | None = None,
    cwd: str | os.PathLike | None = None,
    timeout: float = 180,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run `script` in a fresh Python whose `huggingface_hub` talks to `endpoint` (the stand-in's URL).

    The script gets an `emit(obj)` helper; `read_result(proc)` returns the last emitted object.

    Args:
        script: Python source (dedented automatically).
        endpoint: The stand-in (or its URL), or None to run with `HF_HUB_OFFLINE=1`.
        hf_home: Cache root for the child; a fresh temporary one (deleted afterwards) when None.
        block_m2a_hf: Run isolated (`python -I`: no PYTHONPATH, no cwd on `sys.path`) from a temporary directory,
            with a `sys.meta_path` hook that makes any `import m2a_hf...` fail.
        pythonpath: Extra `sys.path` entries (ignored with `block_m2a_hf`).
        cwd: Working directory (a temporary one with `block_m2a_hf` when None).
        timeout: Seconds before the child is killed.
        check: Raise `AssertionError` with the child's output when it exits non-zero.
    """
    if isinstance(endpoint, HubStandIn):
        endpoint = endpoint.url
    body = textwrap.dedent(script)
    source = _PREAMBLE.format(marker=RESULT_MARKER) + (_BLOCK_M2A if block_m2a_hf else "") + "\n" + body
    with tempfile.TemporaryDirectory(prefix="hub-run-") as tmp:
        script_path = Path(tmp) / "hub_script.py"
        script_path.write_text(source, encoding="utf-8")
        home = Path(hf_home) if hf_home is not None else Path(tmp) / "hf_home"
        env = hub_env(endpoint, home)
        args = [sys.executable]
        if block_m2a_hf:
            args.append("-I")
            env.pop("PYTHONPATH", None)
            cwd = cwd if cwd is not None else tmp
        elif pythonpath:
            env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        args.append(str(script_path))
        proc = subprocess.run(
            args,
            check=False,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"child process failed with exit code {proc.returncode}\n--- stdout ---\n{proc.stdout[-6000:]}"
            f"\n--- stderr ---\n{proc.stderr[-12000:]}"
        )
    return proc


def read_result(proc: subprocess.CompletedProcess[str]) -> Any:
    """The last object the child passed to `emit`, or raise `AssertionError` if it emitted nothing."""
    for line in reversed(proc.stdout.splitlines()):
        if RESULT_MARKER in line:
            return json.loads(line.split(RESULT_MARKER, 1)[1])
    raise AssertionError(
        f"the child emitted no result\n--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-8000:]}"
    )


__all__ = ["RESULT_MARKER", "STAND_IN_USER", "HubStandIn", "git_blob_oid", "hub_env", "read_result", "run_with_hub"]


if __name__ == "__main__":  # pragma: no cover - manual use: python tests/hub_stand_in.py
    logging.basicConfig(level=logging.INFO)
    with HubStandIn() as _hub:
        print(
            f"Hub stand-in at {_hub.url} (Ctrl-C to stop); e.g. HF_ENDPOINT={_hub.url} HF_TOKEN=dummy "
            "HF_HUB_DISABLE_XET=1"
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
