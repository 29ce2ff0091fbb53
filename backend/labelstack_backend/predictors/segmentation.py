"""Instance segmentation with ultralytics YOLOv8-seg.

Weights come from ``LABELSTACK_SEG_WEIGHTS`` (a mounted volume, a PVC, a file
baked into the image). Without it, ultralytics' default name is used, which
downloads when online; offline that fails at start with a clear message,
unless ``LABELSTACK_DEMO_MODEL=1`` asks for a randomly initialised model built
from ``LABELSTACK_SEG_MODEL_CONFIG`` (for demos and tests; logged as a warning).

Each project may have fine-tuned versions in the model registry; the serving
version is re-read on every request (one ``stat``-sized read), and a new one is
loaded before it replaces the old, so a switch never fails a prediction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

from labelstack_backend import metrics, runtime, tiling
from labelstack_backend.coordination.versions import Announcement, VersionBus
from labelstack_backend.errors import ImageError, ModelLoadError
from labelstack_backend.geometry import Letterbox, unletterbox_mask
from labelstack_backend.images import ImageLoader, LoadedImage
from labelstack_backend.labelconfig import (
    BRUSH,
    POLYGON,
    RECTANGLE,
    LabelConfig,
    build_label_map,
    require_controls,
)
from labelstack_backend.predictors.base import PredictCall, task_image_value
from labelstack_backend.regions import Detection, detections_to_regions, failed_prediction, prediction
from labelstack_backend.registry import ModelStore, file_digest, safe_name
from labelstack_backend.settings import Settings

log = logging.getLogger(__name__)

MAX_LOADED_MODELS = 4
# A version that failed to load (missing, unreadable) is tried again after this long.
RETRY_FAILED_VERSION_SECONDS = 5.0


@dataclass(frozen=True)
class WeightsSource:
    kind: str  # "path", "default" (ultralytics name, may download) or "config" (random, demo)
    value: str
    name: str  # base model name used in versions, e.g. "yolov8n-seg"


def base_weights(settings: Settings) -> WeightsSource:
    """Decide where the base model comes from; raise :class:`ModelLoadError` early
    (at start, before any request) when it cannot work."""
    if settings.seg_weights:
        path = Path(settings.seg_weights).expanduser()
        if not path.is_file():
            raise ModelLoadError(
                f"LABELSTACK_SEG_WEIGHTS={settings.seg_weights} does not exist or is not a file; mount the "
                "weights volume or fix the path"
            )
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


class SegmentationModels:
    """The base model plus each project's fine-tuned versions, loaded on demand.

    Which version serves a project is decided here, and only switched once the
    new model is loaded, so a switch never fails or stalls a prediction:

    * one replica with models under MODEL_DIR: every request reads the
      registry's ``current`` file (a local read of a few bytes);
    * scaled out (Redis, or models in ``gs://``): requests use what this process
      serves, and :class:`VersionFollower` switches it when a new version is
      announced, or when a poll finds the pointer moved (a missed announcement).
    """

    def __init__(self, settings: Settings, registry: ModelStore) -> None:
        self.settings = settings
        self.registry = registry
        self.source = base_weights(settings)
        self.device = runtime.resolve_device(settings.device)
        self.half = runtime.use_half(self.device, settings.half)
        self.base: SegmentationModel | None = None
        self.per_request = registry.local_pointer and not settings.redis_url
        self._serving: dict[str, str] = {}  # project -> fine-tuned version served ("": the base model)
        self._seen: dict[str, str] = {}  # project -> the registry's pointer as last switched to
        self._failed: dict[str, float] = {}  # version -> when it last failed to load
        self._loaded: OrderedDict[str, SegmentationModel] = OrderedDict()
        self._lock = threading.Lock()
        self._load_locks: dict[str, threading.Lock] = {}

    def base_version(self) -> str:
        if self.source.kind == "config":
            return self.source.name
        path = Path(self.source.value)
        digest = file_digest(path) if path.is_file() else "default"
        return f"{self.source.name}-{digest}"

    def load_base(self) -> SegmentationModel:
        source = self.source.value
        model = SegmentationModel.load(
            source, "", device=self.device, half=self.half, imgsz=self.settings.imgsz
        )
        ckpt = getattr(model.yolo, "ckpt_path", None)  # where a downloaded default landed
        if self.source.kind == "default" and ckpt:
            self.source = WeightsSource("path", str(ckpt), self.source.name)
        model.version = self.base_version()
        self.base = model
        return model

    def base_weights_path(self) -> str:
        """What fine-tuning starts from: the base weights, or its config for a demo model."""
        return self.source.value

    # -- which version serves ----------------------------------------------------
    def serving_projects(self) -> list[str]:
        with self._lock:
            return sorted(self._serving)

    def version_for(self, project: str | None) -> str:
        """The version a prediction for ``project`` carries (answered without loading a model)."""
        if project:
            name = None if self.per_request else self._serving.get(project)
            if name is None:
                name = self.registry.current_name(project) or ""
            if name:
                return name
        if self.base is None:
            return self.base_version()
        return self.base.version

    def _serving_name(self, project: str) -> str:
        if self.per_request or project not in self._serving:
            self.observe(project, self.registry.current_name(project) or "")
        return self._serving.get(project, "")

    def observe(self, project: str, name: str, *, published_at: float | None = None) -> bool:
        """The registry points ``project`` at ``name`` (a request, a poll, an announcement): load it,
        then serve it. The old version serves meanwhile; a version that cannot be loaded is
        logged and not switched to, and is tried again at the next observation."""
        with self._lock:
            if self._seen.get(project) == name and project in self._serving:
                return False
            failed_at = self._failed.get(name)
        if failed_at is not None and time.monotonic() - failed_at < RETRY_FAILED_VERSION_SECONDS:
            return False
        try:
            loaded = not name or self._model(project, name) is not None
        except Exception as exc:  # unreadable weights: keep serving what works
            reason = exc.reason if isinstance(exc, ModelLoadError) else f"{type(exc).__name__}: {exc}"
            log.error("project %s: not switching to %s: %s", project, name, reason)
            loaded = False
        if not loaded:
            with self._lock:
                self._failed[name] = time.monotonic()  # not on every request
            return False
        with self._lock:
            old = self._serving.get(project)
            self._serving[project] = name
            self._seen[project] = name
        if old is not None and old != name:
            waited = f" {time.time() - published_at:.2f} s after its publication" if published_at else ""
            if published_at:
                metrics.MODEL_SWITCH_SECONDS.observe(max(0.0, time.time() - published_at))
            log.info(
                "project %s now serves %s (was %s)%s",
                project,
                name or "the base model",
                old or "base",
                waited,
            )
        return old != name

    def resync(self) -> None:
        """Re-read the pointer of every project this process serves (for missed announcements)."""
        for project in self.serving_projects():
            try:
                name = self.registry.current_name(project) or ""
            except Exception as exc:  # the store may be briefly unreachable; the next poll tries again
                log.warning("could not read the serving version of project %s: %s", project, exc)
                continue
            with self._lock:
                if self._seen.get(project) == name:
                    continue
            self.observe(project, name)

    def model_for(self, project: str | None) -> SegmentationModel:
        base = self.base
        if base is None:
            raise ModelLoadError("the segmentation model is not loaded yet")
        name = self._serving_name(project) if project else ""
        if not name:
            return base
        return self._model(project or "", name) or base

    def _model(self, project: str, name: str) -> SegmentationModel | None:
        """Version ``name``, loaded once per process even when requests race; None if it is missing."""
        with self._lock:
            model = self._loaded.get(name)
            if model is not None:
                self._loaded.move_to_end(name)
                return model
            load_lock = self._load_locks.setdefault(name, threading.Lock())
        with load_lock:
            with self._lock:
                if name in self._loaded:
                    return self._loaded[name]
            version = self.registry.get(project, name)
            if version is None:
                log.error("project %s points at missing version %s; not switching to it", project, name)
                return None
            model = SegmentationModel.load(
                str(version.path), name, device=self.device, half=self.half, imgsz=self.settings.imgsz
            )
            with self._lock:
                self._loaded[name] = model
                while len(self._loaded) > MAX_LOADED_MODELS:
                    self._loaded.popitem(last=False)
            return model


class VersionFollower:
    """Keeps a scaled-out process on the current versions: announcements through Redis switch it
    within about a model load; a poll every ``LABELSTACK_VERSION_POLL_SECONDS`` catches what
    was missed (Redis down, a reconnect), and so bounds the switch time without Redis."""

    def __init__(self, models: SegmentationModels, bus: VersionBus | None, poll_seconds: float) -> None:
        self.models = models
        self.bus = bus
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        targets: list[tuple[str, Any]] = [("version-poll", self._poll)]
        if self.bus is not None:
            targets.append(("version-listen", self._listen))
        for name, target in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()

    def _announced(self, announcement: Announcement) -> None:
        self.models.observe(
            announcement.project, announcement.version, published_at=announcement.published_at
        )

    def _listen(self) -> None:
        assert self.bus is not None
        self.bus.listen(self._announced, self.models.resync, self._stop)

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.models.resync()


class SegmentationPredictor:
    """Tasks in, Label Studio predictions out, for every task of the request at once."""

    name = "segmentation"
    interactive = False
    control_types = (POLYGON, BRUSH, RECTANGLE)

    def __init__(
        self,
        settings: Settings,
        registry: ModelStore,
        loader: ImageLoader,
        bus: VersionBus | None = None,
    ) -> None:
        self.settings = settings
        self.models = SegmentationModels(settings, registry)
        self.registry = registry
        self.loader = loader
        self.follower = (
            None
            if self.models.per_request
            else VersionFollower(self.models, bus, settings.version_poll_seconds)
        )
        self.tiling = (
            tiling.TilingOptions(
                settings.tile_size, settings.tile_overlap, settings.tile_min_size, settings.tile_full_pass
            )
            if settings.tiling
            else None
        )

    def load(self) -> None:
        self.models.load_base()
        if self.follower is not None:
            self.follower.start()

    def check_config(self, config: LabelConfig) -> None:
        require_controls(config, self.control_types, "segmentation")

    def model_version(self, project: str | None) -> str:
        return self.models.version_for(project)

    def versions(self, project: str | None) -> list[str]:
        # Label Studio 1.23 asks GET /versions without saying which project (its GET drops the
        # body), so without a project every project's versions are listed; names carry "-p<id>-".
        projects = [project] if project else self.registry.projects()
        trained = [v.name for p in projects for v in self.registry.versions(p)]
        return [self.models.base_version(), *trained]

    def _detect(
        self, model: SegmentationModel, images: Sequence[LoadedImage], conf: float
    ) -> list[list[Detection]]:
        """Detections per image. Large images go through in tiles; every tile and image of
        the request shares the same batches."""
        opts = self.tiling
        inputs: list[Image.Image] = []
        sources: list[tuple[int, tiling.Window]] = []
        for j, img in enumerate(images):
            whole = (0, 0, img.width, img.height)
            if opts is not None and opts.applies(img.width, img.height):
                for win in tiling.tile_windows(img.width, img.height, opts.tile, opts.overlap):
                    inputs.append(img.image.crop(win))
                    sources.append((j, win))
                if not opts.full_pass:
                    continue
            inputs.append(img.image)
            sources.append((j, whole))
        found = model.detect(
            inputs,
            conf=conf,
            batch_size=self.settings.batch_for(model.device),
            max_det=self.settings.max_detections,
        )
        seen: list[list[tiling.Seen]] = [[] for _ in images]
        for (j, win), dets in zip(sources, found, strict=True):
            seen[j].extend(tiling.to_image(d, win, images[j].width, images[j].height) for d in dets)
        return [
            tiling.merge(s)
            if opts is not None and opts.applies(img.width, img.height)
            else [x.detection for x in s]
            for s, img in zip(seen, images, strict=True)
        ]

    def predict(self, call: PredictCall) -> list[dict[str, Any]]:
        controls = require_controls(call.config, self.control_types, "segmentation")
        model = self.models.model_for(call.project)
        label_map = build_label_map(controls, model.names)
        if not label_map:
            log.warning(
                "no class of %s matches a label of the config (%s); add predicted_values aliases",
                model.version,
                ", ".join(call.config.label_names(self.control_types)),
            )
        # One image object per request: the one the first fillable control points at.
        control = controls[0]
        values: list[str | None] = []
        failures: dict[int, str] = {}
        for i, task in enumerate(call.tasks):
            try:
                values.append(task_image_value(task, call.config, control))
            except ImageError as exc:
                values.append(None)
                failures[i] = exc.reason
        wanted = [(i, v) for i, v in enumerate(values) if v is not None]
        loaded = self.loader.load_many([v for _, v in wanted], call.ls)
        images: list[tuple[int, LoadedImage]] = []
        for (i, _), item in zip(wanted, loaded, strict=True):
            if isinstance(item, ImageError):
                failures[i] = item.reason
            else:
                images.append((i, item))
        thresholds = [c.score_threshold for c in controls if c.score_threshold is not None]
        conf = min([self.settings.score_threshold, *thresholds])
        found = self._detect(model, [img for _, img in images], conf)
        by_task: dict[int, dict[str, Any]] = {}
        for (i, img), dets in zip(images, found, strict=True):
            regions = detections_to_regions(
                dets,
                label_map,
                width=img.width,
                height=img.height,
                threshold=self.settings.score_threshold,
                tolerance=self.settings.polygon_tolerance,
                id_seed=f"{model.version}:{call.tasks[i].get('id', i)}",
            )
            by_task[i] = prediction(regions, model.version)
        out: list[dict[str, Any]] = []
        for i, task in enumerate(call.tasks):
            if i in by_task:
                out.append(by_task[i])
            else:
                out.append(failed_prediction(task.get("id"), failures.get(i, "unknown error")))
        return out
