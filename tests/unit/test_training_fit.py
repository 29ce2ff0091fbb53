"""Fine-tuning through the real fit path improves predictions on held-out images."""

from __future__ import annotations

import numpy as np
import pytest

from labelstack_backend.formats.annotations import labeled_images
from labelstack_backend.formats.yolo import write_dataset
from labelstack_backend.geometry import iou
from labelstack_backend.labelconfig import parse_label_config
from labelstack_backend.predictors.segmentation import SegmentationModel
from labelstack_backend.training.fit import EpochProgress, fit
from tests.support.synthetic import SHAPE_LABELS, SHAPES_CONFIG, scene

pytestmark = pytest.mark.slow


def mean_iou(model: SegmentationModel, scenes) -> float:
    found = model.detect([s.image for s in scenes], conf=0.25)
    scores = []
    for sc, dets in zip(scenes, found, strict=True):
        pred = np.zeros((sc.height, sc.width), bool)
        for d in dets:
            if d.mask is not None:
                pred |= d.mask.full()
        scores.append(iou(pred, sc.mask()))
    return float(np.mean(scores))


def test_training_on_annotations_beats_the_untrained_model(tmp_path):
    rng = np.random.default_rng(0)
    train = [scene(rng) for _ in range(48)]
    held_out = [scene(rng) for _ in range(8)]
    config = parse_label_config(SHAPES_CONFIG)
    tasks = [
        {
            "id": i,
            "data": {"image": f"synthetic://{i}"},
            "annotations": [{"id": i, "was_cancelled": False, "result": sc.polygon_regions()}],
        }
        for i, sc in enumerate(train)
    ]
    images = labeled_images(tasks, config, SHAPE_LABELS)
    summary = write_dataset(
        images, SHAPE_LABELS, tmp_path / "ds", lambda v: train[int(v.split("//")[1])].image
    )
    assert summary.images == 48

    untrained = SegmentationModel.load("yolov8n-seg.yaml", "untrained", device="cpu", half=False, imgsz=160)
    before = mean_iou(untrained, held_out)

    epochs: list[EpochProgress] = []
    result = fit(
        summary.data_yaml,
        "yolov8n-seg.yaml",
        epochs=40,
        imgsz=160,
        batch=8,
        device="cpu",
        workdir=tmp_path / "runs",
        on_epoch=epochs.append,
        extra={"lr0": 0.02, "mosaic": 0.0, "warmup_epochs": 0, "val": False},
    )
    assert [e.epoch for e in epochs] == list(range(1, 41))
    assert epochs[-1].loss is not None and epochs[-1].loss < epochs[0].loss  # type: ignore[operator]

    trained = SegmentationModel.load(str(result.weights), "trained", device="cpu", half=False, imgsz=160)
    assert set(trained.names.values()) == set(SHAPE_LABELS)
    after = mean_iou(trained, held_out)
    assert after > 0.5, f"trained mask IoU {after:.2f}"
    assert after > before + 0.4, f"untrained {before:.2f} -> trained {after:.2f}"
