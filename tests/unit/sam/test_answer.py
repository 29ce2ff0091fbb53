"""Masks -> Label Studio regions: holes, empty masks, which tags a label goes to."""

from __future__ import annotations

import numpy as np
import pytest

from labelstack_backend import rle
from labelstack_backend.errors import UnprocessableConfig
from labelstack_backend.geometry import polygon_to_mask
from labelstack_backend.labelconfig import parse_label_config
from labelstack_backend.sam.answer import click_prediction, click_targets, object_regions, target_controls
from labelstack_backend.sam.decode import MaskResult
from tests.support.sam import CONFIG_WITH_POLYGON


def targets(label: str | None = "Shirt", config: str = CONFIG_WITH_POLYGON) -> list:
    return click_targets(target_controls(parse_label_config(config)), label)


def test_a_mask_with_a_hole_keeps_it_as_a_brush_and_fills_it_as_a_polygon() -> None:
    mask = np.zeros((40, 50), dtype=bool)
    mask[5:35, 10:40] = True
    mask[15:25, 20:30] = False  # the hole
    brush, polygon = object_regions(targets(), MaskResult(mask, 0.9), tolerance=0.5)
    decoded = rle.decode(brush["value"]["rle"], 40, 50) > 0
    np.testing.assert_array_equal(decoded, mask)
    filled = polygon_to_mask(polygon["value"]["points"], 50, 40)
    assert filled[20, 25]  # the hole is inside the polygon
    assert filled[5:35, 10:40].mean() > 0.95 and not filled[0, 0]
    assert brush["score"] == polygon["score"] == 0.9


def test_the_polygon_is_the_largest_part_of_a_split_mask() -> None:
    mask = np.zeros((40, 60), dtype=bool)
    mask[5:35, 5:30] = True  # large part
    mask[10:14, 45:49] = True  # a speck
    _, polygon = object_regions(targets(), MaskResult(mask, 0.5), tolerance=0.5)
    xs = np.asarray(polygon["value"]["points"])[:, 0] / 100 * 60
    assert xs.max() <= 30.5


def test_an_empty_mask_makes_no_region_and_an_explained_empty_prediction() -> None:
    assert object_regions(targets(), MaskResult(np.zeros((4, 4), dtype=bool), 0.1), tolerance=1.0) == []
    answer = click_prediction([], "sam-v")
    assert answer["result"] == [] and answer["model_version"] == "sam-v" and answer["info"]


def test_brush_comes_first_and_polygon_only_when_asked() -> None:
    assert [(t.control.name, t.label) for t in targets()] == [("mask", "Shirt"), ("outline", "Shirt")]
    without = CONFIG_WITH_POLYGON.replace(' sam_polygon="true"', "")
    assert [t.control.name for t in targets(config=without)] == ["mask"]


def test_a_label_only_the_polygon_tag_has_goes_to_the_polygon() -> None:
    config = CONFIG_WITH_POLYGON.replace(
        '<Label value="Trousers"/>\n  </PolygonLabels>',
        '<Label value="Trousers"/><Label value="Hat"/>\n  </PolygonLabels>',
    )
    assert [t.control.name for t in targets("Hat", config)] == ["outline"]


def test_an_unknown_label_names_the_known_ones() -> None:
    with pytest.raises(UnprocessableConfig, match=r"'Hat'.*\(Shirt, Trousers\)"):
        targets("Hat")
