"""What Label Studio's ``/setup`` said about each project, shared by every worker and replica.

Label Studio sends a project's label config, its own URL and an access token once, to
whichever worker answers ``/setup``; the project's later ``/predict`` calls (often without a
label config) and its webhooks land on any worker of any replica. So this state cannot live
in one process:

* :class:`FileProjectStore` — one JSON file per project in the directory the workers of one
  gunicorn server share (``LABELSTACK_WORKER_STATE_DIR``, which gunicorn_conf.py always sets);
* :class:`RedisProjectStore` — in Redis when ``REDIS_URL`` is set, so replicas share it too,
  written through to the local store, which keeps serving while Redis is down;
* :class:`MemoryProjectStore` — one process alone (no gunicorn: tests, ``flask run``).

Only the XML is stored; the parsed :class:`LabelConfig` is rebuilt on read (cached by XML).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from labelstack_backend.coordination.link import RedisLink, RedisUnavailable
from labelstack_backend.errors import BadRequest
from labelstack_backend.labelconfig import LabelConfig, parse_label_config
from labelstack_common.contract import Env

log = logging.getLogger(__name__)

# protocol.project_id() yields digits; a little more is allowed, never a path separator or a dot,
# so that a project value can neither leave the store's directory nor forge another Redis key.
_PROJECT = re.compile(r"[A-Za-z0-9_-]{1,64}")
SUBDIR = "projects"
SUFFIX = ".json"


class InvalidProject(BadRequest):
    """A project id the stores refuse (it could name a path or key outside theirs)."""


def check_project(project: str) -> str:
    if not _PROJECT.fullmatch(project):
        raise InvalidProject(f"invalid project id {project!r}: letters, digits, '-' and '_' only")
    return project


@functools.lru_cache(maxsize=128)
def _parsed(xml: str) -> LabelConfig:
    # Every /predict without a label config reads its project's: parse each XML once per process.
    return parse_label_config(xml)


@dataclass(frozen=True)
class ProjectInfo:
    label_config: str  # the XML, as /setup sent it (already checked by the predictor)
    hostname: str = ""
    access_token: str = field(default="", repr=False)  # kept out of logs and reprs

    @property
    def config(self) -> LabelConfig:
        return _parsed(self.label_config)

    def to_json(self) -> dict[str, str]:
        return {
            "label_config": self.label_config,
            "hostname": self.hostname,
            "access_token": self.access_token,
        }

    @classmethod
    def from_json(cls, data: Any) -> ProjectInfo:
        """Raises ValueError for anything but what :meth:`to_json` wrote."""
        if not isinstance(data, Mapping):
            raise ValueError("not an object")
        xml, host, token = data.get("label_config"), data.get("hostname", ""), data.get("access_token", "")
        if not (isinstance(xml, str) and xml and isinstance(host, str) and isinstance(token, str)):
            raise ValueError("label_config, hostname or access_token missing or not a string")
        return cls(xml, host, token)


class ProjectStore(Protocol):
    def get(self, project: str) -> ProjectInfo | None:
        """What /setup said about ``project``; None when it was never set up (here)."""

    def put(self, project: str, info: ProjectInfo) -> None:
        """Remember ``info`` for ``project``, replacing what was there."""

    def projects(self) -> list[str]:
        """Every project set up, sorted."""


class MemoryProjectStore:
    """One process only: what a single worker outside gunicorn (or a test) needs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._projects: dict[str, ProjectInfo] = {}

    def get(self, project: str) -> ProjectInfo | None:
        with self._lock:
            return self._projects.get(check_project(project))

    def put(self, project: str, info: ProjectInfo) -> None:
        with self._lock:
            self._projects[check_project(project)] = info

    def projects(self) -> list[str]:
        with self._lock:
            return sorted(self._projects)


class FileProjectStore:
    """One JSON file per project, shared by the workers of a server (they fork from one master)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FileProjectStore | None:
        """The store of the gunicorn server this process runs in; None outside gunicorn."""
        env = os.environ if environ is None else environ
        value = env.get(Env.WORKER_STATE_DIR)
        return cls(Path(value) / SUBDIR) if value else None

    def _path(self, project: str) -> Path:
        return self.directory / f"{check_project(project)}{SUFFIX}"

    def get(self, project: str) -> ProjectInfo | None:
        path = self._path(project)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return ProjectInfo.from_json(json.loads(text))
        except ValueError as exc:  # not ours to fix: the next /setup replaces it
            log.warning("ignoring the unreadable project state %s: %s", path, exc)
            return None

    def put(self, project: str, info: ProjectInfo) -> None:
        path = self._path(project)
        # 0700/0600: the files hold Label Studio access tokens.
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkstemp creates the file 0600 whatever the umask; the rename makes the write atomic,
        # so a worker reading at the same time sees the old file or the new one, never half of one.
        fd, name = tempfile.mkstemp(dir=self.directory, prefix=f".{path.name}.", suffix=".tmp")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(info.to_json(), fh, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(path)  # os.replace
        except BaseException:
            with contextlib.suppress(OSError):  # no stray temp file, and the first error is the one raised
                tmp.unlink()
            raise

    def projects(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        names = (p.name.removesuffix(SUFFIX) for p in self.directory.glob(f"*{SUFFIX}"))
        return sorted(n for n in names if _PROJECT.fullmatch(n))


class RedisProjectStore:
    """Shared by every replica through Redis, and written through to ``local``.

    While Redis is unreachable, reads and writes go to ``local`` only: the projects this
    server was set up for keep working; one set up on another replica meanwhile is unknown
    here until Redis is back. A /setup that could not reach Redis is pushed to it when it
    is back (before that, this server reads its own newer copy); a project Redis lost
    (restarted without persistence) but ``local`` knows is written back on its next read.
    """

    def __init__(self, link: RedisLink, local: ProjectStore) -> None:
        self.link = link
        self.local = local
        self._index = link.key("projects")
        self._lock = threading.Lock()
        self._unsynced: set[str] = set()  # set up here while Redis was down
        link.on_reconnect(self.resync)

    def _key(self, project: str) -> str:
        return self.link.key("project", check_project(project))

    def get(self, project: str) -> ProjectInfo | None:
        key = self._key(project)
        with self._lock:
            unsynced = project in self._unsynced
        if unsynced:  # Redis holds an older copy, if any
            info = self.local.get(project)
            if info is not None:
                self._write(project, info)
            return info
        try:
            raw = self.link.run("project get", lambda r: r.get(key))
        except RedisUnavailable as exc:  # the link logged the outage once; this is per request
            log.debug("project %s read from the local store: %s", project, exc.reason)
            return self.local.get(project)
        if raw is not None:
            try:
                info = ProjectInfo.from_json(json.loads(raw))
            except ValueError as exc:
                log.warning("ignoring the unreadable project state %s in Redis: %s", key, exc)
            else:
                return info
        info = self.local.get(project)
        if info is not None:
            self._write(project, info)  # Redis lost it: give it back to the other replicas
        return info

    def put(self, project: str, info: ProjectInfo) -> None:
        self.local.put(project, info)
        self._write(project, info)

    def _write(self, project: str, info: ProjectInfo) -> bool:
        key, value = self._key(project), json.dumps(info.to_json(), sort_keys=True)

        def write(r: Any) -> None:
            pipe = r.pipeline()
            pipe.set(key, value)
            pipe.sadd(self._index, project)
            pipe.execute()

        try:
            self.link.run("project put", write)
        except RedisUnavailable as exc:
            with self._lock:
                first = project not in self._unsynced
                self._unsynced.add(project)
            if first:
                log.warning(
                    "project %s is set up on this server only until Redis is back: %s", project, exc.reason
                )
            return False
        with self._lock:
            self._unsynced.discard(project)
        return True

    def resync(self) -> None:
        """Push what /setup sent here while Redis was down (runs when the link reconnects)."""
        with self._lock:
            pending = sorted(self._unsynced)
        for project in pending:
            info = self.local.get(project)
            if info is None:
                with self._lock:
                    self._unsynced.discard(project)
            elif not self._write(project, info):
                return  # down again: the next reconnect tries the rest
        if pending:
            log.info("pushed %d project setup(s) made during the Redis outage", len(pending))

    def projects(self) -> list[str]:
        try:
            members = self.link.run("project list", lambda r: r.smembers(self._index))
        except RedisUnavailable:
            members = set()
        shared = {m.decode() if isinstance(m, bytes) else str(m) for m in members}
        return sorted(shared | set(self.local.projects()))


def project_store(link: RedisLink | None, environ: Mapping[str, str] | None = None) -> ProjectStore:
    """Redis over the workers' shared directory when both exist; either alone; else memory."""
    local: ProjectStore = FileProjectStore.from_env(environ) or MemoryProjectStore()
    return RedisProjectStore(link, local) if link is not None else local
