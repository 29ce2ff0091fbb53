"""Labelled images -> an ultralytics YOLO-seg dataset folder."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from PIL import Image

from labelstack_backend.errors import ImageError
from labelstack_backend.formats.annotations import LabeledImage

log = logging.getLogger(__name__)


def label_lines(image: LabeledImage, class_index: dict[str, int]) -> list[str]:
    """YOLO-seg label lines: ``class x1 y1 x2 y2 ...`` normalised, one polygon a line."""
    lines: list[str] = []
    for obj in image.objects:
        cls = class_index.get(obj.label)
        if cls is None:
            continue
        for poly in obj.polygons:
            if len(poly) >= 3:
                lines.append(f"{cls} " + " ".join(f"{x:.6f} {y:.6f}" for x, y in poly))
    return lines


def split_of(task_id: int, val_fraction: float) -> str:
    """A stable train/val split by task id, so re-exports put a task in the same split."""
    bucket = int(hashlib.sha256(str(task_id).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if bucket < val_fraction else "train"


@dataclass(frozen=True)
class DatasetSummary:
    data_yaml: Path
    images: int
    objects: int
    skipped: list[str]


def write_dataset(
    images: Sequence[LabeledImage],
    class_names: Sequence[str],
    out: Path,
    load: Callable[[str], Image.Image],
    *,
    val_fraction: float = 0.2,
) -> DatasetSummary:
    """Write images and labels in the YOLO layout plus ``data.yaml``.

    ``load`` fetches a task's image (EXIF-corrected RGB). An image that fails is
    skipped with its reason; the rest still go in. With fewer than 10 images
    every image is also used for validation (ultralytics needs a val set).
    """
    class_index = {name: i for i, name in enumerate(class_names)}
    small = len(images) < 10
    skipped: list[str] = []
    written = objects = 0
    for item in images:
        try:
            img = load(item.image)
        except ImageError as exc:
            skipped.append(f"task {item.task_id}: {exc.reason}")
            log.warning("training data: skipping task %s: %s", item.task_id, exc.reason)
            continue
        lines = label_lines(item, class_index)
        splits = ("train", "val") if small else (split_of(item.task_id, val_fraction),)
        for split in splits:
            (out / "images" / split).mkdir(parents=True, exist_ok=True)
            (out / "labels" / split).mkdir(parents=True, exist_ok=True)
            img.save(out / "images" / split / f"task-{item.task_id}.jpg", quality=95)
            (out / "labels" / split / f"task-{item.task_id}.txt").write_text("\n".join(lines) + "\n")
        written += 1
        objects += len(lines)
    if not small and not (out / "images" / "val").exists():
        # Every task hashed to train: reuse them for validation rather than fail.
        (out / "images" / "val").symlink_to(out / "images" / "train")
        (out / "labels" / "val").symlink_to(out / "labels" / "train")
    data = {
        "path": str(out.resolve()),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(class_names)),
    }
    data_yaml = out / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    return DatasetSummary(data_yaml=data_yaml, images=written, objects=objects, skipped=skipped)
