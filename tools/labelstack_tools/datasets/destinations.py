"""Where exports go: a local folder or a ``gs://`` prefix, behind one small interface."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from labelstack_backend import gcs

MANIFEST = "manifest.json"


class Destination(Protocol):
    @property
    def location(self) -> str: ...
    def child(self, name: str) -> Destination: ...
    def exists(self, relative: str) -> bool: ...
    def manifests(self, prefix: str) -> Iterator[dict[str, Any]]:
        """The manifests of the versions here whose folder name starts with ``prefix``."""

    def put_tree(self, source: Path, last: str) -> None:
        """Copy ``source`` here, writing the file ``last`` after all others."""


class LocalDestination:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def location(self) -> str:
        return str(self.root)

    def child(self, name: str) -> LocalDestination:
        return LocalDestination(self.root / name)

    def exists(self, relative: str) -> bool:
        return (self.root / relative).is_file()

    def manifests(self, prefix: str) -> Iterator[dict[str, Any]]:
        for path in sorted(self.root.glob(f"{prefix}*/{MANIFEST}")):
            with contextlib.suppress(OSError, ValueError):
                yield json.loads(path.read_text())

    def put_tree(self, source: Path, last: str) -> None:
        self.root.parent.mkdir(parents=True, exist_ok=True)
        staging = self.root.with_name(f".{self.root.name}.partial-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging)
        if self.root.exists():  # an earlier, interrupted export of the same version
            shutil.rmtree(self.root)
        staging.rename(self.root)


class GcsDestination:
    def __init__(self, bucket: str, prefix: str) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @property
    def location(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}"

    def child(self, name: str) -> GcsDestination:
        return GcsDestination(self.bucket, f"{self.prefix}/{name}" if self.prefix else name)

    def _key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def exists(self, relative: str) -> bool:
        return bool(gcs.client().bucket(self.bucket).blob(self._key(relative)).exists())

    def manifests(self, prefix: str) -> Iterator[dict[str, Any]]:
        for blob in gcs.client().list_blobs(self.bucket, prefix=self._key(prefix)):
            if blob.name.endswith(f"/{MANIFEST}"):
                with contextlib.suppress(ValueError):
                    yield json.loads(blob.download_as_bytes())

    def put_tree(self, source: Path, last: str) -> None:
        bucket = gcs.client().bucket(self.bucket)
        files = sorted(p for p in source.rglob("*") if p.is_file())
        for path in sorted(files, key=lambda p: p.relative_to(source).as_posix() == last):
            bucket.blob(self._key(path.relative_to(source).as_posix())).upload_from_filename(str(path))


def destination(spec: str) -> Destination:
    if spec.startswith("gs://"):
        bucket, prefix = gcs.parse_gs_uri(spec)
        return GcsDestination(bucket, prefix)
    return LocalDestination(Path(spec).expanduser().resolve())
