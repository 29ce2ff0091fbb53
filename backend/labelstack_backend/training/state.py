"""Training job state and the one-training-at-a-time lock.

The state is shared by every process of a backend (gunicorn workers and the
training subprocess), so it lives outside any one of them: in files under
``MODEL_DIR`` here, and in Redis when the backend scales out (see
:mod:`labelstack_backend.training.redis_store`). Both stores implement :class:`JobStore`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from labelstack_backend.diskspace import file_lock, storage_errors, try_flock
from labelstack_backend.registry.store import atomic_write, safe_name


class JobStatus(StrEnum):
    IDLE = "idle"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class JobState:
    project: str
    status: JobStatus = JobStatus.IDLE
    epoch: int = 0
    epochs: int = 0
    loss: float | None = None
    reason: str = ""  # why it failed, or what started it
    version: str = ""  # the version it produced
    started_at: float = 0.0
    finished_at: float = 0.0
    updated_at: float = 0.0
    pending: bool = False  # another training was asked for while this one ran
    new_annotations: int = 0  # since the last training started
    runs: int = 0
    # Why this job was re-queued: its earlier run died with its process or pod ("": it was not).
    requeued: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status in (JobStatus.QUEUED, JobStatus.RUNNING)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobState:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["status"] = JobStatus(known.get("status", "idle"))
        return cls(**known)


class TrainingLease(Protocol):
    def renew(self) -> bool:
        """False when the lock was lost to another owner (it may raise when that cannot be told)."""

    def release(self) -> None: ...


class JobStore(Protocol):
    def get(self, project: str) -> JobState: ...

    def update(self, project: str, change: Callable[[JobState], JobState]) -> JobState:
        """Apply ``change`` atomically; it may run more than once, so it must be pure."""

    def all(self) -> list[JobState]: ...

    def try_lock(self, project: str, owner: str, ttl: float) -> TrainingLease | None:
        """The training lock for ``project``, or None while another job holds it."""

    def lock_held(self, project: str) -> bool:
        """Whether a live job holds the training lock ``project`` trains under."""


class FileJobStore:
    """Job state as JSON files, guarded by ``flock`` so several processes can share it.

    A crashed trainer cannot leave the training lock held: the kernel drops an
    flock when its process dies.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, project: str) -> Path:
        return self.root / "projects" / safe_name(project) / "job.json"

    def get(self, project: str) -> JobState:
        try:
            return JobState.from_json(json.loads(self._path(project).read_text()))
        except (FileNotFoundError, ValueError):
            return JobState(project=project)

    def update(self, project: str, change: Callable[[JobState], JobState]) -> JobState:
        """Raises InsufficientStorage (507) when MODEL_DIR is full or read-only; the state is
        then unchanged and no temporary file is left."""
        with storage_errors(self.root), file_lock(self.root / ".jobs.lock"):
            new = replace(change(self.get(project)), updated_at=time.time())
            atomic_write(self._path(project), json.dumps(new.to_json(), sort_keys=True))
            return new

    def all(self) -> list[JobState]:
        folder = self.root / "projects"
        if not folder.is_dir():
            return []
        return [self.get(d.name) for d in sorted(folder.iterdir()) if (d / "job.json").exists()]

    def try_lock(self, project: str, owner: str, ttl: float) -> TrainingLease | None:
        # One lock for the whole MODEL_DIR: on one machine, trainings take turns on its GPU.
        return try_flock(self.root / ".train.lock", owner)

    def lock_held(self, project: str) -> bool:
        lease = self.try_lock(project, "", 0)
        if lease is None:
            return True
        lease.release()
        return False
