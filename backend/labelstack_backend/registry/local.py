"""Versioned fine-tuned models on disk (``MODEL_DIR``), one line of versions per project.

Layout::

    MODEL_DIR/projects/<project>/versions/<version>/model.pt
    MODEL_DIR/projects/<project>/versions/<version>/meta.json
    MODEL_DIR/projects/<project>/current        # the serving version's name
    MODEL_DIR/projects/<project>/history.json   # the serving switches (promote, rollback)

Publishing copies the weights into a new version folder and then replaces
``current`` with one atomic rename, so every process sees either the old or
the new version, never half of one. After a restart ``current`` is what serves.

With ``LABELSTACK_MODEL_STORE=gs://...`` the store is
:class:`~labelstack_backend.registry.gcs.GcsModelRegistry`, which keeps the versions in a
bucket and this layout as its local mirror.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from labelstack_backend.diskspace import storage_errors
from labelstack_backend.registry.store import (
    Fill,
    ModelVersion,
    atomic_write,
    next_number,
    parse_history,
    safe_name,
    version_name_and_meta,
    with_entry,
    write_version,
)


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
            with storage_errors(self.root):
                try:
                    staging.mkdir(parents=True)
                    fill(staging)
                    if final.exists():  # a half-written copy from a crash, or a racing install
                        shutil.rmtree(staging)
                    else:
                        staging.rename(final)
                except BaseException:
                    # A full disk fails the copy halfway: the partial weights go, which frees the
                    # space the failed job needs to record why.
                    shutil.rmtree(staging, ignore_errors=True)
                    raise
        version = self.get(project, name)
        assert version is not None
        return version

    def set_current(self, project: str, name: str) -> None:
        with storage_errors(self.root):
            atomic_write(self.project_dir(project) / "current", name + "\n")

    def publish(
        self, project: str, weights: Path, *, base: str, meta: dict[str, Any], serve: bool = True
    ) -> ModelVersion:
        """Store ``weights`` as the project's next version; ``serve`` makes it current."""
        name, full_meta = version_name_and_meta(
            project, weights, base, meta, next_number(self.versions(project))
        )
        version = self.install(project, name, lambda folder: write_version(folder, weights, full_meta))
        if serve:
            self.switch(project, name, {"action": "published"})
        return version

    @contextlib.contextmanager
    def _project_lock(self, project: str) -> Iterator[None]:
        folder = self.project_dir(project)
        with storage_errors(self.root):
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder, os.O_RDONLY)  # the folder itself: no lock file to leave behind
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def switch(self, project: str, name: str, entry: dict[str, Any]) -> None:
        with self._project_lock(project):
            history = with_entry(self.history(project), name, entry)
            self.set_current(project, name)
            with storage_errors(self.root):
                atomic_write(self.project_dir(project) / "history.json", json.dumps(history))

    def history(self, project: str) -> list[dict[str, Any]]:
        try:
            return parse_history((self.project_dir(project) / "history.json").read_text())
        except FileNotFoundError:
            return []

    def delete(self, project: str, name: str) -> None:
        folder = self._versions_dir(project) / name
        if not folder.is_dir():
            return
        # Renamed first: a reader finds the whole version or none of it.
        trash = self._versions_dir(project) / f".deleted-{name}-{os.getpid()}"
        folder.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)

    @contextlib.contextmanager
    def scratch(self, project: str) -> Iterator[Path]:
        """A work folder for one training run, removed afterwards."""
        base = self.project_dir(project) / "work"
        with storage_errors(self.root):
            base.mkdir(parents=True, exist_ok=True)
            path = Path(tempfile.mkdtemp(dir=base, prefix="train-"))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
