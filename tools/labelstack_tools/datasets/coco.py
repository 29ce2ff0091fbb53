"""Labelled images -> COCO instance segmentation. Pure.

Polygons stay polygons. Brush masks become COCO RLE (pycocotools, compressed)
by default, which keeps holes, or their outer polygons when asked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pycocotools import mask as coco_mask

from labelstack_backend.formats.annotations import LabeledImage, LabeledObject


def _polygon_segmentation(obj: LabeledObject, width: int, height: int) -> list[list[float]]:
    return [
        [round(v, 2) for x, y in poly for v in (x * width, y * height)]
        for poly in obj.polygons
        if len(poly) >= 3
    ]


def _rle(mask: npt.NDArray[np.bool_]) -> tuple[dict[str, Any], float, list[float]]:
    """Compressed COCO RLE of a mask, with its area and box."""
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    segmentation = {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
    return segmentation, float(coco_mask.area(rle)), [float(v) for v in coco_mask.toBbox(rle)]


def _polygon_area_bbox(segmentation: list[list[float]], width: int, height: int) -> tuple[float, list[float]]:
    rles = coco_mask.frPyObjects(segmentation, height, width)
    merged = coco_mask.merge(rles)
    return float(coco_mask.area(merged)), [float(v) for v in coco_mask.toBbox(merged)]


def to_coco(
    images: Sequence[LabeledImage],
    class_names: Sequence[str],
    file_names: Mapping[int, str],
    *,
    brush_as: str = "rle",
) -> dict[str, Any]:
    """A COCO dict. ``file_names`` maps task ids to the image's file name (or URL);
    images of tasks without one are left out. Ids: image id = task id, category ids
    from 1 in the label config's order, annotation ids in a stable order."""
    if brush_as not in ("rle", "polygon"):
        raise ValueError("brush_as must be 'rle' or 'polygon'")
    categories = [
        {"id": i + 1, "name": name, "supercategory": "object"} for i, name in enumerate(class_names)
    ]
    category_id = {name: i + 1 for i, name in enumerate(class_names)}
    out_images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for img in images:
        if img.task_id not in file_names or not img.width or not img.height:
            continue
        out_images.append(
            {
                "id": img.task_id,
                "file_name": file_names[img.task_id],
                "width": img.width,
                "height": img.height,
            }
        )
        for obj in img.objects:
            if obj.label not in category_id:
                continue
            segmentation: Any
            if obj.mask is not None and brush_as == "rle":
                segmentation, area, bbox = _rle(obj.mask)
            else:
                segmentation = _polygon_segmentation(obj, img.width, img.height)
                if not segmentation:
                    continue
                area, bbox = _polygon_area_bbox(segmentation, img.width, img.height)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": img.task_id,
                    "category_id": category_id[obj.label],
                    "segmentation": segmentation,
                    "area": area,
                    "bbox": [round(v, 2) for v in bbox],
                    "iscrowd": 0,
                }
            )
    return {
        "info": {"description": "exported by LabelStack"},
        "images": out_images,
        "annotations": annotations,
        "categories": categories,
    }
