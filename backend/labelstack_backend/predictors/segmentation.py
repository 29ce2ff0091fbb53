"""Instance segmentation: Label Studio tasks in, YOLO-seg predictions out (:mod:`labelstack_backend.yolo`
holds the model and its versions)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from PIL import Image

from labelstack_backend import tiling
from labelstack_backend.coordination.blobcache import BlobCacheStats
from labelstack_backend.coordination.versions import VersionBus
from labelstack_backend.errors import ImageError
from labelstack_backend.images import ImageLoader, LoadedImage
from labelstack_backend.labelconfig import (
    BRUSH,
    POLYGON,
    RECTANGLE,
    LabelConfig,
    Target,
    build_label_map,
    require_controls,
    task_image_value,
)
from labelstack_backend.predictors.base import PredictCall
from labelstack_backend.priority import PriorityGate
from labelstack_backend.protocol import WebhookEvent
from labelstack_backend.regions import Detection, detections_to_regions, failed_prediction, prediction
from labelstack_backend.registry.store import ModelStore
from labelstack_backend.settings import Settings
from labelstack_backend.yolo.model import SegmentationModel
from labelstack_backend.yolo.openvocab import TextEmbedder, ZeroShot, vocabulary
from labelstack_backend.yolo.versions import SegmentationModels, VersionFollower
from labelstack_common.contract import SegModel
from labelstack_common.labelstudio import LabelStudioClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Batch:
    """What every batch of one /predict shares."""

    call: PredictCall
    model: SegmentationModel
    label_map: dict[int, Target]
    conf: float
    deadline: float


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
        *,
        text: TextEmbedder | None = None,
    ) -> None:
        self.settings = settings
        # Zero-shot (LABELSTACK_SEG_MODEL=yoloe): the project's labels are the classes until it has
        # a fine-tuned version. Checked first: its missing file is the one to name.
        self.zero_shot = ZeroShot(settings, text=text) if settings.seg_model is not SegModel.YOLO else None
        self.models = SegmentationModels(settings, registry)
        self.registry = registry
        self.loader = loader
        # /predict calls share the model as before; bulk pre-labeling batches wait for them.
        self.gate = PriorityGate(exclusive=False)
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
        if self.zero_shot is not None:
            self.models.base = self.zero_shot.load()  # what serves a project without a version
        else:
            self.models.load_base()
        if self.follower is not None:
            self.follower.start()

    def check_config(self, config: LabelConfig, project: str | None = None) -> None:
        require_controls(config, self.control_types, "segmentation")
        names = vocabulary(config, self.control_types)
        if self.zero_shot is not None and self.zero_shot.base is not None and names:
            self.zero_shot.model_for(names, project)  # the label set's classes, ready at /setup

    def model_version(self, project: str | None) -> str:
        version = self.models.version_for(project)
        if self.zero_shot is not None and version == self.models.version_for(None):
            return self.zero_shot.version_for(project)  # no fine-tuned version: its label set's
        return version

    def versions(self, project: str | None) -> list[str]:
        # Label Studio 1.23 asks GET /versions without saying which project (its GET drops the
        # body), so without a project every project's versions are listed; names carry "-p<id>-".
        projects = [project] if project else self.registry.projects()
        trained = [v.name for p in projects for v in self.registry.versions(p)]
        base = self.zero_shot.version_for(project) if self.zero_shot else self.models.base_version()
        return [base, *trained]

    def trained_projects(self) -> list[str]:
        return self.registry.projects()

    def shared_cache_stats(self) -> BlobCacheStats | None:
        return None  # nothing shared but the versions

    def webhook(self, event: WebhookEvent, ls: LabelStudioClient | None) -> tuple[int, dict[str, Any]] | None:
        return None  # training events are the service's (its TrainingManager)

    def _detect(
        self, model: SegmentationModel, images: Sequence[LoadedImage], conf: float, background: bool = False
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
        with self.gate.hold(background):
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

    def _fetch_batch(self, batch: _Batch, chunk: Sequence[tuple[int, str]]) -> list[LoadedImage | ImageError]:
        return self.loader.load_many([v for _, v in chunk], batch.call.ls, deadline=batch.deadline)

    def _predict_batch(
        self,
        batch: _Batch,
        chunk: Sequence[tuple[int, str]],
        loaded: list[LoadedImage | ImageError],
        failures: dict[int, str],
    ) -> dict[int, dict[str, Any]]:
        """Predict one fetched batch of a request's images."""
        images: list[tuple[int, LoadedImage]] = []
        for (i, _), item in zip(chunk, loaded, strict=True):
            if isinstance(item, ImageError):
                failures[i] = item.reason
            else:
                images.append((i, item))
        found = self._detect(batch.model, [img for _, img in images], batch.conf, batch.call.background)
        out: dict[int, dict[str, Any]] = {}
        for (i, img), dets in zip(images, found, strict=True):
            regions = detections_to_regions(
                dets,
                batch.label_map,
                width=img.width,
                height=img.height,
                threshold=self.settings.score_threshold,
                tolerance=self.settings.polygon_tolerance,
                id_seed=f"{batch.model.version}:{batch.call.tasks[i].get('id', i)}",
            )
            out[i] = prediction(regions, batch.model.version)
        return out

    def predict(self, call: PredictCall) -> list[dict[str, Any]]:
        controls = require_controls(call.config, self.control_types, "segmentation")
        model = self.models.model_for(call.project)
        if self.zero_shot is not None and model is self.models.base:
            model = self.zero_shot.model_for(vocabulary(call.config, self.control_types), call.project)
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
        thresholds = [c.score_threshold for c in controls if c.score_threshold is not None]
        conf = min([self.settings.score_threshold, *thresholds])
        # One batch of images at a time, fetched, decoded, predicted and released: a worker's
        # memory grows with the batch size, not with the number of tasks in the request.
        deadline = time.monotonic() + self.settings.request_timeout
        step = self.settings.batch_for(model.device)
        batch = _Batch(call, model, label_map, conf, deadline)
        chunks = [wanted[start : start + step] for start in range(0, len(wanted), step)]
        by_task: dict[int, dict[str, Any]] = {}
        # The next batch downloads while this one is predicted: at most two are held at once.
        with ThreadPoolExecutor(1, thread_name_prefix="prefetch") as prefetch:
            pending = prefetch.submit(self._fetch_batch, batch, chunks[0]) if chunks else None
            for k, chunk in enumerate(chunks):
                assert pending is not None
                loaded = pending.result()
                nxt = chunks[k + 1] if k + 1 < len(chunks) else None
                pending = prefetch.submit(self._fetch_batch, batch, nxt) if nxt else None
                by_task.update(self._predict_batch(batch, chunk, loaded, failures))
                del loaded
        out: list[dict[str, Any]] = []
        for i, task in enumerate(call.tasks):
            if i in by_task:
                out.append(by_task[i])
            else:
                out.append(failed_prediction(task.get("id"), failures.get(i, "unknown error")))
        return out
