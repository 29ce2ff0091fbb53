"""One loaded ultralytics YOLO-seg model, and where the base weights come from.

Weights come from ``LABELSTACK_SEG_WEIGHTS`` (a mounted volume, a PVC, a file
baked into the image). Without it, ultralytics' default name is used, which
downloads when online; offline that fails at start with a clear message,
unless ``LABELSTACK_DEMO_MODEL=1`` asks for a randomly initialised model built
from ``LABELSTACK_SEG_MODEL_CONFIG`` (for demos and tests; logged as a warning).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import yaml
from PIL import Image

from labelstack_backend import runtime
from labelstack_backend.errors import ModelLoadError
from labelstack_backend.geometry import MaskGrid, fitted_size, instance_mask
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
        self.runtime = "torch"  # or the exported runtime serving it (yolo/export.py)
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

    def serve_from(self, exported: SegmentationModel, runtime: str) -> None:
        """From the next batch on, predict through ``exported`` (the same weights, exported)."""
        with self._lock:
            self.yolo = exported.yolo
            self.runtime = runtime

    def detect(
        self, images: Sequence[Image.Image], *, conf: float, batch_size: int = 16, max_det: int = 300
    ) -> list[list[Detection]]:
        """Detections per image, in original image pixels.

        Images go through grouped by the size they are scaled to, so that every forward
        pass holds one input shape: ultralytics pads a batch of mixed sizes to a square,
        and an image would get a different answer in a mixed batch than alone.
        """
        fitted = [fitted_size((im.height, im.width), self.imgsz) for im in images]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, size in enumerate(fitted):
            groups.setdefault(size, []).append(i)
        out: list[list[Detection]] = [[] for _ in images]
        for members in groups.values():
            for start in range(0, len(members), batch_size):
                chunk = members[start : start + batch_size]
                raws = self.forward(
                    [scaled_bgr(images[i], fitted[i]) for i in chunk], conf=conf, max_det=max_det
                )
                for i, raw in zip(chunk, raws, strict=True):
                    out[i] = raw_detections(raw, (images[i].height, images[i].width))
        return out

    def forward(
        self, arrays: Sequence[npt.NDArray[np.uint8]], *, conf: float, max_det: int
    ) -> list[RawOutput]:
        """Letterbox padding, the forward pass and NMS for images already scaled, all to one size."""
        with self._lock:
            raws: list[RawOutput] = self.yolo.predict(
                list(arrays),
                imgsz=self.imgsz,
                conf=conf,
                max_det=max_det,
                device=self.device,
                quantize=16 if self.half else None,
                verbose=False,
                predictor=_raw_predictor(),
            )
        return raws


def scaled_bgr(image: Image.Image, size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """The image as ultralytics' letterbox scales it (BGR, bilinear), before the padding."""
    bgr: npt.NDArray[np.uint8] = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
    h, w = size
    if bgr.shape[:2] != (h, w):
        bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.uint8, copy=False)
    return bgr


@dataclass
class RawOutput:
    """One image's NMS rows (box in input pixels, score, class, mask coefficients) and prototypes."""

    pred: Any  # torch.Tensor (N, 6 + masks)
    proto: Any  # torch.Tensor (masks, mh, mw)
    input_hw: tuple[int, int]
    speed: dict[str, float] = field(default_factory=dict)  # ultralytics writes its timings here


@functools.cache
def _raw_predictor() -> type[Any]:
    from ultralytics.models.yolo.segment import SegmentationPredictor

    class RawPredictor(SegmentationPredictor):  # type: ignore[misc]
        """ultralytics' predictor up to NMS: it would upsample every mask to the whole
        input; :func:`raw_detections` makes each one in its box only."""

        def construct_result(
            self, pred: Any, img: Any, orig_img: Any, img_path: Any, proto: Any
        ) -> RawOutput:
            return RawOutput(pred, proto, (int(img.shape[2]), int(img.shape[3])))

    return RawPredictor


def raw_detections(raw: RawOutput, orig_hw: tuple[int, int]) -> list[Detection]:
    """Detections in original image pixels from one image's raw output; those whose
    mask is empty at input resolution are dropped, as ultralytics does."""
    from ultralytics.utils import ops

    pred = raw.pred
    if pred.shape[0] == 0:
        return []
    c, mh, mw = raw.proto.shape
    # The logits at mask resolution, computed as ultralytics' process_mask does.
    logits = (pred[:, 6:] @ raw.proto.float().view(c, -1)).view(-1, mh, mw).cpu().numpy()
    boxes_in = pred[:, :4].float().cpu().numpy()
    boxes = ops.scale_boxes(raw.input_hw, pred[:, :4].clone(), orig_hw).float().cpu().numpy()
    scores = pred[:, 4].float().cpu().numpy()
    classes = pred[:, 5].int().cpu().numpy()
    grid = MaskGrid.of((mh, mw), raw.input_hw, orig_hw)
    dets: list[Detection] = []
    for i in range(len(boxes)):
        box = (float(boxes[i, 0]), float(boxes[i, 1]), float(boxes[i, 2]), float(boxes[i, 3]))
        mask = instance_mask(logits[i], boxes_in[i], box, grid)
        if mask is None:
            continue
        dets.append(Detection(int(classes[i]), float(scores[i]), box, mask if mask.crop.any() else None))
    return dets
