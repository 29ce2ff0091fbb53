"""A YOLOv8-seg built from its config whose scores are biased so that it finds a chosen
number of objects per image: the many-objects case of issue 21, made the same way on
every machine (a fixed seed, no weights to download)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

CONF = 0.25


def noise_images(n: int, width: int = 640, height: int = 480, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)) for _ in range(n)]


def _count(yolo: Any, images: list[Image.Image], imgsz: int) -> float:
    yolo.predictor = None  # its predictor holds a copy of the weights: make one from these
    results = yolo.predict(images, imgsz=imgsz, conf=CONF, verbose=False)
    return float(np.median([len(r.boxes) for r in results]))


def busy_model(
    path: Path,
    objects: int,
    *,
    imgsz: int = 640,
    seed: int = 0,
    config: str = "yolov8n-seg.yaml",
    calibration: list[Image.Image] | None = None,
) -> Path:
    """Write to ``path`` a model that finds about ``objects`` objects (class 0, COCO's
    person) per image of ``calibration`` (the median; two noise images by default) at
    confidence 0.25, and return ``path``."""
    from ultralytics import YOLO

    from labelstack_backend.yolo.model import coco_names

    torch.manual_seed(seed)
    yolo = YOLO(config, task="segment")
    yolo.model.names = coco_names()
    # PyTorch's default init shrinks the features layer after layer until every place of
    # every image scores the same; a variance-keeping init gives scores that differ.
    head = yolo.model.model[-1]
    for module in yolo.model.modules():
        if isinstance(module, torch.nn.Conv2d) and module is not head.dfl.conv:  # DFL's is fixed: 0..15
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    yolo.model.eval()
    finals = [branch[-1] for branch in head.cv3]  # the class-score convs, one per scale
    seen: list[list[torch.Tensor]] = [[] for _ in finals]
    hooks = [
        conv.register_forward_hook(lambda _m, _i, out, k=k: seen[k].append(out[:, 0].detach().flatten()))
        for k, conv in enumerate(finals)
    ]
    calibration = calibration or noise_images(2, seed=seed + 1)
    _count(yolo, calibration, imgsz)
    for hook in hooks:
        hook.remove()
    with torch.no_grad():
        # Class 0's logit becomes a standard score at every scale; the other classes never fire.
        for conv, logits in zip(finals, seen, strict=True):
            values = torch.cat(logits)
            mean, std = float(values.mean()), float(values.std())
            conv.weight[0] /= std
            conv.bias[0] = (conv.bias[0] - mean) / std
            conv.weight[1:] = 0.0
            conv.bias[1:] = -30.0
        base = [float(conv.bias[0]) for conv in finals]

        def shift(bias: float) -> None:
            for conv, b in zip(finals, base, strict=True):
                conv.bias[0] = b + bias

        lo, hi = -8.0, 8.0  # more bias, more objects: bisect for the count asked for
        for _ in range(12):
            mid = (lo + hi) / 2
            shift(mid)
            found = _count(yolo, calibration, imgsz)
            if abs(found - objects) <= max(1, objects // 20):
                break
            lo, hi = (mid, hi) if found < objects else (lo, mid)
    yolo.save(path)
    return path
