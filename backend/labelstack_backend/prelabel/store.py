"""Where pre-labeling progress lives, and the one-run-per-project lock.

With ``REDIS_URL``: ``<prefix>:prelabel:<project>`` (JSON) and ``<prefix>:prelabel-lock:<project>``
(``SET NX PX``, renewed by the run's heartbeat, so it expires by itself when its pod dies), shared
by every replica. Without: JSON files under ``MODEL_DIR/prelabel/`` and one ``flock`` per project,
which the kernel drops when the process holding it dies.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import redis

from labelstack_backend.coordination.link import RedisLink
from labelstack_backend.diskspace import file_lock, storage_errors
from labelstack_backend.prelabel.progress import Progress
from labelstack_backend.registry.store import atomic_write, safe_name
from labelstack_backend.settings import Settings
from labelstack_backend.training.redis_store import RedisLease
from labelstack_backend.training.state import TrainingLease, _FileLease

Lease = TrainingLease  # renew() -> still ours; release()


class ProgressStore(Protocol):
    def get(self, project: str) -> Progress: ...

    def update(self, project: str, change: Callable[[Progress], Progress]) -> Progress:
        """Apply ``change`` atomically; it may run more than once, so it must be pure."""

    def all(self) -> list[Progress]: ...

    def try_lock(self, project: str, owner: str, ttl: float) -> Lease | None:
        """The project's pre-labeling lock, or None while another run holds it."""


def _parse(project: str, raw: Any) -> Progress:
    try:
        return Progress.from_json(json.loads(raw)) if raw else Progress(project)
    except (ValueError, TypeError):
        return Progress(project)


class FileProgressStore:
    def __init__(self, root: Path) -> None:
        self.root = root  # MODEL_DIR/prelabel

    def _path(self, project: str) -> Path:
        return self.root / f"{safe_name(project)}.json"

    def get(self, project: str) -> Progress:
        try:
            return _parse(project, self._path(project).read_text())
        except FileNotFoundError:
            return Progress(project)

    def update(self, project: str, change: Callable[[Progress], Progress]) -> Progress:
        with storage_errors(self.root), file_lock(self.root / ".state.lock"):
            new = replace(change(self.get(project)), updated_at=time.time())
            atomic_write(self._path(project), json.dumps(new.to_json()))
            return new

    def all(self) -> list[Progress]:
        if not self.root.is_dir():
            return []
        return [self.get(p.stem) for p in sorted(self.root.glob("*.json"))]

    def try_lock(self, project: str, owner: str, ttl: float) -> Lease | None:
        with storage_errors(self.root):
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / f"{safe_name(project)}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return _FileLease(fd)


class RedisProgressStore:
    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self._index = link.key("prelabels")

    def _key(self, project: str) -> str:
        return self.link.key("prelabel", project)

    def get(self, project: str) -> Progress:
        return _parse(project, self.link.run("prelabel get", lambda r: r.get(self._key(project))))

    def update(self, project: str, change: Callable[[Progress], Progress]) -> Progress:
        key = self._key(project)
        out: list[Progress] = []

        def transaction(pipe: redis.client.Pipeline) -> None:
            new = replace(change(_parse(project, pipe.get(key))), updated_at=time.time())
            pipe.multi()
            pipe.set(key, json.dumps(new.to_json()))
            pipe.sadd(self._index, project)
            out[:] = [new]

        self.link.run("prelabel update", lambda r: r.transaction(transaction, key))
        return out[0]

    def all(self) -> list[Progress]:
        def read(r: redis.Redis) -> list[Progress]:
            projects = sorted(p.decode() if isinstance(p, bytes) else str(p) for p in r.smembers(self._index))
            values = r.mget([self._key(p) for p in projects]) if projects else []
            return [_parse(p, v) for p, v in zip(projects, values, strict=True)]

        return self.link.run("prelabel list", read)

    def try_lock(self, project: str, owner: str, ttl: float) -> Lease | None:
        key = self.link.key("prelabel-lock", project)
        taken = self.link.run(
            "prelabel lock", lambda r: r.set(key, owner, nx=True, px=max(1, int(ttl * 1000)))
        )
        return RedisLease(self.link, key, owner, ttl) if taken else None


def open_store(settings: Settings, link: RedisLink | None) -> ProgressStore:
    """Redis when scaled out (every replica sees the run and its lock), else files in MODEL_DIR."""
    if link is not None:
        return RedisProgressStore(link)
    return FileProgressStore(settings.model_dir_resolved / "prelabel")
