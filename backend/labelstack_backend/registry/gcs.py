"""Fine-tuned versions in a ``gs://`` prefix, shared by replicas that share no disk.

Layout under the prefix, the same as under MODEL_DIR::

    projects/<project>/versions/<version>/model.pt
    projects/<project>/versions/<version>/meta.json   # written last: a version is complete with it
    projects/<project>/current                          # the serving version's name
    projects/<project>/history.json                     # the serving switches (promote, rollback)

An object write is atomic in GCS, so replacing ``current`` switches every reader
from the old version to the new one. Versions are immutable: each replica
downloads a version once into its local mirror (a :class:`ModelRegistry` under
MODEL_DIR) and serves it from there; reading ``current`` is a network call, so
replicas read it when told (an announcement) or at their poll, not per request.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc

from labelstack_backend import gcs
from labelstack_backend.registry.local import ModelRegistry
from labelstack_backend.registry.store import (
    ModelVersion,
    next_number,
    parse_history,
    safe_name,
    version_name_and_meta,
    with_entry,
    write_version,
)

log = logging.getLogger(__name__)

WEIGHTS, META = "model.pt", "meta.json"


class GcsModelRegistry:
    local_pointer = False

    def __init__(self, bucket: str, prefix: str, mirror: ModelRegistry) -> None:
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self.mirror = mirror
        self._metas: dict[tuple[str, str], dict[str, Any]] = {}  # versions never change: cache them
        self._lock = threading.Lock()

    @classmethod
    def from_uri(cls, uri: str, mirror: ModelRegistry) -> GcsModelRegistry:
        bucket, prefix = gcs.parse_gs_uri(uri)
        return cls(bucket, prefix, mirror)

    @property
    def location(self) -> str:
        return f"gs://{self.bucket_name}/{self.prefix}".rstrip("/")

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def _project_key(self, project: str, *parts: str) -> str:
        return self._key("projects", safe_name(project), *parts)

    def _bucket(self) -> Any:
        return gcs.client().bucket(self.bucket_name)

    # -- reading ---------------------------------------------------------------
    def current_name(self, project: str) -> str | None:
        try:
            text = self._bucket().blob(self._project_key(project, "current")).download_as_text()
        except gexc.NotFound:
            return None
        return text.strip() or None

    def current(self, project: str) -> ModelVersion | None:
        name = self.current_name(project)
        return self.get(project, name) if name else None

    def get(self, project: str, name: str) -> ModelVersion | None:
        local = self.mirror.get(project, name)
        if local is not None:
            return local
        bucket = self._bucket()
        folder = self._project_key(project, "versions", name)
        try:
            meta = json.loads(bucket.blob(f"{folder}/{META}").download_as_bytes())
        except gexc.NotFound:
            return None  # not there, or still being uploaded

        def fill(staging: Path) -> None:
            bucket.blob(f"{folder}/{WEIGHTS}").download_to_filename(str(staging / WEIGHTS))
            (staging / META).write_text(json.dumps(meta, indent=2, sort_keys=True))

        log.info("fetching %s of project %s from %s", name, project, self.location)
        return self.mirror.install(project, name, fill)

    def _meta(self, project: str, name: str, blob: Any) -> dict[str, Any] | None:
        with self._lock:
            cached = self._metas.get((project, name))
        if cached is not None:
            return cached
        try:
            meta: dict[str, Any] = json.loads(blob.download_as_bytes())
        except (gexc.NotFound, ValueError):
            return None
        with self._lock:
            self._metas[(project, name)] = meta
        return meta

    def versions(self, project: str) -> list[ModelVersion]:
        """Complete versions (their meta.json exists), oldest first; weights are fetched lazily."""
        root = self._project_key(project, "versions") + "/"
        found: list[ModelVersion] = []
        for blob in gcs.client().list_blobs(self.bucket_name, prefix=root):
            rest = blob.name[len(root) :]
            name, _, leaf = rest.partition("/")
            if leaf != META:
                continue
            meta = self._meta(project, name, blob)
            if meta is not None:
                local = self.mirror.project_dir(project) / "versions" / name / WEIGHTS
                found.append(ModelVersion(name=name, path=local, meta=meta))
        return sorted(found, key=lambda v: (v.meta.get("created_at", 0), v.name))

    def projects(self) -> list[str]:
        root = self._key("projects") + "/"
        pages = gcs.client().list_blobs(self.bucket_name, prefix=root, delimiter="/")
        names: set[str] = set()
        for page in pages.pages:
            names.update(p[len(root) :].rstrip("/") for p in page.prefixes)
        return sorted(n for n in names if n)

    # -- writing ---------------------------------------------------------------
    def publish(
        self, project: str, weights: Path, *, base: str, meta: dict[str, Any], serve: bool = True
    ) -> ModelVersion:
        """Upload the next version (weights, then meta.json); ``serve`` then points ``current`` at it."""
        name, full_meta = version_name_and_meta(
            project, weights, base, meta, next_number(self.versions(project))
        )
        version = self.mirror.install(project, name, lambda folder: write_version(folder, weights, full_meta))
        bucket = self._bucket()
        folder = self._project_key(project, "versions", name)
        bucket.blob(f"{folder}/{WEIGHTS}").upload_from_filename(str(version.path))
        bucket.blob(f"{folder}/{META}").upload_from_filename(str(version.path.with_name(META)))
        if serve:
            self.switch(project, name, {"action": "published"})
        log.info("published %s of project %s to %s", name, project, self.location)
        return version

    def switch(self, project: str, name: str, entry: dict[str, Any]) -> None:
        """One object write moves every replica's pointer. The history is read, then written: two
        switches of one project at the same instant may lose one history line, never the pointer."""
        bucket = self._bucket()
        history = with_entry(self.history(project), name, entry)
        bucket.blob(self._project_key(project, "current")).upload_from_string(name + "\n")
        bucket.blob(self._project_key(project, "history.json")).upload_from_string(json.dumps(history))
        self.mirror.set_current(project, name)

    def history(self, project: str) -> list[dict[str, Any]]:
        try:
            return parse_history(
                self._bucket().blob(self._project_key(project, "history.json")).download_as_bytes()
            )
        except gexc.NotFound:
            return []

    def delete(self, project: str, name: str) -> None:
        """meta.json goes first: without it the version is incomplete, so no reader picks it up."""
        bucket = self._bucket()
        folder = self._project_key(project, "versions", name)
        for leaf in (META, WEIGHTS):
            with contextlib.suppress(gexc.NotFound):
                bucket.blob(f"{folder}/{leaf}").delete()
        with self._lock:
            self._metas.pop((project, name), None)
        self.mirror.delete(project, name)

    def scratch(self, project: str) -> contextlib.AbstractContextManager[Path]:
        return self.mirror.scratch(project)
