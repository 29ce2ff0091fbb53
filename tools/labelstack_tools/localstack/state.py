"""The state file: which processes a running ``labelstack up`` started, so ``down`` and
``status`` can find them by PID.

A PID alone can be reused by an unrelated process after a crash, so each record
also keeps the process's start time; a record only matches a live process with
both. The format is plain JSON, parsed and checked here without I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labelstack_common.errors import LabelStackError
from labelstack_tools.localstack.files import read_json, write_private_json

FILE_NAME = "state.json"
FORMAT = 1
STARTING = "starting"
READY = "ready"


class StateError(LabelStackError, ValueError):
    pass


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    started: float  # the process's start time (seconds since the epoch), as psutil reports it
    log: str = ""
    url: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "pid": self.pid, "started": self.started, "log": self.log, "url": self.url}

    @classmethod
    def from_dict(cls, data: Any) -> ProcessRecord:
        if not isinstance(data, dict):
            raise StateError("a process record is not an object")
        try:
            return cls(
                name=str(data["name"]),
                pid=int(data["pid"]),
                started=float(data["started"]),
                log=str(data.get("log", "")),
                url=str(data.get("url", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"a process record is malformed: {exc}") from None


@dataclass
class StackState:
    supervisor: ProcessRecord  # the ``labelstack up`` process itself
    status: str = STARTING
    processes: list[ProcessRecord] = field(default_factory=list)
    project_id: int | None = None
    label_studio_url: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "supervisor": self.supervisor.to_dict(),
            "status": self.status,
            "processes": [p.to_dict() for p in self.processes],
            "project_id": self.project_id,
            "label_studio_url": self.label_studio_url,
        }

    @classmethod
    def from_dict(cls, data: Any) -> StackState:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise StateError(f"not a version-{FORMAT} state file")
        processes = data.get("processes") or []
        if not isinstance(processes, list):
            raise StateError("'processes' is not a list")
        project = data.get("project_id")
        return cls(
            supervisor=ProcessRecord.from_dict(data.get("supervisor")),
            status=str(data.get("status", STARTING)),
            processes=[ProcessRecord.from_dict(p) for p in processes],
            project_id=int(project) if isinstance(project, int) else None,
            label_studio_url=str(data.get("label_studio_url", "")),
        )


def path_in(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def read(data_dir: Path) -> StackState | None:
    """The stack's state, or None when no ``up`` has left one."""
    path = path_in(data_dir)
    try:
        data = read_json(path)
    except (OSError, json.JSONDecodeError) as exc:
        raise StateError(f"cannot read {path}: {exc}") from None
    return None if data is None else StackState.from_dict(data)


def write(data_dir: Path, state: StackState) -> None:
    write_private_json(path_in(data_dir), state.to_dict())


def remove(data_dir: Path) -> None:
    path_in(data_dir).unlink(missing_ok=True)
