"""A YOLOv8n-seg trained once per session on synthetic shapes, through the real fit path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from labelstack_backend.formats.annotations import labeled_images
from labelstack_backend.formats.yolo import write_dataset
from labelstack_backend.labelconfig import parse_label_config
from labelstack_backend.training.fit import EpochProgress, FitResult, fit
from tests.support.synthetic import SHAPE_LABELS, SHAPES_CONFIG, Scene, scene

IMGSZ = 160
EPOCHS = 40


@dataclass
class TrainedShapes:
    result: FitResult
    progress: list[EpochProgress]
    train: list[Scene]
    held_out: list[Scene]

    @property
    def weights(self) -> Path:
        return self.result.weights


@pytest.fixture(scope="session")
def trained_shapes(tmp_path_factory: pytest.TempPathFactory) -> TrainedShapes:
    """48 annotated scenes -> Label Studio-style tasks -> the shared converter -> ultralytics fit."""
    work = tmp_path_factory.mktemp("shapes-model")
    rng = np.random.default_rng(0)
    train = [scene(rng) for _ in range(48)]
    held_out = [scene(rng) for _ in range(8)]
    tasks = [
        {
            "id": i,
            "data": {"image": f"synthetic://{i}"},
            "annotations": [{"id": i, "was_cancelled": False, "result": sc.polygon_regions()}],
        }
        for i, sc in enumerate(train)
    ]
    images = labeled_images(tasks, parse_label_config(SHAPES_CONFIG), SHAPE_LABELS)
    summary = write_dataset(
        images, SHAPE_LABELS, work / "ds", lambda v: (train[int(v.split("//")[1])].jpeg(), ".jpg")
    )
    assert summary.images == len(train)
    progress: list[EpochProgress] = []
    result = fit(
        summary.data_yaml,
        "yolov8n-seg.yaml",
        epochs=EPOCHS,
        imgsz=IMGSZ,
        batch=8,
        device="cpu",
        workdir=work / "runs",
        on_epoch=progress.append,
        extra={"lr0": 0.02, "mosaic": 0.0, "warmup_epochs": 0, "val": False},
    )
    return TrainedShapes(result, progress, train, held_out)
