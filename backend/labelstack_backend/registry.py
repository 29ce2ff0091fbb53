"""Versioned fine-tuned models on disk (``MODEL_DIR``), one line of versions per project.

Layout::

    MODEL_DIR/projects/<project>/versions/<version>/model.pt
    MODEL_DIR/projects/<project>/versions/<version>/meta.json
    MODEL_DIR/projects/<project>/current        # the serving version's name

Publishing copies the weights into a new version folder and then replaces
``current`` with one atomic rename, so every process sees either the old or
the new version, never half of one. After a restart ``current`` is what serves.

:class:`ModelStore` is what the rest of the backend uses; with
``LABELSTACK_MODEL_STORE=gs://...`` it is :class:`~labelstack_backend.registry_gcs.GcsModelRegistry`,
which keeps the versions in a bucket and this layout as its local mirror.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from labelstack_backend.settings import Settings

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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    Path(tmp).replace(path)


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


class ModelRegistry:
    local_pointer = True

    def __init__(self, root: Path) -> None:
        self.root = root

    def project_dir(self, project: str) -> Path:
        return self.root / "projects" / safe_name(project)

    def _versions_dir(self, project: str) -> Path:
        return self.project_dir(project) / "versions"

    def current(self, project: str) -> ModelVersion | None:
        """The serving version of a project, or None when it still uses the base model."""
        pointer = self.project_dir(project) / "current"
        try:
            name = pointer.read_text().strip()
        except FileNotFoundError:
            return None
        return self.get(project, name)

    def current_name(self, project: str) -> str | None:
        try:
            return (self.project_dir(project) / "current").read_text().strip() or None
        except FileNotFoundError:
            return None

    def get(self, project: str, name: str) -> ModelVersion | None:
        folder = self._versions_dir(project) / name
        weights = folder / "model.pt"
        if not weights.is_file():
            return None
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError):
            meta = {}
        return ModelVersion(name=name, path=weights, meta=meta)

    def versions(self, project: str) -> list[ModelVersion]:
        """All complete versions, oldest first."""
        folder = self._versions_dir(project)
        if not folder.is_dir():
            return []
        found = [v for d in folder.iterdir() if d.is_dir() and (v := self.get(project, d.name)) is not None]
        return sorted(found, key=lambda v: (v.meta.get("created_at", 0), v.name))

    def projects(self) -> list[str]:
        folder = self.root / "projects"
        return sorted(d.name for d in folder.iterdir() if d.is_dir()) if folder.is_dir() else []

    def install(self, project: str, name: str, fill: Fill) -> ModelVersion:
        """Add version ``name``, whose files ``fill(folder)`` writes, all at once (staging + rename)."""
        final = self._versions_dir(project) / name
        if not (final / "model.pt").is_file():
            staging = self._versions_dir(project) / f".staging-{name}-{os.getpid()}-{threading.get_ident()}"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            fill(staging)
            if final.exists():  # a half-written copy from a crash, or a racing install of the same files
                shutil.rmtree(staging)
            else:
                staging.rename(final)
        version = self.get(project, name)
        assert version is not None
        return version

    def set_current(self, project: str, name: str) -> None:
        atomic_write(self.project_dir(project) / "current", name + "\n")

    def publish(self, project: str, weights: Path, *, base: str, meta: dict[str, Any]) -> ModelVersion:
        """Store ``weights`` as the project's next version and make it current."""
        name, full_meta = version_name_and_meta(project, weights, base, meta, len(self.versions(project)) + 1)
        version = self.install(project, name, lambda folder: write_version(folder, weights, full_meta))
        self.set_current(project, name)
        return version

    @contextlib.contextmanager
    def scratch(self, project: str) -> Iterator[Path]:
        """A work folder for one training run, removed afterwards."""
        base = self.project_dir(project) / "work"
        base.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(dir=base, prefix="train-"))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)


def open_registry(settings: Settings) -> ModelStore:
    """MODEL_DIR, or a ``gs://`` prefix with MODEL_DIR as its local mirror."""
    local = ModelRegistry(settings.model_dir_resolved)
    if settings.model_store:
        from labelstack_backend.registry_gcs import GcsModelRegistry

        return GcsModelRegistry.from_uri(settings.model_store, local)
    return local
