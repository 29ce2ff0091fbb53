"""Sliding-window inference for large images. Pure geometry; the model call stays in the predictor.

An image at least ``min_size`` on its long side is cut into ``tile`` x ``tile``
windows overlapping by ``overlap`` pixels (the last row and column are aligned to
the image edge); optionally the whole image is predicted too, so objects larger
than a tile are still found. Detections are moved into image coordinates and
merged: two detections of the same class are one object when, inside the window
both of them saw, their masks mostly coincide. Comparing inside the shared window
(not over whole masks) is what joins the two halves of an object cut by a tile
border, however long the object is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labelstack_backend.geometry import BoolMask, CropMask
from labelstack_backend.regions import Detection

Window = tuple[int, int, int, int]  # x0, y0, x1, y1


@dataclass(frozen=True)
class TilingOptions:
    tile: int = 1024
    overlap: int = 150
    min_size: int = 2048
    full_pass: bool = True

    def applies(self, width: int, height: int) -> bool:
        return self.tile > 0 and max(width, height) >= self.min_size


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return sorted(set(starts))


def tile_windows(width: int, height: int, tile: int, overlap: int) -> list[Window]:
    """Windows covering the image, overlapping by at least ``overlap``."""
    if overlap >= tile:
        raise ValueError("the tile overlap must be smaller than the tile")
    step = tile - overlap
    return [
        (x, y, min(x + tile, width), min(y + tile, height))
        for y in _starts(height, tile, step)
        for x in _starts(width, tile, step)
    ]


@dataclass(frozen=True)
class Seen:
    """A detection in image coordinates, with the window it was found in."""

    detection: Detection
    window: Window


def to_image(det: Detection, window: Window, width: int, height: int) -> Seen:
    """Move a detection found in ``window`` into image coordinates."""
    x0, y0 = window[0], window[1]
    bx0, by0, bx1, by1 = det.box
    mask = None
    if det.mask is not None:
        mask = CropMask(det.mask.x0 + x0, det.mask.y0 + y0, det.mask.crop, height, width)
    return Seen(Detection(det.class_id, det.score, (bx0 + x0, by0 + y0, bx1 + x0, by1 + y0), mask), window)


def _intersect(a: Window, b: Window) -> Window | None:
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    return (x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None


def _in_window(mask: CropMask, win: Window) -> BoolMask:
    """The part of a mask inside ``win``, as a boolean array over ``win``."""
    out = np.zeros((win[3] - win[1], win[2] - win[0]), dtype=bool)
    h, w = mask.crop.shape
    src = _intersect((mask.x0, mask.y0, mask.x0 + w, mask.y0 + h), win)
    if src is not None:
        out[src[1] - win[1] : src[3] - win[1], src[0] - win[0] : src[2] - win[0]] = mask.crop[
            src[1] - mask.y0 : src[3] - mask.y0, src[0] - mask.x0 : src[2] - mask.x0
        ]
    return out


def _box_window(box: tuple[float, float, float, float]) -> Window:
    return (int(np.floor(box[0])), int(np.floor(box[1])), int(np.ceil(box[2])), int(np.ceil(box[3])))


def same_object(a: Seen, b: Seen, threshold: float = 0.5) -> bool:
    """Whether two same-class detections are one object (see the module doc)."""
    if a.detection.class_id != b.detection.class_id:
        return False
    shared = _intersect(a.window, b.window)
    if shared is None:
        return False
    boxes = _intersect(_box_window(a.detection.box), _box_window(b.detection.box))
    if boxes is None:
        return False
    ma, mb = a.detection.mask, b.detection.mask
    if ma is None or mb is None:  # boxes only: overlap of the boxes inside the shared window
        area = (boxes[2] - boxes[0]) * (boxes[3] - boxes[1])
        wa, wb = (_intersect(_box_window(s.detection.box), shared) for s in (a, b))
        if wa is None or wb is None:
            return False
        smaller = min((wa[2] - wa[0]) * (wa[3] - wa[1]), (wb[2] - wb[0]) * (wb[3] - wb[1]))
        return smaller > 0 and area / smaller >= threshold
    pa, pb = _in_window(ma, shared), _in_window(mb, shared)
    smaller = min(int(pa.sum()), int(pb.sum()))
    return smaller > 0 and int(np.logical_and(pa, pb).sum()) / smaller >= threshold


def _union(a: Detection, b: Detection) -> Detection:
    box = (min(a.box[0], b.box[0]), min(a.box[1], b.box[1]), max(a.box[2], b.box[2]), max(a.box[3], b.box[3]))
    mask = a.mask
    if a.mask is not None and b.mask is not None:
        win = _box_window(box)
        merged = _in_window(a.mask, win) | _in_window(b.mask, win)
        mask = CropMask(win[0], win[1], merged, a.mask.image_height, a.mask.image_width)
    return Detection(a.class_id, max(a.score, b.score), box, mask)


def merge(seen: Sequence[Seen], threshold: float = 0.5) -> list[Detection]:
    """Greedy merge, best score first: each detection joins the first kept object it is part of."""
    kept: list[Seen] = []
    for item in sorted(seen, key=lambda s: -s.detection.score):
        for i, k in enumerate(kept):
            if same_object(k, item, threshold):
                window = (
                    min(k.window[0], item.window[0]),
                    min(k.window[1], item.window[1]),
                    max(k.window[2], item.window[2]),
                    max(k.window[3], item.window[3]),
                )
                kept[i] = Seen(_union(k.detection, item.detection), window)
                break
        else:
            kept.append(item)
    return [k.detection for k in kept]
