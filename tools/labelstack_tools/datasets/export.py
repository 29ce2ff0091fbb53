"""Versioned dataset export: a project's finished annotations -> YOLO-seg or COCO.

Every export is a version: a folder named after the digest of its manifest. The
manifest records the project, the label config's hash, the tool version, the
annotation ids with their ``updated_at``, counts per class and the sha256 of
every file. It has no timestamp, so exporting twice with nothing changed gives
the same manifest, the same version, and writes nothing the second time.

The conversion is the same one fine-tuning uses (``formats.annotations``).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from labelstack_backend import __version__
from labelstack_backend.errors import ImageError
from labelstack_backend.formats.annotations import LabeledImage, labeled_images
from labelstack_backend.formats.yolo import write_dataset
from labelstack_backend.images import ImageLoader
from labelstack_backend.labelconfig import BRUSH, POLYGON, parse_label_config
from labelstack_backend.training.dataset import annotated_tasks
from labelstack_common.labelstudio import LabelStudioClient
from labelstack_tools.datasets.coco import to_coco
from labelstack_tools.datasets.destinations import MANIFEST, Destination, destination

Format = Literal["yolo", "coco"]


@dataclass(frozen=True)
class ExportOptions:
    format: Format = "yolo"
    images: Literal["copy", "link"] = "copy"  # link: COCO file_name is the image URI, no copies
    brush_as: Literal["rle", "polygon"] = "rle"  # COCO only
    val_fraction: float = 0.2


@dataclass(frozen=True)
class ExportResult:
    version: str
    location: str
    manifest: dict[str, Any]
    created: bool  # False: this exact version was already there


def file_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def inputs_digest(
    project_id: int, label_config: str, options: ExportOptions, classes: list[str], images: list[LabeledImage]
) -> str:
    """What an export is made from: annotations, config, options, tool and image identities. Pure.

    Equal inputs give an equal export, so a re-export can be recognised before
    downloading a single image (images are addressed by stable URIs).
    """
    body = {
        "tool": __version__,
        "project": project_id,
        "label_config": hashlib.sha256(label_config.encode()).hexdigest(),
        "options": [options.format, options.images, options.brush_as, options.val_fraction],
        "classes": classes,
        "images": [[i.task_id, i.annotation_id, i.updated_at, i.image] for i in images],
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def build_manifest(
    *,
    inputs: str,
    project: dict[str, Any],
    label_config: str,
    options: ExportOptions,
    classes: list[str],
    images: list[LabeledImage],
    per_class: dict[str, int],
    skipped: list[str],
    files: dict[str, str],
) -> dict[str, Any]:
    """The manifest, with ``version`` = digest of everything else in it. Pure."""
    body: dict[str, Any] = {
        "tool": {"name": "labelstack", "version": __version__},
        "project": project,
        "format": options.format,
        "options": {
            "images": options.images,
            "brush_as": options.brush_as,
            "val_fraction": options.val_fraction,
        },
        "label_config_sha256": hashlib.sha256(label_config.encode()).hexdigest(),
        "inputs_sha256": inputs,
        "classes": classes,
        "annotations": [
            {"task": i.task_id, "annotation": i.annotation_id, "updated_at": i.updated_at} for i in images
        ],
        "counts": {
            "images": len(images) - len(skipped),
            "objects": sum(per_class.values()),
            "per_class": per_class,
        },
        "skipped": skipped,
        "files": files,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return {"version": hashlib.sha256(canonical).hexdigest()[:12], **body}


def _write_coco(
    images: list[LabeledImage],
    classes: list[str],
    out: Path,
    fetch: Callable[[str], tuple[bytes, str]],
    options: ExportOptions,
) -> tuple[dict[str, int], list[str]]:
    file_names: dict[int, str] = {}
    skipped: list[str] = []
    for item in images:
        if options.images == "link":
            file_names[item.task_id] = item.image
            continue
        try:
            data, ext = fetch(item.image)
        except ImageError as exc:
            skipped.append(f"task {item.task_id}: {exc.reason}")
            continue
        name = f"images/task-{item.task_id}{ext}"
        (out / "images").mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
        file_names[item.task_id] = name
    coco = to_coco(images, classes, file_names, brush_as=options.brush_as)
    (out / "annotations.json").write_text(json.dumps(coco, indent=1, sort_keys=True))
    per_class = dict.fromkeys(classes, 0)
    for ann in coco["annotations"]:
        per_class[classes[ann["category_id"] - 1]] += 1
    return per_class, skipped


def export_project(
    ls: LabelStudioClient,
    project_id: int,
    dest: str,
    loader: ImageLoader,
    options: ExportOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    options = options or ExportOptions()
    if options.format == "yolo" and options.images == "link":
        raise ValueError("YOLO datasets need the image files next to the labels; use --images copy")
    say = progress or (lambda _msg: None)
    project = ls.call(f"get project {project_id}", ls.sdk.projects.get, id=project_id)
    label_config = str(project.label_config or "")
    config = parse_label_config(label_config)
    classes = list(config.label_names((POLYGON, BRUSH)))
    if not classes:
        raise ValueError("the project's label config has no PolygonLabels or BrushLabels to export")
    say("fetching annotations")
    images = labeled_images(annotated_tasks(ls, str(project_id)), config, classes)
    inputs = inputs_digest(project_id, label_config, options, classes, images)
    root = destination(dest)
    for existing in root.manifests(f"{options.format}-"):
        if existing.get("inputs_sha256") == inputs:
            version = str(existing["version"])
            return ExportResult(
                version, root.child(f"{options.format}-{version}").location, existing, created=False
            )
    say(f"{len(images)} annotated tasks; writing {options.format}")

    def fetch(value: str) -> tuple[bytes, str]:
        return loader.dataset_bytes(value, ls)

    with tempfile.TemporaryDirectory(prefix="labelstack-export-") as tmp:
        out = Path(tmp) / "dataset"
        out.mkdir()
        if options.format == "yolo":
            summary = write_dataset(images, classes, out, fetch, val_fraction=options.val_fraction)
            per_class, skipped = summary.per_class, summary.skipped
        else:
            per_class, skipped = _write_coco(images, classes, out, fetch, options)
        manifest = build_manifest(
            inputs=inputs,
            project={"id": project_id, "title": project.title},
            label_config=label_config,
            options=options,
            classes=classes,
            images=images,
            per_class=per_class,
            skipped=skipped,
            files=file_hashes(out),
        )
        target: Destination = root.child(f"{options.format}-{manifest['version']}")
        if target.exists(MANIFEST):
            return ExportResult(manifest["version"], target.location, manifest, created=False)
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        say(f"uploading to {target.location}")
        target.put_tree(out, last=MANIFEST)  # the manifest last: its presence means complete
    return ExportResult(manifest["version"], target.location, manifest, created=True)
