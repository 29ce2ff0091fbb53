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
    def publish(self, project: str, weights: Path, *, base: str, meta: dict[str, Any]) -> ModelVersion: ...
    def scratch(self, project: str) -> contextlib.AbstractContextManager[Path]: ...


Fill = Callable[[Path], None]  # writes model.pt and meta.json into a staging folder


def version_name_and_meta(
    project: str, weights: Path, base: str, meta: dict[str, Any], number: int
) -> tuple[str, dict[str, Any]]:
    name = f"{safe_name(base)}-p{safe_name(project)}-v{number}-{file_digest(weights)}"
    return name, {**meta, "version": name, "project": project, "base": base, "created_at": time.time()}


def write_version(folder: Path, weights: Path, meta: dict[str, Any]) -> None:
    shutil.copyfile(weights, folder / "model.pt")
    (folder / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
