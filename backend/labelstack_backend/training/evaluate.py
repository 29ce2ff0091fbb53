"""A model's scores on the held-out split, with ultralytics' own validator on the dataset folder
the trainer writes (the same images, labels and matching rules as ultralytics' training metrics)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labelstack_backend import runtime
from labelstack_backend.training.validation import Evaluation, Scores

log = logging.getLogger(__name__)


def evaluate(
    weights: str,
    data_yaml: Path,
    class_names: Sequence[str],
    *,
    images: int,
    imgsz: int,
    batch: int,
    device: str,
    workdir: Path,
) -> Evaluation:
    """Mask and box mAP of ``weights`` on the dataset's ``val`` split. A model whose classes are
    not the dataset's (the base model, a version from before a label change) gets a note instead:
    its class indices would mean other labels."""
    runtime.prepare_ultralytics()
    from ultralytics import YOLO

    model = YOLO(weights, task="segment")
    names = [str(n) for _, n in sorted(dict(model.names).items())]
    if names != list(class_names):
        return Evaluation(None, f"its classes {names[:5]} are not the project's {list(class_names)}")
    device = runtime.resolve_device(device)
    try:
        metrics: Any = model.val(
            data=str(data_yaml),
            split="val",
            imgsz=imgsz,
            batch=batch,
            device="cpu" if device == "cpu" else device.removeprefix("cuda:"),
            project=str(workdir),
            name="val",
            exist_ok=True,
            plots=False,
            verbose=False,
            save_json=False,
            workers=0,
            half=False,
        )
    except Exception as exc:  # a model that cannot be validated is not promoted on a guess
        log.warning("validating %s failed: %s: %s", weights, type(exc).__name__, exc)
        return Evaluation(None, f"validation failed: {type(exc).__name__}: {exc}")
    return Evaluation(
        Scores(
            mask_map50=float(metrics.seg.map50),
            mask_map50_95=float(metrics.seg.map),
            box_map50=float(metrics.box.map50),
            box_map50_95=float(metrics.box.map),
            images=images,
        )
    )
