"""Bulk import of images (and their metadata) into a Label Studio project.

The images are brought in through a Label Studio storage on the source — the
project's GCS source storage for ``gs://bucket/prefix`` (the one a LabelingStack
declares, found by bucket and prefix, or a new one), a local-files storage for a
folder — and the storage is synced. Label Studio itself links each object to
its task, so re-running the import, or pressing "Sync" later, never duplicates
a task. The metadata rows are then merged into the tasks' data (only where they
differ), so a label config can show them (``<Header value="$designer"/>``).

Task URIs are the storage's own (``gs://…``, ``/data/local-files/?d=…``), which
Label Studio serves to the browser and the backend reads directly or through
Label Studio with its token.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from labelstack_backend import gcs
from labelstack_backend.labelconfig import parse_label_config
from labelstack_common.labelstudio import LabelStudioClient
from labelstack_tools.datasets.metadata import Metadata, Problem, match

IMAGE_PATTERN = (
    r".*\.([jJ][pP][eE]?[gG]|[pP][nN][gG]|[wW][eE][bB][pP]|[bB][mM][pP]|[tT][iI][fF][fF]?|[hH][eE][iI][cC])$"
)
_IMAGE_RE = re.compile(IMAGE_PATTERN)
SYNC_TIMEOUT_S = 1800


@dataclass(frozen=True)
class SourceImage:
    key: str  # path relative to the source: what metadata rows name
    uri: str  # gs://bucket/object, or the absolute file path


@dataclass
class ImportReport:
    source: str
    images: int = 0
    created: int = 0
    updated: int = 0
    problems: list[Problem] = field(default_factory=list)

    def lines(self) -> list[str]:
        head = f"{self.images} images in {self.source}: {self.created} new tasks"
        out = [f"{head}, {self.updated} tasks got metadata"]
        out.extend(f"  {p}" for p in self.problems)
        return out


def list_source(source: str) -> list[SourceImage]:
    """The images under a ``gs://`` prefix or a local folder, sorted by key."""
    if source.startswith("gs://"):
        bucket, prefix = gcs.parse_gs_uri(source)
        base = prefix.rstrip("/") + "/" if prefix else ""
        blobs = gcs.client().list_blobs(bucket, prefix=base or None)
        found = [
            SourceImage(key=b.name[len(base) :], uri=f"gs://{bucket}/{b.name}")
            for b in blobs
            if _IMAGE_RE.match(b.name)
        ]
    else:
        root = Path(source).expanduser().resolve()
        if not root.is_dir():
            raise ValueError(f"{source} is not a folder or a gs:// prefix")
        found = [
            SourceImage(key=p.relative_to(root).as_posix(), uri=str(p))
            for p in root.rglob("*")
            if p.is_file() and _IMAGE_RE.match(p.name)
        ]
    return sorted(found, key=lambda s: s.key)


def _sync_storage(ls: LabelStudioClient, project: int, source: str) -> None:
    """Connect the project to a storage on ``source`` (reusing one that is already there) and sync it."""
    if source.startswith("gs://"):
        bucket, prefix = gcs.parse_gs_uri(source)
        prefix = prefix.strip("/")
        api: Any = ls.sdk.import_storage.gcs
        existing = ls.call("list GCS storages", api.list, project=project)
        storage = next(
            (s for s in existing if s.bucket == bucket and (s.prefix or "").strip("/") == prefix), None
        )
        if storage is None:
            storage = ls.call(
                f"connect {source}",
                api.create,
                project=project,
                bucket=bucket,
                prefix=prefix,
                regex_filter=IMAGE_PATTERN,
                use_blob_urls=True,
                # Label Studio streams the files itself, under its own auth: no signed URLs to leak or expire.
                presign=False,
                title=source,
            )
    else:
        path = str(Path(source).expanduser().resolve())
        api = ls.sdk.import_storage.local
        existing = ls.call("list local storages", api.list, project=project)
        storage = next((s for s in existing if str(s.path).rstrip("/") == path), None)
        if storage is None:
            storage = ls.call(
                f"connect {path}",
                api.create,
                project=project,
                path=path,
                regex_filter=IMAGE_PATTERN,
                use_blob_urls=True,
                title=path,
            )
    ls.call(f"sync {source}", api.sync, id=storage.id, request_options={"timeout_in_seconds": SYNC_TIMEOUT_S})


def _tasks(ls: LabelStudioClient, project: int, page_size: int = 500) -> Iterator[dict[str, Any]]:
    page, seen = 1, 0
    while True:
        body = ls.json(
            "GET",
            f"/api/tasks/?project={project}&page={page}&page_size={page_size}&fields=all&resolve_uri=false",
        )
        tasks = body.get("tasks", [])
        yield from tasks
        seen += len(tasks)
        if not tasks or seen >= int(body.get("total", 0)):
            return
        page += 1


def task_key(value: str, source: str) -> str | None:
    """Which source key a task's image value stands for, or None. Pure."""
    if source.startswith("gs://"):
        bucket, prefix = gcs.parse_gs_uri(source)
        base = f"gs://{bucket}/" + (prefix.strip("/") + "/" if prefix.strip("/") else "")
        return value[len(base) :] if value.startswith(base) else None
    query = parse_qs(urlparse(value).query)
    rel = (query.get("d") or [""])[0]
    root = Path(source).expanduser().resolve().as_posix().lstrip("/")
    # Label Studio stores the path relative to its document root, a parent of the folder.
    for i in range(len(root.split("/"))):
        tail = "/".join(root.split("/")[i:]) + "/"
        if rel.startswith(tail):
            return rel[len(tail) :]
    return None


def import_images(
    ls: LabelStudioClient,
    project: int,
    source: str,
    metadata: Metadata | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ImportReport:
    """Bring every image of ``source`` into ``project``, once, with its metadata."""
    say = progress or (lambda _what, _done, _total: None)
    report = ImportReport(source=source)
    images = list_source(source)
    report.images = len(images)
    say("listing", len(images), len(images))
    wanted: dict[str, dict[str, Any]] = {}
    if metadata is not None:
        wanted, unmatched = match([i.key for i in images], metadata)
        report.problems.extend(metadata.problems)
        report.problems.extend(unmatched)

    config = parse_label_config(ls.call("get project", ls.sdk.projects.get, id=project).label_config or "")
    image_key = config.images[0].value_key if config.images else "image"

    def ours(tasks: Iterator[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        out = {}
        for task in tasks:
            value = (task.get("data") or {}).get(image_key)
            key = task_key(value, source) if isinstance(value, str) else None
            if key is not None:
                out[key] = task
        return out

    before = ours(_tasks(ls, project))
    say("syncing", 0, 1)
    _sync_storage(ls, project, source)
    after = ours(_tasks(ls, project))
    report.created = len(set(after) - set(before))
    say("syncing", 1, 1)

    patches = []
    for key, fields in sorted(wanted.items()):
        task = after.get(key)
        if task is None:
            report.problems.append(
                Problem(metadata.lines.get(key, 0) if metadata else 0, f"no task for {key}")
            )
            continue
        data = task.get("data") or {}
        merged = {**data, **{k: v for k, v in fields.items() if k != image_key}}
        if merged != data:
            patches.append((task["id"], merged))

    def patch(item: tuple[int, dict[str, Any]]) -> None:
        ls.call(f"update task {item[0]}", ls.sdk.tasks.update, id=str(item[0]), data=item[1])

    done = 0
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in pool.map(patch, patches):
            done += 1
            say("metadata", done, len(patches))
    report.updated = len(patches)
    report.problems.sort(key=lambda p: p.line)
    return report
