"""One loaded ultralytics YOLO-seg model, and where the base weights come from.

Weights come from ``LABELSTACK_SEG_WEIGHTS`` (a mounted volume, a PVC, a file
baked into the image). Without it, ultralytics' default name is used, which
downloads when online; offline that fails at start with a clear message,
unless ``LABELSTACK_DEMO_MODEL=1`` asks for a randomly initialised model built
from ``LABELSTACK_SEG_MODEL_CONFIG`` (for demos and tests; logged as a warning).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

from labelstack_backend import runtime
from labelstack_backend.errors import ModelLoadError
from labelstack_backend.geometry import Letterbox, unletterbox_mask
from labelstack_backend.regions import Detection
from labelstack_backend.registry.store import safe_name
from labelstack_backend.settings import Settings
from labelstack_common.contract import Env

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightsSource:
    kind: str  # "path", "default" (ultralytics name, may download) or "config" (random, demo)
    value: str
    name: str  # base model name used in versions, e.g. "yolov8n-seg"


def base_weights(settings: Settings) -> WeightsSource:
    """Decide where the base model comes from; raise :class:`ModelLoadError` early
    (at start, before any request) when it cannot work."""
    if settings.seg_weights:
        path = runtime.weights_file(settings.seg_weights, Env.SEG_WEIGHTS)
        return WeightsSource("path", str(path), safe_name(path.stem))
    if settings.demo_model:
        cfg = settings.seg_model_config
        return WeightsSource("config", cfg, safe_name(Path(cfg).stem) + "-random")
    default = settings.seg_default_weights
    if runtime.offline() and not Path(default).is_file():
        raise ModelLoadError(
            "no segmentation weights: LABELSTACK_SEG_WEIGHTS is not set and ultralytics cannot download "
            f"{default} offline (YOLO_OFFLINE is set). Point LABELSTACK_SEG_WEIGHTS at a .pt file, or set "
            "LABELSTACK_DEMO_MODEL=1 for a randomly initialised model (demos and tests only)"
        )
    return WeightsSource("default", default, safe_name(Path(default).stem))


def coco_names() -> dict[int, str]:
    """The 80 COCO class names ultralytics ships, which pre-trained YOLOv8-seg weights use."""
    from ultralytics.utils import ROOT

    data = yaml.safe_load((ROOT / "cfg" / "datasets" / "coco.yaml").read_text())
    return {int(k): str(v) for k, v in data["names"].items()}


class SegmentationModel:
    """One loaded YOLO-seg model. ``detect`` is serialised: ultralytics predictors are not thread-safe."""

    def __init__(self, yolo: Any, version: str, device: str, half: bool, imgsz: int) -> None:
        self.yolo = yolo
        self.version = version
        self.device = device
        self.half = half
        self.imgsz = imgsz
        self.names: dict[int, str] = dict(yolo.names)
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls, source: str, version: str, *, device: str, half: bool, imgsz: int, seed: int = 0
    ) -> SegmentationModel:
        runtime.prepare_ultralytics()
        import torch
        from ultralytics import YOLO

        started = time.monotonic()
        try:
            if source.endswith((".yaml", ".yml")):
                torch.manual_seed(seed)  # the same random demo model in every process
            yolo = YOLO(source, task="segment")
        except Exception as exc:
            raise ModelLoadError(
                f"could not load segmentation model {source}: {type(exc).__name__}: {exc}"
            ) from None
        if getattr(yolo, "task", "segment") != "segment":
            raise ModelLoadError(f"{source} is a {yolo.task} model, not a segmentation model")
        if source.endswith((".yaml", ".yml")):
            yolo.model.names = coco_names()  # a demo model predicts COCO's classes, at random
        model = cls(yolo, version, device, half, imgsz)
        model.detect([Image.new("RGB", (64, 48))], conf=0.99)  # warm up, and fail now rather than later
        log.info(
            "loaded %s (%s) on %s%s in %.1fs",
            version,
            source,
            device,
            " fp16" if half else "",
            time.monotonic() - started,
        )
        return model

    def detect(
        self, images: Sequence[Image.Image], *, conf: float, batch_size: int = 16, max_det: int = 300
    ) -> list[list[Detection]]:
        """Detections per image, in original image pixels; images go through in batches."""
        out: list[list[Detection]] = []
        for start in range(0, len(images), batch_size):
            chunk = list(images[start : start + batch_size])
            with self._lock:
                results = self.yolo.predict(
                    chunk,
                    imgsz=self.imgsz,
                    conf=conf,
                    max_det=max_det,
                    device=self.device,
                    quantize=16 if self.half else None,
                    verbose=False,
                    retina_masks=False,
                )
            out.extend(_detections(r) for r in results)
        return out


def _detections(result: Any) -> list[Detection]:
    if result.boxes is None or len(result.boxes) == 0:
        return []
    boxes = result.boxes.xyxy.float().cpu().numpy()
    scores = result.boxes.conf.float().cpu().numpy()
    classes = result.boxes.cls.int().cpu().numpy()
    orig_hw = tuple(int(v) for v in result.orig_shape)
    masks = result.masks.data.float().cpu().numpy() if result.masks is not None else None
    letterbox = Letterbox.of(orig_hw, masks.shape[1:]) if masks is not None else None  # type: ignore[arg-type]
    dets: list[Detection] = []
    for i in range(len(boxes)):
        box = tuple(float(v) for v in boxes[i])
        crop = None
        if masks is not None and letterbox is not None:
            crop = unletterbox_mask(masks[i], letterbox, box, orig_hw)  # type: ignore[arg-type]
            if not crop.crop.any():
                crop = None
        dets.append(Detection(int(classes[i]), float(scores[i]), box, crop))  # type: ignore[arg-type]
    return dets
