from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image, ImageDraw

from labelstack_backend.geometry import CropMask
from labelstack_backend.imagecache import DiskCache
from labelstack_backend.images import ImageLoader
from labelstack_backend.labelconfig import parse_label_config
from labelstack_backend.predictors.base import PredictCall
from labelstack_backend.predictors.segmentation import SegmentationPredictor
from labelstack_backend.regions import Detection
from labelstack_backend.registry import ModelRegistry
from labelstack_backend.settings import Settings
from labelstack_backend.tiling import merge, tile_windows, to_image
from tests.support.shapes_model import IMGSZ
from tests.support.synthetic import COLOURS, SHAPES_CONFIG


def test_windows_cover_the_image_with_the_overlap():
    wins = tile_windows(4000, 3000, 1024, 150)
    cover = np.zeros((3000, 4000), bool)
    for x0, y0, x1, y1 in wins:
        assert x1 - x0 == 1024 and y1 - y0 == 1024
        cover[y0:y1, x0:x1] = True
    assert cover.all()
    xs = sorted({w[0] for w in wins})
    assert all(b - a <= 1024 - 150 for a, b in itertools.pairwise(xs)) and xs[-1] == 4000 - 1024
    assert tile_windows(500, 300, 1024, 150) == [(0, 0, 500, 300)]
    with pytest.raises(ValueError):
        tile_windows(100, 100, 64, 64)


def disc(cx, cy, r, w, h):
    yy, xx = np.mgrid[:h, :w]
    return ((xx - cx) ** 2 + (yy - cy) ** 2) <= r * r


def seen_in(window, full_mask, cls=0, score=0.9):
    """What a tile sees of ``full_mask``: the part inside its window, in tile coordinates."""
    x0, y0, x1, y1 = window
    part = full_mask[y0:y1, x0:x1]
    crop = CropMask.from_full(part)
    ys, xs = np.nonzero(part)
    det = Detection(cls, score, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), crop)
    return to_image(det, window, full_mask.shape[1], full_mask.shape[0])


def test_an_object_cut_by_tile_borders_becomes_one_region():
    h, w = 400, 1400
    long_thing = np.zeros((h, w), bool)
    long_thing[150:250, 100:1300] = True  # much longer than the overlap
    a, b = (0, 0, 800, 400), (600, 0, 1400, 400)
    merged = merge([seen_in(a, long_thing), seen_in(b, long_thing, score=0.8)])
    assert len(merged) == 1
    assert merged[0].score == 0.9 and merged[0].box == (100, 150, 1300, 250)
    np.testing.assert_array_equal(merged[0].mask.full(), long_thing)


def test_separate_objects_and_other_classes_stay_apart():
    h, w = 400, 1400
    one, two, mid = disc(300, 200, 60, w, h), disc(1100, 200, 60, w, h), disc(700, 200, 40, w, h)
    a, b = (0, 0, 800, 400), (600, 0, 1400, 400)
    out = merge([seen_in(a, one), seen_in(b, two), seen_in(a, mid, cls=0), seen_in(b, mid, cls=1)])
    assert sorted(d.class_id for d in out) == [0, 0, 0, 1]


@pytest.mark.slow
def test_tiling_finds_small_objects_in_a_large_image_and_merges_border_objects(trained_shapes, tmp_path):
    """4000x3000 photo with shapes that are small at full-image scale but normal at tile scale."""
    width, height = 4000, 3000
    img = Image.new("RGB", (width, height), (30, 30, 40))
    draw = ImageDraw.Draw(img)
    centres = [(500, 500, "circle"), (2500, 700, "square"), (1500, 2300, "circle"), (3400, 2400, "square")]
    border = (1004, 1500, "circle")  # cut by the first tile's right edge, whole in the second tile
    r = 100
    for cx, cy, label in [*centres, border]:
        box = [cx - r, cy - r, cx + r, cy + r]
        (draw.ellipse if label == "circle" else draw.rectangle)(box, fill=COLOURS[label])
    path = tmp_path / "large.jpg"
    img.save(path, quality=95)

    def predictor(tiled: bool) -> SegmentationPredictor:
        env = {
            "LABELSTACK_SEG_WEIGHTS": str(trained_shapes.weights),
            "MODEL_DIR": str(tmp_path / "models"),
            "LABELSTACK_IMGSZ": str(IMGSZ),
            "LABELSTACK_SCORE_THRESHOLD": "0.3",
            "LABELSTACK_TILING": "1" if tiled else "0",
            "LABELSTACK_TILE_SIZE": "1024",
            "LABELSTACK_TILE_OVERLAP": "150",
            "LABELSTACK_TILE_MIN_SIZE": "2048",
        }
        settings = Settings.from_env(env)
        loader = ImageLoader(
            max_pixels=50_000_000,
            max_bytes=10**8,
            timeout=5,
            cache=DiskCache(tmp_path / "c", 0),
            local_roots=(tmp_path,),
        )
        pred = SegmentationPredictor(settings, ModelRegistry(tmp_path / "models"), loader)
        pred.load()
        return pred

    call = PredictCall(
        tasks=[{"id": 1, "data": {"image": str(path)}}],
        project=None,
        config=parse_label_config(SHAPES_CONFIG),
        context=None,
        ls=None,
    )

    def centres_of(result):
        out = []
        for region in result["result"]:
            pts = np.array(region["value"]["points"]) / 100 * [width, height]
            out.append((pts[:, 0].mean(), pts[:, 1].mean(), region["value"]["polygonlabels"][0]))
        return out

    plain = centres_of(predictor(False).predict(call)[0])
    tiled = centres_of(predictor(True).predict(call)[0])

    def hits(found, cx, cy, label):
        return [f for f in found if abs(f[0] - cx) < r and abs(f[1] - cy) < r and f[2] == label]

    assert sum(bool(hits(plain, *c)) for c in centres) <= 1, f"plain inference should miss them: {plain}"
    assert all(hits(tiled, *c) for c in centres), f"tiling should find all: {tiled}"
    assert len(hits(tiled, *border)) == 1, f"the border object must be one region: {tiled}"
    assert len(tiled) == len(centres) + 1
