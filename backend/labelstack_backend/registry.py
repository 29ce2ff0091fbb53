"""Versioned fine-tuned models on disk (``MODEL_DIR``), one line of versions per project.

Layout::

    MODEL_DIR/projects/<project>/versions/<version>/model.pt
    MODEL_DIR/projects/<project>/versions/<version>/meta.json
    MODEL_DIR/projects/<project>/current        # the serving version's name

Publishing copies the weights into a new version folder and then replaces
``current`` with one atomic rename, so every process sees either the old or
the new version, never half of one. After a restart ``current`` is what serves.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


class ModelRegistry:
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

    def publish(self, project: str, weights: Path, *, base: str, meta: dict[str, Any]) -> ModelVersion:
        """Store ``weights`` as the project's next version and make it current."""
        number = len(self.versions(project)) + 1
        name = f"{safe_name(base)}-p{safe_name(project)}-v{number}-{file_digest(weights)}"
        final = self._versions_dir(project) / name
        staging = self._versions_dir(project) / f".staging-{name}-{os.getpid()}"
        staging.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(weights, staging / "model.pt")
        full_meta = {**meta, "version": name, "project": project, "base": base, "created_at": time.time()}
        (staging / "meta.json").write_text(json.dumps(full_meta, indent=2, sort_keys=True))
        if final.exists():  # same weights published twice: keep the first copy
            shutil.rmtree(staging)
        else:
            staging.rename(final)
        atomic_write(self.project_dir(project) / "current", name + "\n")
        version = self.get(project, name)
        assert version is not None
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
