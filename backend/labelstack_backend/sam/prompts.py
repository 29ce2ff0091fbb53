"""Label Studio's interactive context -> Segment Anything prompts. Pure functions.

Label Studio sends the regions the user just drew in ``params.context.result``:

* ``keypointlabels``: ``value.x``, ``value.y`` in percent of the image, and
  ``is_positive`` on the region (false for a negative click; missing means positive);
* ``rectanglelabels``: ``value.x``, ``value.y``, ``value.width``, ``value.height`` in
  percent, and ``value.rotation`` in degrees about the top-left corner;

each with ``original_width``/``original_height``: the size of the image the editor
showed, which browsers report after applying the EXIF orientation. Percent
coordinates are relative to that size, so a prompt lands at ``x% * width`` of
the EXIF-corrected image the backend decodes (:func:`check_frame` refuses a
prompt placed on a differently shaped image rather than guessing).

Coordinates here are continuous pixels: the pixel ``(i, j)`` spans ``[i, i+1) x [j, j+1)``,
so a click at its centre is ``(i + 0.5, j + 0.5)`` and ``floor`` gives the pixel.

One box (with any points) is one object. Several boxes are one object each,
each with its own label (newer Label Studio editors send every rectangle of the
annotation); points are then ignored, because SAM cannot tell which box they refine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from labelstack_backend.errors import BadRequest, ImageError
from labelstack_backend.labelconfig import KEYPOINT, RECTANGLE

PROMPT_TYPES = (KEYPOINT, RECTANGLE)
# Percent values this far outside 0..100 are clamped (editors round); further out is an error.
PERCENT_SLACK = 0.5
# How far the editor's width may be from the decoded image's shape at the editor's height:
# a pixel (rounding of a scaled copy), or this fraction of the width.
ASPECT_TOLERANCE = 0.01


@dataclass(frozen=True)
class PointPrompt:
    x: float  # percent of the width
    y: float  # percent of the height
    positive: bool
    label: str | None
    to_name: str | None


@dataclass(frozen=True)
class BoxPrompt:
    x: float  # percent: top-left corner before rotation
    y: float
    width: float  # percent
    height: float
    rotation: float  # degrees, clockwise about (x, y)
    label: str | None
    to_name: str | None


Prompt = PointPrompt | BoxPrompt


@dataclass(frozen=True)
class ObjectPrompt:
    """What SAM gets for one object, in continuous pixels of a ``width x height`` frame."""

    points: npt.NDArray[np.float64]  # (N, 2) x, y
    labels: npt.NDArray[np.int64]  # (N,) 1 positive, 0 negative
    box: npt.NDArray[np.float64] | None  # (4,) x0, y0, x1, y1
    label: str | None
    width: int
    height: int


@dataclass(frozen=True)
class ClickContext:
    """The parsed context: the prompts in the order drawn, and the editor's image size."""

    prompts: tuple[Prompt, ...]
    frame: tuple[int, int] | None  # (width, height) from original_width/height

    @property
    def label(self) -> str | None:
        """The label of the latest labelled prompt: the one the user has selected now."""
        return next((p.label for p in reversed(self.prompts) if p.label), None)

    @property
    def to_name(self) -> str | None:
        return next((p.to_name for p in reversed(self.prompts) if p.to_name), None)

    @property
    def boxes(self) -> tuple[BoxPrompt, ...]:
        return tuple(p for p in self.prompts if isinstance(p, BoxPrompt))

    @property
    def points(self) -> tuple[PointPrompt, ...]:
        return tuple(p for p in self.prompts if isinstance(p, PointPrompt))

    def object_labels(self) -> list[str | None]:
        """The label of each object :meth:`objects` makes, in the same order."""
        boxes = self.boxes
        if len(boxes) > 1:
            return [b.label or self.label for b in boxes]
        return [self.label]

    def objects(self, width: int, height: int) -> list[ObjectPrompt]:
        """SAM prompts in continuous pixels of a ``width x height`` image."""
        boxes = self.boxes
        if len(boxes) > 1:
            return [
                ObjectPrompt(
                    points=np.zeros((0, 2)),
                    labels=np.zeros(0, dtype=np.int64),
                    box=box_pixels(b, width, height),
                    label=label,
                    width=width,
                    height=height,
                )
                for b, label in zip(boxes, self.object_labels(), strict=True)
            ]
        points = self.points
        return [
            ObjectPrompt(
                points=np.array([point_pixels(p, width, height) for p in points], dtype=np.float64).reshape(
                    -1, 2
                ),
                labels=np.array([1 if p.positive else 0 for p in points], dtype=np.int64),
                box=box_pixels(boxes[0], width, height) if boxes else None,
                label=self.label,
                width=width,
                height=height,
            )
        ]


def point_pixels(point: PointPrompt, width: int, height: int) -> tuple[float, float]:
    return point.x / 100.0 * width, point.y / 100.0 * height


def box_pixels(box: BoxPrompt, width: int, height: int) -> npt.NDArray[np.float64]:
    """The axis-aligned box around a (possibly rotated) rectangle, clipped to the image.

    Label Studio rotates a rectangle about its top-left corner; the rotation must be
    done in pixels, since percent units differ along x and y.
    """
    x0, y0 = box.x / 100.0 * width, box.y / 100.0 * height
    w, h = box.width / 100.0 * width, box.height / 100.0 * height
    corners = np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]])
    if box.rotation % 360:
        theta = math.radians(box.rotation)
        rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        corners = corners @ rot.T
    corners += (x0, y0)
    lo = np.clip(corners.min(axis=0), 0.0, (width, height))
    hi = np.clip(corners.max(axis=0), 0.0, (width, height))
    return np.array([lo[0], lo[1], hi[0], hi[1]], dtype=np.float64)


def check_frame(frame: tuple[int, int], width: int, height: int, max_pixels: int | None = None) -> None:
    """Refuse prompts placed on an image shaped differently from the decoded one.

    The same shape at another scale is fine (percent coordinates do not care), up to
    ``max_pixels``: the mask is made at the editor's size. A different shape, typically
    width and height swapped, means the editor and the backend disagree on the EXIF
    orientation, and every mask would land in the wrong place.
    """
    fw, fh = frame
    if max_pixels is not None and fw * fh > max_pixels:
        raise BadRequest(
            f"original_width x original_height is {fw}x{fh}, above the limit of {max_pixels:,} pixels "
            f"(LABELSTACK_IMAGE_MAX_PIXELS); the task's image is {width}x{height}"
        )
    if abs(fw - fh * width / height) > max(1.0, ASPECT_TOLERANCE * fw):
        raise ImageError(
            f"the prompt was placed on a {fw}x{fh} image, but the task's image is {width}x{height} "
            "after applying its EXIF orientation; the editor and the backend disagree on the image's "
            "orientation or size, so no mask can be placed reliably"
        )


def _percent(value: Any, what: str, *, extent: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{what} must be a number in percent, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise BadRequest(f"{what} must be a finite number, got {value!r}")
    low = 0.0 if extent else -PERCENT_SLACK
    if v < low or v > 100.0 + PERCENT_SLACK:
        raise BadRequest(f"{what} is {v:g}%, outside the image (0..100%)")
    return min(max(v, 0.0), 100.0)


def _degrees(value: Any, what: str) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"{what} must be a number of degrees, got {value!r}")
    return float(value)


def _size(region: Mapping[str, Any], key: str) -> int | None:
    value = region.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 1:
        raise BadRequest(f"'{key}' must be a positive number of pixels, got {value!r}")
    return round(value)


def _label(region: Mapping[str, Any], value: Mapping[str, Any], kind: str) -> str | None:
    labels = value.get(kind)
    if labels is None:
        labels = value.get("labels")
    if labels is None:
        return None
    if isinstance(labels, str):
        return labels or None
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise BadRequest(f"'value.{kind}' of region {region.get('id', '?')} must be a list of label names")
    return labels[0] if labels else None


def _positive(region: Mapping[str, Any], value: Mapping[str, Any]) -> bool:
    raw = region.get("is_positive", value.get("is_positive", True))
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    raise BadRequest(f"'is_positive' must be true or false, got {raw!r}")


def _parse_region(region: Any, index: int) -> tuple[Prompt | None, tuple[int, int] | None]:
    if not isinstance(region, Mapping):
        raise BadRequest(f"context.result[{index}] must be an object")
    kind = region.get("type")
    if kind not in PROMPT_TYPES:
        return None, None  # other regions of the annotation: not prompts
    value = region.get("value")
    if not isinstance(value, Mapping):
        raise BadRequest(f"context.result[{index}] ({kind}) has no 'value' object")
    where = f"context.result[{index}] ({kind})"
    to_name = region.get("to_name") if isinstance(region.get("to_name"), str) else None
    width, height = _size(region, "original_width"), _size(region, "original_height")
    frame = (width, height) if width and height else None
    label = _label(region, value, kind)
    if kind == KEYPOINT:
        point = PointPrompt(
            x=_percent(value.get("x"), f"{where} value.x"),
            y=_percent(value.get("y"), f"{where} value.y"),
            positive=_positive(region, value),
            label=label,
            to_name=to_name,
        )
        return point, frame
    box = BoxPrompt(
        x=_percent(value.get("x"), f"{where} value.x"),
        y=_percent(value.get("y"), f"{where} value.y"),
        width=_percent(value.get("width"), f"{where} value.width", extent=True),
        height=_percent(value.get("height"), f"{where} value.height", extent=True),
        rotation=_degrees(value.get("rotation"), f"{where} value.rotation"),
        label=label,
        to_name=to_name,
    )
    if box.width <= 0 or box.height <= 0:
        raise BadRequest(f"{where} is an empty box ({box.width:g}% x {box.height:g}%)")
    return box, frame


def parse_context(context: Mapping[str, Any]) -> ClickContext:
    """Parse ``params.context``; raise :class:`BadRequest` saying what is wrong."""
    regions = context.get("result")
    if not isinstance(regions, Sequence) or isinstance(regions, str | bytes):
        raise BadRequest(
            "the interactive context has no 'result' list: send the keypointlabels or "
            "rectanglelabels regions the user drew"
        )
    prompts: list[Prompt] = []
    frames: set[tuple[int, int]] = set()
    for i, region in enumerate(regions):
        prompt, frame = _parse_region(region, i)
        if prompt is not None:
            prompts.append(prompt)
        if frame is not None:
            frames.add(frame)
    if not prompts:
        raise BadRequest(
            "the interactive context holds no keypointlabels or rectanglelabels region to segment from"
        )
    if len(frames) > 1:
        sizes = ", ".join(f"{w}x{h}" for w, h in sorted(frames))
        raise BadRequest(f"the prompts disagree on the image size (original_width/height: {sizes})")
    ctx = ClickContext(prompts=tuple(prompts), frame=next(iter(frames), None))
    if not ctx.boxes and not any(p.positive for p in ctx.points):
        raise BadRequest("every point is negative: add a positive point or a box to say what to segment")
    return ctx
