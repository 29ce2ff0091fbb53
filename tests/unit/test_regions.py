from __future__ import annotations

import numpy as np

from labelstack_backend import rle
from labelstack_backend.geometry import CropMask
from labelstack_backend.labelconfig import build_label_map, parse_label_config
from labelstack_backend.regions import Detection, detections_to_regions, failed_prediction, prediction

CFG = parse_label_config(
    '<View><Image name="img" value="$image"/>'
    '<PolygonLabels name="poly" toName="img"><Label value="dress"/></PolygonLabels>'
    '<BrushLabels name="brush" toName="img" model_score_threshold="0.8"><Label value="bag"/></BrushLabels>'
    '<RectangleLabels name="rect" toName="img"><Label value="shoe"/></RectangleLabels></View>'
)
NAMES = {0: "dress", 1: "bag", 2: "shoe", 3: "person"}


def det(cls, score, x0=10, y0=20, x1=50, y1=60):
    mask = np.zeros((100, 200), bool)
    mask[y0:y1, x0:x1] = True
    return Detection(cls, score, (x0, y0, x1, y1), CropMask.from_full(mask))


def regions(dets, threshold=0.3):
    lm = build_label_map(CFG.controls, NAMES)
    return detections_to_regions(
        dets, lm, width=200, height=100, threshold=threshold, tolerance=0.5, id_seed="v:1"
    )


def test_each_control_gets_its_own_region_type_in_percent():
    out = regions([det(0, 0.9), det(1, 0.95), det(2, 0.5)])
    by_type = {r["type"]: r for r in out}
    poly = by_type["polygonlabels"]
    assert poly["from_name"] == "poly" and poly["to_name"] == "img"
    assert poly["value"]["polygonlabels"] == ["dress"] and poly["score"] == 0.9
    xs = [p[0] for p in poly["value"]["points"]]
    ys = [p[1] for p in poly["value"]["points"]]
    assert min(xs) == 5.25 and max(xs) == 24.75 and min(ys) == 20.5 and max(ys) == 59.5
    brush = by_type["brushlabels"]
    assert brush["value"]["format"] == "rle" and brush["value"]["brushlabels"] == ["bag"]
    decoded = rle.decode(brush["value"]["rle"], 100, 200)
    assert decoded[20:60, 10:50].all() and decoded.sum() == 40 * 40 * 255
    assert (brush["original_width"], brush["original_height"]) == (200, 100)
    rect = by_type["rectanglelabels"]["value"]
    assert rect == {
        "x": 5.0,
        "y": 20.0,
        "width": 20.0,
        "height": 40.0,
        "rotation": 0,
        "rectanglelabels": ["shoe"],
    }


def test_thresholds_and_unmapped_classes():
    out = regions(
        [det(0, 0.2), det(1, 0.7), det(3, 0.99)]
    )  # too low; below the brush control's 0.8; unmapped
    assert out == []


def test_region_ids_are_unique_and_stable():
    a = regions([det(0, 0.9), det(0, 0.8, x0=60, x1=90)])
    b = regions([det(0, 0.9), det(0, 0.8, x0=60, x1=90)])
    assert [r["id"] for r in a] == [r["id"] for r in b]
    assert len({r["id"] for r in a}) == 2


def test_prediction_and_failure_shapes():
    out = prediction([{"score": 0.5}, {"score": 1.0}], "v1")
    assert out == {"result": [{"score": 0.5}, {"score": 1.0}], "score": 0.75, "model_version": "v1"}
    assert prediction([], "v1")["score"] == 0.0
    fail = failed_prediction(3, "HTTP 404")
    assert "result" not in fail and fail["error"] == "HTTP 404"


def test_a_mask_in_two_parts_gives_one_polygon_per_part_with_the_same_label_and_score():
    mask = np.zeros((100, 200), bool)
    mask[10:50, 10:60] = True  # the larger part
    mask[60:90, 120:150] = True  # a second, separate part
    mask[95:97, 190:192] = True  # a 4-pixel speck: no polygon of its own
    split = Detection(0, 0.8, (10, 10, 192, 97), CropMask.from_full(mask))
    out = regions([split])
    assert [r["type"] for r in out] == ["polygonlabels", "polygonlabels"]
    assert {r["value"]["polygonlabels"][0] for r in out} == {"dress"}
    assert {r["score"] for r in out} == {0.8}
    assert len({r["id"] for r in out}) == 2
    big, small = ([p[0] for p in r["value"]["points"]] for r in out)
    assert max(big) < 30 and min(small) > 59, "each polygon outlines its own part, largest first"
    (alone,) = regions([det(0, 0.8)])
    assert regions([det(0, 0.8)])[0]["id"] == alone["id"], "a one-part mask keeps its id"
