"""Which tags a click fills, and masks -> Label Studio regions. Pure functions.

A mask goes to the config's ``<BrushLabels>`` with the prompt's label. When a
``<PolygonLabels>`` asks for it with ``sam_polygon="true"`` (or
``LABELSTACK_SAM_POLYGON=1`` asks for every one), the same mask also comes back
as a polygon: the outer contour of its largest part, simplified by
``LABELSTACK_POLYGON_TOLERANCE`` pixels, holes filled (Label Studio polygons
have none; the brush keeps them). A config may also have polygons only.

An empty mask is answered with an empty result list inside the one prediction
Label Studio requires, plus a human-readable ``info``: Label Studio rejects a
missing prediction, but accepts an empty one, and the editor simply shows no
suggestion, which is what an empty mask means.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from labelstack_backend.errors import BadRequest, UnprocessableConfig
from labelstack_backend.geometry import CropMask
from labelstack_backend.labelconfig import (
    BRUSH,
    KEYPOINT,
    POLYGON,
    RECTANGLE,
    SAM_POLYGON_ATTR,
    Control,
    LabelConfig,
    Target,
    require_controls,
)
from labelstack_backend.regions import Region, mask_regions, prediction
from labelstack_backend.sam.decode import MaskResult

NO_OBJECT = (
    "Segment Anything found no object at this prompt: click inside the object, add points, or draw a box"
)
WARMED = "Segment Anything caches this image's embedding, so that the first click on it is fast"


def target_controls(config: LabelConfig, polygons: bool = False) -> tuple[Control, ...]:
    """The tags a SAM mask fills: every ``<BrushLabels>``, and the ``<PolygonLabels>`` that
    ask for it (``sam_polygon="true"``, or all of them when ``polygons``)."""
    return tuple(
        c
        for c in config.controls_of((BRUSH, POLYGON))
        if c.predicts and (c.type == BRUSH or polygons or c.flag(SAM_POLYGON_ATTR))
    )


def check_sam_config(config: LabelConfig, polygons: bool = False) -> tuple[Control, ...]:
    """The fillable tags, or :class:`UnprocessableConfig` saying what the config lacks."""
    require_controls(config, (BRUSH, POLYGON), "sam")
    targets = target_controls(config, polygons)
    if not targets:
        raise UnprocessableConfig(
            f'the sam backend fills <BrushLabels>, or <PolygonLabels {SAM_POLYGON_ATTR}="true">; this '
            f'config has only <PolygonLabels> without {SAM_POLYGON_ATTR}="true"'
        )
    if not config.controls_of((KEYPOINT, RECTANGLE)):
        raise UnprocessableConfig(
            'the sam backend segments from clicks and boxes: add <KeyPointLabels smart="true"> or '
            '<RectangleLabels smart="true"> on the same <Image>, with the same labels as the <BrushLabels>'
        )
    return targets


def _match(control: Control, label: str) -> str | None:
    names = [lab.value for lab in control.labels]
    if label in names:
        return label
    folded = label.casefold()
    return next((n for n in names if n.casefold() == folded), None)


def click_targets(controls: Sequence[Control], label: str | None, to_name: str | None = None) -> list[Target]:
    """Where one object's mask goes: the first brush tag holding the prompt's label, and
    the first polygon tag holding it (when polygons are asked for)."""
    if to_name:
        on_image = [c for c in controls if c.to_name == to_name]
        if not on_image:
            raise UnprocessableConfig(
                f"the prompt is on <Image name={to_name!r}>, but no <BrushLabels> (or sam_polygon "
                "<PolygonLabels>) points at it"
            )
        controls = on_image
    if label is None:
        singles = {c.labels[0].value for c in controls if len(c.labels) == 1}
        if len(singles) != 1:
            raise BadRequest(
                "the prompt carries no label, and the mask tags have several: select a label before clicking"
            )
        label = singles.pop()
    targets: list[Target] = []
    for kind in (BRUSH, POLYGON):
        for control in controls:
            matched = _match(control, label) if control.type == kind else None
            if matched is not None:
                targets.append(Target(control, matched))
                break
    if not targets:
        known = ", ".join(sorted({lab.value for c in controls for lab in c.labels})) or "none"
        raise UnprocessableConfig(
            f"the prompt's label {label!r} is not a label of the mask tags ({known}); give the "
            "<BrushLabels> the same labels as the <KeyPointLabels>/<RectangleLabels>"
        )
    return targets


def object_regions(targets: Iterable[Target], result: MaskResult, tolerance: float) -> list[Region]:
    """The regions of one object's mask; none for an empty mask."""
    if not result.mask.any():
        return []
    crop = CropMask.from_full(result.mask)
    regions: list[Region] = []
    for target in targets:
        # Random ids, as Label Studio's editor makes: a repeated click must not collide
        # with a suggestion the user already accepted.
        rid = uuid.uuid4().hex[:10]
        regions.extend(mask_regions(target, crop, rid=rid, score=result.score, tolerance=tolerance))
    return regions


def click_prediction(regions: Sequence[Region], model_version: str) -> dict[str, Any]:
    """The one prediction an interactive call answers with, empty or not."""
    out = prediction(regions, model_version)
    if not regions:
        out["info"] = NO_OBJECT
    return out


def warm_prediction(model_version: str) -> dict[str, Any]:
    """The answer to a call without a context: a valid, empty prediction."""
    out = prediction([], model_version)
    out["info"] = WARMED
    return out
