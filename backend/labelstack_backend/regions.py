"""Model output -> Label Studio result regions. Pure functions.

The result formats are Label Studio's own: polygons are ``value.points`` in
percent, brushes are ``value.rle`` in Label Studio's brush RLE, rectangles are
``x, y, width, height`` in percent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labelstack_backend import rle
from labelstack_backend.geometry import CropMask, Points, box_of, mask_polygons, to_percent
from labelstack_backend.labelconfig import BRUSH, POLYGON, RECTANGLE, Target

Region = dict[str, Any]


@dataclass(frozen=True)
class Detection:
    """One object the model found, in original image pixels."""

    class_id: int
    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    mask: CropMask | None = None


def region_id(*parts: object) -> str:
    """A deterministic region id, unique within one prediction."""
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:10]


def _base(target: Target, width: int, height: int, rid: str, score: float | None) -> Region:
    region: Region = {
        "id": rid,
        "from_name": target.control.name,
        "to_name": target.control.to_name,
        "type": target.control.type,
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
    }
    if score is not None:
        region["score"] = round(float(score), 4)
    return region


def polygon_region(
    target: Target, points_px: Any, width: int, height: int, rid: str, score: float | None
) -> Region:
    region = _base(target, width, height, rid, score)
    region["type"] = POLYGON
    region["value"] = {
        "points": to_percent(points_px, width, height),
        "closed": True,
        "polygonlabels": [target.label],
    }
    return region


def brush_region(target: Target, mask: CropMask, rid: str, score: float | None) -> Region:
    region = _base(target, mask.image_width, mask.image_height, rid, score)
    region["type"] = BRUSH
    # Encoded from the crop: a region costs its own pixels, not the image's.
    encoded = rle.encode_window(mask.crop, mask.x0, mask.y0, mask.image_height, mask.image_width)
    region["value"] = {"format": "rle", "rle": encoded.tolist(), "brushlabels": [target.label]}
    return region


def rectangle_region(
    target: Target,
    box: tuple[float, float, float, float],
    width: int,
    height: int,
    rid: str,
    score: float | None,
) -> Region:
    x0, y0, x1, y1 = (max(0.0, v) for v in box)
    x1, y1 = min(x1, width), min(y1, height)
    region = _base(target, width, height, rid, score)
    region["type"] = RECTANGLE
    region["value"] = {
        "x": round(x0 / width * 100, 4),
        "y": round(y0 / height * 100, 4),
        "width": round((x1 - x0) / width * 100, 4),
        "height": round((y1 - y0) / height * 100, 4),
        "rotation": 0,
        "rectanglelabels": [target.label],
    }
    return region


#: A part of a split mask becomes its own polygon when it has at least this many pixels and
#: this fraction of the largest part's area; smaller specks are left out (the brush keeps them).
MIN_PART_AREA = 16.0
MIN_PART_FRACTION = 0.01


def polygon_parts(polys: Sequence[Points]) -> list[Points]:
    """The parts of a mask (``mask_polygons``' outlines, largest first) worth a polygon each."""
    if not polys:
        return []
    areas = [_area(p) for p in polys]
    floor = max(MIN_PART_AREA, MIN_PART_FRACTION * areas[0])
    return [polys[0], *(p for p, a in zip(polys[1:], areas[1:], strict=True) if a >= floor)]


def _area(points: Points) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def mask_regions(
    target: Target, mask: CropMask, *, rid: str, score: float | None, tolerance: float
) -> list[Region]:
    """Regions for one mask in the form ``target``'s control asks for (brush or polygon)."""
    if target.control.type == BRUSH:
        return [brush_region(target, mask, rid, score)]
    if target.control.type == POLYGON:
        # A Label Studio polygon is one ring: a mask in several parts (an arm across a dress)
        # becomes one region per part, with the same label and score. The largest keeps ``rid``.
        polys = polygon_parts(mask_polygons(mask, tolerance))
        return [
            polygon_region(
                target, poly, mask.image_width, mask.image_height, region_id(rid, k) if k else rid, score
            )
            for k, poly in enumerate(polys)
        ]
    if target.control.type == RECTANGLE:
        return [rectangle_region(target, box_of(mask), mask.image_width, mask.image_height, rid, score)]
    return []


def detections_to_regions(
    detections: Iterable[Detection],
    label_map: dict[int, Target],
    *,
    width: int,
    height: int,
    threshold: float,
    tolerance: float,
    id_seed: str,
) -> list[Region]:
    """Turn detections into regions: mapped classes only, above their threshold."""
    regions: list[Region] = []
    for i, det in enumerate(detections):
        target = label_map.get(det.class_id)
        if target is None:
            continue
        control_threshold = target.control.score_threshold
        if det.score < (threshold if control_threshold is None else control_threshold):
            continue
        rid = region_id(id_seed, i)
        if target.control.type == RECTANGLE or det.mask is None:
            if target.control.type == RECTANGLE:
                regions.append(rectangle_region(target, det.box, width, height, rid, det.score))
            continue
        regions.extend(mask_regions(target, det.mask, rid=rid, score=det.score, tolerance=tolerance))
    return regions


def prediction(regions: Sequence[Region], model_version: str) -> dict[str, Any]:
    """One task's prediction as Label Studio expects it."""
    scores = [r["score"] for r in regions if "score" in r]
    return {
        "result": list(regions),
        "score": round(sum(scores) / len(scores), 4) if scores else 0.0,
        "model_version": model_version,
    }


def failed_prediction(task_id: Any, reason: str) -> dict[str, Any]:
    """A per-task failure. It has no ``result`` key, so Label Studio stores nothing for
    the task and retries it later, while the other tasks of the batch keep theirs."""
    return {"task": task_id, "error": reason}
