"""Fine-tuning through the real fit path improves predictions on held-out images."""

from __future__ import annotations

import numpy as np
import pytest

from labelstack_backend.geometry import iou
from labelstack_backend.yolo.model import SegmentationModel
from tests.support.shapes_model import EPOCHS, IMGSZ
from tests.support.synthetic import SHAPE_LABELS

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


def test_training_on_annotations_beats_the_untrained_model(trained_shapes):
    progress = trained_shapes.progress
    assert [e.epoch for e in progress] == list(range(1, EPOCHS + 1))
    assert progress[-1].loss is not None and progress[0].loss is not None
    assert progress[-1].loss < progress[0].loss

    untrained = SegmentationModel.load("yolov8n-seg.yaml", "untrained", device="cpu", half=False, imgsz=IMGSZ)
    before = mean_iou(untrained, trained_shapes.held_out)
    trained = SegmentationModel.load(
        str(trained_shapes.weights), "trained", device="cpu", half=False, imgsz=IMGSZ
    )
    assert set(trained.names.values()) == set(SHAPE_LABELS)
    after = mean_iou(trained, trained_shapes.held_out)
    print(f"held-out mask IoU: untrained {before:.3f} -> trained {after:.3f}")
    # Held-out images are 192x128: letterboxed, so this also checks that masks land in place.
    assert after > 0.5, f"trained mask IoU {after:.2f}"
    assert after > before + 0.4, f"untrained {before:.2f} -> trained {after:.2f}"
