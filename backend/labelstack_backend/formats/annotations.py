"""Label Studio tasks with annotations -> labelled images. Pure functions.

This is the single converter behind fine-tuning and dataset export: it picks the
annotation that counts for each task, skips cancelled (skipped) ones, and turns
polygon and brush regions into normalised polygons (and masks for brushes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from labelstack_backend import rle
from labelstack_backend.geometry import CropMask, mask_polygons
from labelstack_backend.labelconfig import BRUSH, POLYGON, LabelConfig

Polygon = list[tuple[float, float]]  # normalised 0..1, x then y


@dataclass(frozen=True)
class LabeledObject:
    label: str
    polygons: tuple[Polygon, ...]  # outer contours, normalised
    source: str  # "polygonlabels" or "brushlabels"
    mask: npt.NDArray[np.bool_] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class LabeledImage:
    task_id: int
    image: str  # the task's image value (URL, gs://, path)
    annotation_id: int
    updated_at: str
    width: int
    height: int
    objects: tuple[LabeledObject, ...]


def select_annotation(task: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The annotation that counts: a ground truth first, else the latest updated.
    Cancelled (skipped) annotations never count."""
    usable: list[Mapping[str, Any]] = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    if not usable:
        return None
    return max(
        usable, key=lambda a: (bool(a.get("ground_truth")), str(a.get("updated_at") or ""), a.get("id", 0))
    )


def _polygon_from_points(points: Sequence[Sequence[float]]) -> Polygon:
    return [(float(np.clip(x / 100.0, 0, 1)), float(np.clip(y / 100.0, 0, 1))) for x, y in points]


def region_to_object(region: Mapping[str, Any], min_area_px: float = 4.0) -> LabeledObject | None:
    """One result region -> a labelled object, or None for regions we cannot use."""
    value = region.get("value") or {}
    rtype = str(region.get("type", "")).lower()
    if rtype == POLYGON:
        labels = value.get("polygonlabels") or []
        points = value.get("points") or []
        if not labels or len(points) < 3:
            return None
        return LabeledObject(labels[0], (_polygon_from_points(points),), POLYGON)
    if rtype == BRUSH:
        labels = value.get("brushlabels") or []
        width, height = region.get("original_width"), region.get("original_height")
        if (
            not labels
            or value.get("format", "rle") != "rle"
            or not value.get("rle")
            or not width
            or not height
        ):
            return None
        mask = rle.decode(value["rle"], int(height), int(width)) > 0
        polys = mask_polygons(CropMask.from_full(mask), tolerance=1.0, min_area=min_area_px)
        normalised = tuple(
            [(float(x / width), float(y / height)) for x, y in np.clip(p, 0, [width, height])] for p in polys
        )
        return LabeledObject(labels[0], normalised, BRUSH, mask=mask)
    return None


def _image_size(results: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
    for region in results:
        if region.get("original_width") and region.get("original_height"):
            return int(region["original_width"]), int(region["original_height"])
    return 0, 0


def task_to_labeled_image(
    task: Mapping[str, Any], config: LabelConfig, labels: Iterable[str] | None = None
) -> LabeledImage | None:
    """A task's counting annotation as a labelled image, or None if it has none.

    Only regions of polygon and brush controls that point at the config's image
    are used; ``labels`` limits them to known class names.
    """
    annotation = select_annotation(task)
    if annotation is None:
        return None
    controls = {c.name: c for c in config.controls_of((POLYGON, BRUSH))}
    if not controls:
        return None
    image_obj = config.image(next(iter(controls.values())).to_name)
    data = task.get("data") or {}
    if image_obj is None or image_obj.value_key not in data:
        return None
    allowed = set(labels) if labels is not None else None
    results = annotation.get("result") or []
    objects: list[LabeledObject] = []
    for region in results:
        if region.get("from_name") not in controls:
            continue
        obj = region_to_object(region)
        if obj is None or not obj.polygons or (allowed is not None and obj.label not in allowed):
            continue
        objects.append(obj)
    width, height = _image_size(results)
    return LabeledImage(
        task_id=int(task.get("id", 0)),
        image=str(data[image_obj.value_key]),
        annotation_id=int(annotation.get("id", 0)),
        updated_at=str(annotation.get("updated_at") or ""),
        width=width,
        height=height,
        objects=tuple(objects),
    )


def labeled_images(
    tasks: Iterable[Mapping[str, Any]], config: LabelConfig, labels: Sequence[str]
) -> list[LabeledImage]:
    """Every task with a usable annotation, in task id order."""
    out = [img for task in tasks if (img := task_to_labeled_image(task, config, labels)) is not None]
    return sorted(out, key=lambda i: i.task_id)
