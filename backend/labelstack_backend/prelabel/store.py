"""Where pre-labeling progress lives, and the one-run-per-project lock.

With ``REDIS_URL``: ``<prefix>:prelabel:<project>`` (JSON) and ``<prefix>:prelabel-lock:<project>``
(``SET NX PX``, renewed by the run's heartbeat, so it expires by itself when its pod dies), shared
by every replica. Without: JSON files under ``MODEL_DIR/prelabel/`` and one ``flock`` per project,
which the kernel drops when the process holding it dies.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from labelstack_backend.coordination.link import RedisLink
from labelstack_backend.coordination.records import RedisRecords, parse_record
from labelstack_backend.diskspace import file_lock, storage_errors, try_flock
from labelstack_backend.prelabel.progress import Progress
from labelstack_backend.registry.store import atomic_write, safe_name
from labelstack_backend.settings import Settings
from labelstack_backend.training.state import TrainingLease

Lease = TrainingLease  # renew() -> still ours; release()


class ProgressStore(Protocol):
    def get(self, project: str) -> Progress: ...

    def update(self, project: str, change: Callable[[Progress], Progress]) -> Progress:
        """Apply ``change`` atomically; it may run more than once, so it must be pure."""

    def all(self) -> list[Progress]: ...

    def try_lock(self, project: str, owner: str, ttl: float) -> Lease | None:
        """The project's pre-labeling lock, or None while another run holds it."""


def _parse(project: str, raw: Any) -> Progress:
    return parse_record(project, raw, Progress.from_json, Progress)


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
        return try_flock(self.root / f"{safe_name(project)}.lock")


class RedisProgressStore(RedisRecords[Progress]):
    def __init__(self, link: RedisLink) -> None:
        super().__init__(
            link,
            record="prelabel",
            index="prelabels",
            lock="prelabel-lock",
            from_json=Progress.from_json,
            empty=Progress,
        )


def open_store(settings: Settings, link: RedisLink | None) -> ProgressStore:
    """Redis when scaled out (every replica sees the run and its lock), else files in MODEL_DIR."""
    if link is not None:
        return RedisProgressStore(link)
    return FileProgressStore(settings.model_dir_resolved / "prelabel")
