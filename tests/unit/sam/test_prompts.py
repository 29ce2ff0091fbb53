"""Label Studio context -> SAM prompts: exact conversion, and clear errors for bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labelstack_backend.errors import BadRequest, ImageError
from labelstack_backend.sam.prompts import check_frame, parse_context
from tests.support.sam import keypoint, pixel_percent, rectangle


def test_point_at_a_pixel_centre_lands_on_that_pixel() -> None:
    w, h = 40, 60
    ctx = parse_context({"result": [keypoint(pixel_percent(10, w), pixel_percent(45, h), w, h)]})
    (obj,) = ctx.objects(w, h)
    np.testing.assert_allclose(obj.points, [[10.5, 45.5]], atol=1e-9)
    assert [math.floor(v) for v in obj.points[0]] == [10, 45]
    assert obj.labels.tolist() == [1]
    assert obj.box is None
    assert (obj.label, obj.width, obj.height) == ("Shirt", w, h)
    assert ctx.frame == (w, h)


def test_percent_is_scale_free() -> None:
    """The same click on a frame twice the size lands on the same spot, in its own pixels."""
    ctx = parse_context({"result": [keypoint(25.0, 75.0, 40, 60)]})
    assert ctx.objects(40, 60)[0].points.tolist() == [[10.0, 45.0]]
    assert ctx.objects(80, 120)[0].points.tolist() == [[20.0, 90.0]]


def test_points_keep_order_polarity_and_latest_label() -> None:
    ctx = parse_context(
        {
            "result": [
                keypoint(10, 10, 100, 50, label="Shirt"),
                keypoint(20, 30, 100, 50, label="Trousers", positive=False),
                keypoint(90, 90, 100, 50, label=None),
            ]
        }
    )
    (obj,) = ctx.objects(100, 50)
    assert obj.points.tolist() == [[10.0, 5.0], [20.0, 15.0], [90.0, 45.0]]
    assert obj.labels.tolist() == [1, 0, 1]
    assert obj.label == "Trousers"  # the latest labelled prompt: what the user has selected now


def test_missing_is_positive_means_positive() -> None:
    region = keypoint(50, 50, 10, 10)
    del region["is_positive"]
    assert parse_context({"result": [region]}).objects(10, 10)[0].labels.tolist() == [1]


def test_box_with_points_is_one_object() -> None:
    ctx = parse_context(
        {"result": [rectangle(10, 20, 50, 40, 200, 100), keypoint(30, 40, 200, 100, positive=False)]}
    )
    (obj,) = ctx.objects(200, 100)
    assert obj.box is not None
    assert obj.box.tolist() == [20.0, 20.0, 120.0, 60.0]
    assert obj.points.tolist() == [[60.0, 40.0]]
    assert obj.labels.tolist() == [0]


def test_rotated_box_becomes_its_pixel_bounding_box() -> None:
    # 20x10 px box at (50, 50) px, rotated 90 degrees clockwise about its top-left corner:
    # it now spans x 40..50, y 50..70. The rotation is in pixels, not in percent units.
    w, h = 200, 100
    ctx = parse_context({"result": [rectangle(25, 50, 10, 10, w, h, rotation=90)]})
    box = ctx.objects(w, h)[0].box
    assert box is not None
    np.testing.assert_allclose(box, [40.0, 50.0, 50.0, 70.0], atol=1e-9)


def test_box_is_clipped_to_the_image() -> None:
    ctx = parse_context({"result": [rectangle(80, 80, 20.4, 20.4, 100, 100)]})
    box = ctx.objects(100, 100)[0].box
    assert box is not None
    assert box.tolist() == [80.0, 80.0, 100.0, 100.0]


def test_several_boxes_are_one_object_each_with_its_label() -> None:
    ctx = parse_context(
        {
            "result": [
                rectangle(0, 0, 10, 10, 100, 100, label="Shirt"),
                rectangle(50, 50, 10, 10, 100, 100, label="Trousers"),
                keypoint(5, 5, 100, 100),
            ]
        }
    )
    objs = ctx.objects(100, 100)
    assert [o.label for o in objs] == ["Shirt", "Trousers"] == ctx.object_labels()
    assert all(len(o.points) == 0 and o.box is not None for o in objs)


def test_other_region_types_are_not_prompts() -> None:
    brush = {"type": "brushlabels", "value": {"rle": [1, 2], "brushlabels": ["Shirt"]}}
    ctx = parse_context({"result": [brush, keypoint(50, 50, 10, 10)]})
    assert len(ctx.prompts) == 1


def test_slightly_out_of_range_percent_is_clamped() -> None:
    ctx = parse_context({"result": [keypoint(100.2, -0.1, 10, 10)]})
    assert ctx.objects(10, 10)[0].points.tolist() == [[10.0, 0.0]]


@pytest.mark.parametrize(
    ("context", "words"),
    [
        ({"result": []}, "no keypointlabels or rectanglelabels"),
        ({"something": 1}, "no 'result' list"),
        ({"result": "x"}, "no 'result' list"),
        ({"result": [keypoint(150, 50, 10, 10)]}, "outside the image"),
        ({"result": [keypoint(-3, 50, 10, 10)]}, "outside the image"),
        ({"result": [keypoint(float("nan"), 50, 10, 10)]}, "finite"),
        ({"result": [keypoint("50", 50, 10, 10)]}, "must be a number"),
        ({"result": [{**keypoint(5, 5, 10, 10), "is_positive": "yes"}]}, "is_positive"),
        ({"result": [keypoint(5, 5, 10, 10, positive=False)]}, "every point is negative"),
        ({"result": [{**keypoint(5, 5, 10, 10), "original_width": 0}]}, "original_width"),
        ({"result": [keypoint(5, 5, 10, 10), keypoint(6, 6, 20, 10)]}, "disagree on the image size"),
        ({"result": [rectangle(5, 5, 0, 10, 10, 10)]}, "empty box"),
        ({"result": [rectangle(5, 5, 10, 10, 10, 10, rotation="a")]}, "degrees"),  # type: ignore[arg-type]
        ({"result": [{"type": "keypointlabels"}]}, "no 'value'"),
        ({"result": [3]}, "must be an object"),
    ],
)
def test_bad_context_is_a_clear_bad_request(context: dict, words: str) -> None:
    with pytest.raises(BadRequest) as err:
        parse_context(context)
    assert words in err.value.reason


def test_frame_of_the_same_shape_is_accepted_at_any_scale() -> None:
    check_frame((40, 60), 40, 60)
    check_frame((80, 120), 40, 60)
    check_frame((41, 60), 40, 60)  # rounding of odd sizes


def test_frame_with_swapped_sides_is_refused() -> None:
    """The editor placed the click on the unrotated image: no mask can land right."""
    with pytest.raises(ImageError, match="EXIF orientation"):
        check_frame((60, 40), 40, 60)


def test_a_frame_above_the_pixel_limit_is_refused() -> None:
    """The mask is made at the editor's size: a made-up huge size must not exhaust memory."""
    check_frame((400, 600), 40, 60, max_pixels=400 * 600)
    with pytest.raises(BadRequest, match="above the limit"):
        check_frame((40_000, 60_000), 40, 60, max_pixels=40_000_000)
