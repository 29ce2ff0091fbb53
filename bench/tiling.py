"""Tiled versus plain inference on 4000x3000 images: time per image and small-object recall.

Trains a YOLOv8n-seg on synthetic shapes first (the same recipe as the tests,
about a minute and a half on 2 CPU cores), then predicts large synthetic photos
whose shapes are small at full-image scale.

    python -m bench.tiling --images 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

os.environ.setdefault("YOLO_OFFLINE", "1")

from labelstack_backend.formats.annotations import labeled_images
from labelstack_backend.formats.yolo import write_dataset
from labelstack_backend.imagecache import DiskCache
from labelstack_backend.images import ImageLoader
from labelstack_backend.labelconfig import parse_label_config
from labelstack_backend.predictors.base import PredictCall
from labelstack_backend.predictors.segmentation import SegmentationPredictor
from labelstack_backend.registry import ModelRegistry
from labelstack_backend.settings import Settings
from labelstack_backend.training.fit import fit
from tests.support.synthetic import COLOURS, SHAPE_LABELS, SHAPES_CONFIG, scene


def train(work: Path) -> Path:
    rng = np.random.default_rng(0)
    scenes = [scene(rng) for _ in range(48)]
    tasks = [
        {"id": i, "data": {"image": f"s://{i}"}, "annotations": [{"id": i, "result": sc.polygon_regions()}]}
        for i, sc in enumerate(scenes)
    ]
    images = labeled_images(tasks, parse_label_config(SHAPES_CONFIG), SHAPE_LABELS)
    summary = write_dataset(
        images, SHAPE_LABELS, work / "ds", lambda v: (scenes[int(v.split("//")[1])].jpeg(), ".jpg")
    )
    result = fit(summary.data_yaml, "yolov8n-seg.yaml", epochs=40, imgsz=160, batch=8, device="cpu",
                 workdir=work / "runs", extra={"lr0": 0.02, "mosaic": 0.0, "warmup_epochs": 0, "val": False})  # fmt: skip
    return result.weights


def large_scene(rng: np.random.Generator, path: Path, n: int = 10) -> list[tuple[float, float]]:
    img = Image.new("RGB", (4000, 3000), tuple(int(v) for v in rng.integers(10, 60, 3)))
    draw = ImageDraw.Draw(img)
    centres = []
    while len(centres) < n:
        cx, cy = float(rng.integers(150, 3850)), float(rng.integers(150, 2850))
        if any(abs(cx - x) < 300 and abs(cy - y) < 300 for x, y in centres):
            continue
        r = float(rng.integers(70, 130))
        label = SHAPE_LABELS[int(rng.integers(0, 2))]
        (draw.ellipse if label == "circle" else draw.rectangle)(
            [cx - r, cy - r, cx + r, cy + r], fill=COLOURS[label]
        )
        centres.append((cx, cy))
    img.save(path, quality=92)
    return centres


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=5)
    ap.add_argument(
        "--weights", default="", help="a model that finds the shapes at tile scale (default: train one)"
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-tiling-"))
    weights = Path(args.weights) if args.weights else train(work)
    rng = np.random.default_rng(1)
    paths, truths = [], []
    for i in range(args.images):
        path = work / f"large-{i}.jpg"
        truths.append(large_scene(rng, path))
        paths.append(path)

    def predictor(tiled: bool) -> SegmentationPredictor:
        env = {"LABELSTACK_SEG_WEIGHTS": str(weights), "MODEL_DIR": str(work / "m"), "LABELSTACK_IMGSZ": "160",
               "LABELSTACK_SCORE_THRESHOLD": "0.3", "LABELSTACK_TILING": "1" if tiled else "0"}  # fmt: skip
        loader = ImageLoader(max_pixels=10**8, max_bytes=10**9, timeout=5, cache=DiskCache(work / "c", 0))
        pred = SegmentationPredictor(Settings.from_env(env), ModelRegistry(work / "m"), loader)
        pred.load()
        return pred

    config = parse_label_config(SHAPES_CONFIG)
    out = {}
    for name, tiled in (("plain", False), ("tiled", True)):
        pred = predictor(tiled)
        times, found, total = [], 0, 0
        for path, truth in zip(paths, truths, strict=True):
            call = PredictCall([{"id": 1, "data": {"image": str(path)}}], None, config, None, None)
            t = time.perf_counter()
            result = pred.predict(call)[0]
            times.append(time.perf_counter() - t)
            centres = [np.array(r["value"]["points"]).mean(0) / 100 * [4000, 3000] for r in result["result"]]
            total += len(truth)
            found += sum(any(abs(c[0] - x) < 130 and abs(c[1] - y) < 130 for c in centres) for x, y in truth)
        out[name] = {"s_per_image": round(statistics.median(times), 2), "recall": round(found / total, 3)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
