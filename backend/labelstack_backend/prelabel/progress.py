"""A pre-labeling run's progress, and which tasks it still has to predict: pure logic."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any

from labelstack_common.labelstudio import TaskRow


class RunStatus(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass
class Progress:
    project: str
    status: RunStatus = RunStatus.IDLE
    version: str = ""  # the serving model version this run predicts with
    total: int = 0  # tasks in the project
    done: int = 0  # tasks holding a prediction of ``version`` (found so, or written by this run)
    written: int = 0  # predictions this run wrote
    failed: int = 0  # tasks whose image could not be predicted (tried again by the next run)
    pending: bool = False  # asked for again while running: one more pass when this one ends
    predict_s: float = 0.0  # where the time went: the predictor (images fetched, model) ...
    write_s: float = 0.0  # ... and Label Studio's bulk writes (they overlap the next chunk)
    reason: str = ""
    owner: str = ""  # host:pid of the process running it
    started_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float | None = None

    @property
    def active(self) -> bool:
        return self.status is RunStatus.RUNNING

    def rate(self, now: float | None = None) -> float:
        """Predictions written per second since the run started."""
        end = self.finished_at or (now if now is not None else time.time())
        elapsed = end - self.started_at if self.started_at else 0.0
        return self.written / elapsed if elapsed > 0 else 0.0

    def eta_s(self, now: float | None = None) -> float | None:
        """Seconds left at the current rate; None before the first batch is written."""
        if not self.active:
            return 0.0 if self.status is RunStatus.DONE else None
        rate = self.rate(now)
        left = max(0, self.total - self.done - self.failed)
        return left / rate if rate > 0 else None

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status.value
        eta = self.eta_s(now)
        out["rate"] = round(self.rate(now), 3)
        out["eta_s"] = None if eta is None else round(eta, 1)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Progress:
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        known["status"] = RunStatus(known.get("status", RunStatus.IDLE.value))
        return cls(**known)


def to_predict(tasks: list[TaskRow], version: str) -> tuple[list[TaskRow], int]:
    """(tasks lacking a prediction of ``version``, how many already hold one)."""
    missing = [t for t in tasks if version not in t.versions]
    return missing, len(tasks) - len(missing)


def import_payload(task_id: int, result: dict[str, Any]) -> dict[str, Any] | None:
    """One prediction as Label Studio's import takes it; None for a task that failed (an entry
    without ``result``), so that nothing is stored and the next run tries it again."""
    if "result" not in result:
        return None
    return {
        "task": task_id,
        "result": result["result"],
        "score": result.get("score"),
        "model_version": result.get("model_version"),
    }
