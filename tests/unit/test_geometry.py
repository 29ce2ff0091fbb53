from __future__ import annotations

import cv2
import numpy as np
import pytest

from labelstack_backend.geometry import (
    CropMask,
    Letterbox,
    box_of,
    fitted_size,
    iou,
    mask_polygons,
    polygon_to_mask,
    to_percent,
    unletterbox_mask,
    upsample_window,
)


def letterbox(mask: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Put a mask through the same scale + centre-pad that ultralytics applies."""
    h, w = mask.shape
    lb = Letterbox.of((h, w), (size, size))
    nw, nh = round(w * lb.gain), round(h * lb.gain)
    small = cv2.resize(mask.astype(np.float32), (nw, nh), interpolation=cv2.INTER_LINEAR)
    out = np.zeros((size, size), np.float32)
    out[lb.top : lb.top + nh, lb.left : lb.left + nw] = small
    return out, lb


@pytest.mark.parametrize(("h", "w"), [(480, 640), (640, 360), (1000, 1000), (333, 777)])
def test_unletterbox_restores_masks_of_non_square_images(h, w):
    truth = np.zeros((h, w), bool)
    cv2.circle(truth.view(np.uint8), (w // 3, h // 2), min(h, w) // 5, 1, -1)
    cv2.rectangle(truth.view(np.uint8), (w // 2, h // 5), (w - 20, h // 2), 1, -1)
    inp, lb = letterbox(truth, 320)
    restored = unletterbox_mask(inp, lb, (0, 0, w, h), (h, w))
    assert iou(restored.full(), truth) > 0.97


def test_unletterbox_inside_a_box_returns_a_crop_at_the_right_place():
    h, w = 300, 500
    truth = np.zeros((h, w), bool)
    truth[100:200, 250:400] = True
    inp, lb = letterbox(truth, 256)
    crop = unletterbox_mask(inp, lb, (250, 100, 400, 200), (h, w))
    assert (crop.x0, crop.y0, crop.crop.shape) == (250, 100, (100, 150))
    assert iou(crop.full(), truth) > 0.95


def test_polygons_lie_on_the_mask_boundary_and_holes_are_filled():
    mask = np.zeros((120, 160), bool)
    mask[20:100, 30:130] = True
    mask[50:70, 60:90] = False  # a hole
    polys = mask_polygons(CropMask.from_full(mask), tolerance=0.5)
    assert len(polys) == 1
    pts = polys[0]
    filled = polygon_to_mask(to_percent(pts, 160, 120), 160, 120)
    outer = mask.copy()
    outer[50:70, 60:90] = True
    assert iou(filled, outer) > 0.97
    # Every vertex sits on a boundary pixel centre.
    xs, ys = pts[:, 0], pts[:, 1]
    on_edge = (np.isclose(xs, 30.5) | np.isclose(xs, 129.5)) | (np.isclose(ys, 20.5) | np.isclose(ys, 99.5))
    assert on_edge.all()


def test_largest_component_comes_first_and_tiny_specks_are_dropped():
    mask = np.zeros((100, 100), bool)
    mask[10:20, 10:20] = True
    mask[40:90, 40:90] = True
    mask[0, 99] = True
    polys = mask_polygons(CropMask.from_full(mask))
    assert len(polys) == 2
    assert cv2.contourArea(polys[0].astype(np.float32)) > cv2.contourArea(polys[1].astype(np.float32))


def test_percent_round_trip_and_box():
    mask = np.zeros((50, 80), bool)
    mask[10:20, 5:45] = True
    crop = CropMask.from_full(mask)
    assert box_of(crop) == (5.0, 10.0, 45.0, 20.0)
    assert crop.area == 400
    np.testing.assert_array_equal(crop.full(), mask)
    assert to_percent(np.array([[40.0, 25.0], [80.0, 50.0]]), 80, 50) == [[50.0, 50.0], [100.0, 100.0]]


@pytest.mark.parametrize(
    ("low", "out"),
    [((40, 40), (160, 160)), ((32, 40), (128, 160)), ((17, 23), (70, 91)), ((30, 40), (97, 131))],
)
def test_a_window_of_the_upsampled_mask_is_torchs_bit_for_bit(low, out):
    import torch
    import torch.nn.functional as F

    # One map per call: torch's own last bit depends on its code path (three maps on one
    # thread round otherwise). A pixel is a logit's sign, which the golden files hold.
    rng = np.random.default_rng(sum(low + out))
    for _ in range(3):
        logits = rng.normal(size=low).astype(np.float32)
        whole = F.interpolate(torch.from_numpy(logits)[None, None], out, mode="bilinear")[0, 0].numpy()
        np.testing.assert_array_equal(upsample_window(logits, out, (0, out[0]), (0, out[1])), whole)
        y0, x0 = rng.integers(0, out[0] - 1), rng.integers(0, out[1] - 1)
        y1, x1 = rng.integers(y0 + 1, out[0] + 1), rng.integers(x0 + 1, out[1] + 1)
        np.testing.assert_array_equal(upsample_window(logits, out, (y0, y1), (x0, x1)), whole[y0:y1, x0:x1])


@pytest.mark.parametrize("hw", [(480, 640), (640, 480), (97, 131), (1, 5000), (300, 300), (61, 43)])
def test_fitted_size_is_the_size_ultralytics_scales_to(hw):
    from ultralytics.data.augment import LetterBox

    params = LetterBox(160, auto=True, stride=32).get_params({"img": np.zeros((*hw, 3), np.uint8)})
    w, h = params["new_unpad"]
    assert fitted_size(hw, 160) == (h, w)
