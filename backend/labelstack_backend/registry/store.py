"""What every model store shares: the version record, the store's interface, and the
helpers that name, write and publish a version atomically."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from labelstack_backend.diskspace import write_via_temp

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def file_digest(path: Path, length: int = 8) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


def safe_name(text: str) -> str:
    return _SAFE.sub("-", text).strip("-") or "model"


@dataclass(frozen=True)
class ModelVersion:
    name: str
    path: Path  # the weights file
    meta: dict[str, Any]


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` durably and all at once; a failed write (a full disk)
    leaves the old file and no temporary one. Raises the OSError: callers name their folder
    with :func:`~labelstack_backend.diskspace.storage_errors`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_via_temp(path, text.encode())


class ModelStore(Protocol):
    """Versioned fine-tuned models, wherever they are kept."""

    #: True when reading ``current`` is a local file read, cheap enough for every request.
    local_pointer: bool

    def current(self, project: str) -> ModelVersion | None: ...
    def current_name(self, project: str) -> str | None: ...
    def get(self, project: str, name: str) -> ModelVersion | None:
        """The version with its weights on local disk (fetched first when kept elsewhere)."""

    def versions(self, project: str) -> list[ModelVersion]: ...
    def projects(self) -> list[str]: ...
    def publish(
        self, project: str, weights: Path, *, base: str, meta: dict[str, Any], serve: bool = True
    ) -> ModelVersion:
        """Store the next version; ``serve`` also points ``current`` at it."""

    def switch(self, project: str, name: str, entry: dict[str, Any]) -> None:
        """Point ``current`` at ``name`` in one atomic step, and add ``entry`` to the history."""

    def history(self, project: str) -> list[dict[str, Any]]:
        """The serving switches, oldest first (at most HISTORY_LIMIT)."""

    def delete(self, project: str, name: str) -> None:
        """Remove a version (retention); its readers see it gone, never half."""

    def scratch(self, project: str) -> contextlib.AbstractContextManager[Path]: ...


# Switches kept in a project's history: enough to roll back, bounded.
HISTORY_LIMIT = 100


def with_entry(history: list[dict[str, Any]], name: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
    return [*history, {**entry, "version": name, "at": time.time()}][-HISTORY_LIMIT:]


def parse_history(text: str | bytes) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except ValueError:
        return []
    return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []


Fill = Callable[[Path], None]  # writes model.pt and meta.json into a staging folder


def version_name_and_meta(
    project: str, weights: Path, base: str, meta: dict[str, Any], number: int
) -> tuple[str, dict[str, Any]]:
    name = f"{safe_name(base)}-p{safe_name(project)}-v{number}-{file_digest(weights)}"
    return name, {
        **meta,
        "version": name,
        "number": number,
        "project": project,
        "base": base,
        "created_at": time.time(),
    }


_NUMBER = re.compile(r"-v(\d+)-[0-9a-f]+$")


def next_number(versions: list[ModelVersion]) -> int:
    """Past the highest number so far: retention deletes old versions, and a number never repeats."""
    found = [len(versions)]
    for v in versions:
        match = _NUMBER.search(v.name)
        found.append(int(v.meta.get("number") or (match.group(1) if match else 0)))
    return max(found) + 1


def write_version(folder: Path, weights: Path, meta: dict[str, Any]) -> None:
    shutil.copyfile(weights, folder / "model.pt")
    (folder / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
