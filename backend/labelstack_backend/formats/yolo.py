"""Labelled images -> an ultralytics YOLO-seg dataset folder."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

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


def task_bucket(task_id: int) -> float:
    """Where a task id falls in [0, 1], by a hash of the id alone: its validation draw."""
    return int(hashlib.sha256(str(task_id).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def split_of(task_id: int, val_fraction: float) -> str:
    """A stable train/val split by task id, so re-exports put a task in the same split."""
    return "val" if task_bucket(task_id) < val_fraction else "train"


@dataclass(frozen=True)
class DatasetSummary:
    data_yaml: Path
    images: int
    objects: int
    skipped: list[str]
    per_class: dict[str, int]


# A task's image as stored in a dataset: its bytes and file extension.
Fetch = Callable[[str], tuple[bytes, str]]


def write_dataset(
    images: Sequence[LabeledImage],
    class_names: Sequence[str],
    out: Path,
    fetch: Fetch,
    *,
    val_fraction: float = 0.2,
    val_tasks: Collection[int] | None = None,
) -> DatasetSummary:
    """Write images and labels in the YOLO layout plus ``data.yaml``.

    ``fetch`` returns a task's image bytes, upright (see ``images.upright_bytes``).
    An image that fails is skipped with its reason; the rest still go in. With
    fewer than 10 images, or when no task hashes to validation, every image is
    also used for validation (ultralytics needs a val set). Given ``val_tasks`` (a held-out
    split: training's), exactly those tasks validate and the others train.
    """
    class_index = {name: i for i, name in enumerate(class_names)}
    per_class = dict.fromkeys(class_names, 0)
    fetched: list[tuple[LabeledImage, bytes, str, list[str]]] = []
    skipped: list[str] = []
    for item in images:
        try:
            data, ext = fetch(item.image)
        except ImageError as exc:
            skipped.append(f"task {item.task_id}: {exc.reason}")
            log.warning("dataset: skipping task %s: %s", item.task_id, exc.reason)
            continue
        fetched.append((item, data, ext, label_lines(item, class_index)))
        for obj in item.objects:
            if obj.label in per_class:
                per_class[obj.label] += len(obj.polygons)
    if val_tasks:
        held = set(val_tasks)
        splits_of = {item.task_id: "val" if item.task_id in held else "train" for item, *_ in fetched}
    else:
        splits_of = {item.task_id: split_of(item.task_id, val_fraction) for item, *_ in fetched}
    vals = list(splits_of.values())
    share_val = "val" not in vals or "train" not in vals or (not val_tasks and len(fetched) < 10)
    for item, data, ext, lines in fetched:
        splits = ("train", "val") if share_val else (splits_of[item.task_id],)
        for split in splits:
            (out / "images" / split).mkdir(parents=True, exist_ok=True)
            (out / "labels" / split).mkdir(parents=True, exist_ok=True)
            (out / "images" / split / f"task-{item.task_id}{ext}").write_bytes(data)
            (out / "labels" / split / f"task-{item.task_id}.txt").write_text(
                "".join(f"{line}\n" for line in lines)
            )
    data_yaml = out / "data.yaml"
    out.mkdir(parents=True, exist_ok=True)
    data_yaml.write_text(
        yaml.safe_dump(
            # No "path": ultralytics then resolves train/val next to this file, so the folder can move.
            {"train": "images/train", "val": "images/val", "names": dict(enumerate(class_names))},
            sort_keys=False,
        )
    )
    return DatasetSummary(
        data_yaml=data_yaml,
        images=len(fetched),
        objects=sum(len(lines) for *_, lines in fetched),
        skipped=skipped,
        per_class=per_class,
    )
