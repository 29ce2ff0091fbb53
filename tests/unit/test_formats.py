from __future__ import annotations

import io

import numpy as np
import yaml
from PIL import Image

from labelstack_backend import rle
from labelstack_backend.errors import ImageError
from labelstack_backend.formats.annotations import labeled_images, select_annotation, task_to_labeled_image
from labelstack_backend.formats.yolo import label_lines, write_dataset
from labelstack_backend.geometry import iou, polygon_to_mask
from labelstack_backend.labelconfig import parse_label_config
from tests.support.synthetic import SHAPES_CONFIG

CONFIG = parse_label_config(SHAPES_CONFIG)


def brush_region(mask: np.ndarray, label: str) -> dict:
    h, w = mask.shape
    return {
        "from_name": "brush",
        "to_name": "image",
        "type": "brushlabels",
        "original_width": w,
        "original_height": h,
        "value": {"format": "rle", "rle": rle.encode_list(mask), "brushlabels": [label]},
    }


def polygon_region(points, label):
    return {
        "from_name": "polygon",
        "to_name": "image",
        "type": "polygonlabels",
        "original_width": 200,
        "original_height": 100,
        "value": {"points": points, "polygonlabels": [label]},
    }


def task(tid, annotations):
    return {"id": tid, "data": {"image": f"/data/upload/1/{tid}.jpg"}, "annotations": annotations}


def test_cancelled_annotations_never_count_and_ground_truth_wins():
    t = task(
        1,
        [
            {"id": 1, "was_cancelled": False, "updated_at": "2026-01-02", "result": []},
            {"id": 2, "was_cancelled": True, "updated_at": "2026-01-09", "result": []},
            {"id": 3, "was_cancelled": False, "ground_truth": True, "updated_at": "2026-01-01", "result": []},
        ],
    )
    assert select_annotation(t)["id"] == 3  # type: ignore[index]
    assert select_annotation(task(2, [{"id": 9, "was_cancelled": True}])) is None
    assert task_to_labeled_image(task(2, [{"id": 9, "was_cancelled": True}]), CONFIG) is None


def test_polygons_and_brushes_become_normalised_polygons():
    mask = np.zeros((100, 200), np.uint8)
    mask[20:60, 50:150] = 255
    t = task(
        5,
        [
            {
                "id": 11,
                "updated_at": "2026-02-01",
                "result": [
                    polygon_region([[10, 10], [40, 10], [40, 50]], "circle"),
                    brush_region(mask, "square"),
                    polygon_region([[1, 1], [2, 2]], "circle"),  # degenerate: skipped
                    {"from_name": "other", "type": "choices", "value": {"choices": ["x"]}},
                ],
            }
        ],
    )
    img = task_to_labeled_image(t, CONFIG)
    assert img is not None and (img.task_id, img.annotation_id, img.width, img.height) == (5, 11, 200, 100)
    assert [o.label for o in img.objects] == ["circle", "square"]
    assert img.objects[0].polygons[0] == [(0.1, 0.1), (0.4, 0.1), (0.4, 0.5)]
    brush_poly = img.objects[1].polygons[0]
    back = polygon_to_mask([[x * 100, y * 100] for x, y in brush_poly], 200, 100)
    assert iou(back, mask > 0) > 0.95
    lines = label_lines(img, {"circle": 0, "square": 1})
    assert lines[0].startswith("0 0.100000 0.100000 0.400000 0.100000")
    assert lines[1].startswith("1 ")


def test_write_dataset_skips_bad_images_and_writes_data_yaml(tmp_path):
    good = task(1, [{"id": 1, "result": [polygon_region([[10, 10], [40, 10], [40, 50]], "circle")]}])
    bad = task(2, [{"id": 2, "result": [polygon_region([[10, 10], [40, 10], [40, 50]], "square")]}])
    images = labeled_images([bad, good], CONFIG, ["circle", "square"])
    assert [i.task_id for i in images] == [1, 2]

    def fetch(value: str) -> tuple[bytes, str]:
        if value.endswith("2.jpg"):
            raise ImageError("HTTP 404")
        buf = io.BytesIO()
        Image.new("RGB", (200, 100)).save(buf, format="PNG")
        return buf.getvalue(), ".png"

    summary = write_dataset(images, ["circle", "square"], tmp_path / "ds", fetch)
    assert summary.images == 1 and summary.objects == 1
    assert summary.per_class == {"circle": 1, "square": 0}
    assert summary.skipped == ["task 2: HTTP 404"]
    data = yaml.safe_load(summary.data_yaml.read_text())
    assert data["names"] == {0: "circle", 1: "square"}
    assert (tmp_path / "ds" / "labels" / "train" / "task-1.txt").read_text().startswith("0 ")
    assert (tmp_path / "ds" / "images" / "val" / "task-1.png").exists()
