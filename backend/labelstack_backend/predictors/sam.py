"""Interactive Segment Anything: Label Studio's smart keypoints and boxes -> masks.

A thin predictor over :mod:`labelstack_backend.sam`: ``/predict`` with
``params.context`` is a click (one task; prompts -> cached embedding -> mask ->
brush, and polygon when asked); without a context it caches the task image's
embedding, so that opening a task warms it for the first click (several tasks
at once are queued for a background thread instead of holding Label Studio). The webhook
action ``SAM_PRECOMPUTE`` caches a whole project in the background.
See docs/sam.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from labelstack_backend.coordination.blobcache import BlobCacheStats, RedisBlobCache
from labelstack_backend.errors import BadRequest, ImageError, NotReady
from labelstack_backend.images import ImageLoader
from labelstack_backend.labelconfig import Control, LabelConfig, task_image_value
from labelstack_backend.predictors.base import PredictCall
from labelstack_backend.protocol import WebhookEvent
from labelstack_backend.regions import Region, failed_prediction
from labelstack_backend.sam.answer import (
    check_sam_config,
    click_prediction,
    click_targets,
    object_regions,
    warm_prediction,
)
from labelstack_backend.sam.cache import SecondLevel
from labelstack_backend.sam.decode import decode
from labelstack_backend.sam.embeddings import Embedding, EmbeddingService, new_cache
from labelstack_backend.sam.model import SamModel, sam_weights
from labelstack_backend.sam.precompute import PRECOMPUTE_ACTION, Precomputer, Warmer
from labelstack_backend.sam.prompts import check_frame, parse_context
from labelstack_backend.sam.shared import SharedEmbeddings
from labelstack_backend.settings import Settings
from labelstack_common.labelstudio import LabelStudioClient

log = logging.getLogger(__name__)


class SamPredictor:
    name = "sam"
    interactive = True

    def __init__(
        self,
        settings: Settings,
        loader: ImageLoader,
        shared: RedisBlobCache | None = None,
    ) -> None:
        self.settings = settings
        self.loader = loader
        self.weights = sam_weights(settings)  # fails the boot when the weights cannot work
        self.shared = shared  # the replicas' shared embeddings (Redis), behind this process's LRU
        self.model: SamModel | None = None
        self.embeddings: EmbeddingService | None = None
        self.precomputer: Precomputer | None = None
        self.warmer: Warmer | None = None

    def load(self) -> None:
        self.use_model(SamModel.load(self.weights, self.settings))

    def use_model(self, model: SamModel) -> None:
        """Serve ``model``, with a fresh embedding cache (tests hand in their own models)."""
        second: SecondLevel[Embedding] | None = (
            SharedEmbeddings(self.shared, model.device) if self.shared is not None else None
        )
        cache = new_cache(self.settings.sam_cache_bytes, second)
        self.embeddings = EmbeddingService(model.encode, self.loader, cache, model.version)
        self.precomputer = Precomputer(self.embeddings, polygons=self.settings.sam_polygon)
        self.warmer = Warmer(self.embeddings)
        self.model = model

    def check_config(self, config: LabelConfig, project: str | None = None) -> None:
        check_sam_config(config, self.settings.sam_polygon)

    def model_version(self, project: str | None) -> str:
        return self.weights.version

    def versions(self, project: str | None) -> list[str]:
        return [self.weights.version]

    def _loaded(self) -> tuple[SamModel, EmbeddingService, Precomputer]:
        if self.model is None or self.embeddings is None or self.precomputer is None:
            raise NotReady("the SAM model is still loading; try again shortly")
        return self.model, self.embeddings, self.precomputer

    # -- /predict ------------------------------------------------------------
    def predict(self, call: PredictCall) -> list[dict[str, Any]]:
        controls = check_sam_config(call.config, self.settings.sam_polygon)
        if call.context is None:
            if len(call.tasks) == 1:  # a task was opened: its first click comes next
                return [self._warm(call.tasks[0], call, controls[0])]
            return [self._queue_warm(task, call, controls[0]) for task in call.tasks]
        if len(call.tasks) != 1:
            raise BadRequest(f"an interactive call segments one task, this one has {len(call.tasks)}")
        return [self._click(call.tasks[0], call, controls)]

    def _warm(self, task: Mapping[str, Any], call: PredictCall, control: Control) -> dict[str, Any]:
        _, embeddings, _ = self._loaded()
        try:
            embeddings.get(task_image_value(task, call.config, control), call.ls)
        except ImageError as exc:
            return failed_prediction(task.get("id"), exc.reason)
        return warm_prediction(self.weights.version)

    def _queue_warm(self, task: Mapping[str, Any], call: PredictCall, control: Control) -> dict[str, Any]:
        self._loaded()
        assert self.warmer is not None
        try:
            value = task_image_value(task, call.config, control)
        except ImageError as exc:
            return failed_prediction(task.get("id"), exc.reason)
        self.warmer.submit(value, call.ls)
        return warm_prediction(self.weights.version)

    def _click(
        self, task: Mapping[str, Any], call: PredictCall, controls: Sequence[Control]
    ) -> dict[str, Any]:
        model, embeddings, _ = self._loaded()
        assert call.context is not None
        started = time.perf_counter()
        ctx = parse_context(call.context)
        # Resolve every object's tags before any image work: a bad label fails fast.
        targets = {label: click_targets(controls, label, ctx.to_name) for label in ctx.object_labels()}
        first = next(iter(targets.values()))[0]
        value = task_image_value(task, call.config, first.control)
        embedding, source = embeddings.get(value, call.ls)
        height, width = embedding.original_size
        frame = ctx.frame or (width, height)
        try:
            check_frame(frame, width, height, self.settings.image_max_pixels)
        except ImageError:
            # The editor shows another shape than the cached copy: the object behind this URL
            # may have been replaced since it was cached. Fetch it once more before refusing.
            embedding, source = embeddings.get(value, call.ls, fresh=True)
            height, width = embedding.original_size
            check_frame(frame, width, height, self.settings.image_max_pixels)
        regions: list[Region] = []
        for obj in ctx.objects(*frame):
            result = decode(model, embedding, obj)
            regions.extend(object_regions(targets[obj.label], result, self.settings.polygon_tolerance))
        log.info(
            "click on task %s: %d prompt(s), embedding %s, %d region(s) in %.0f ms",
            task.get("id", "?"),
            len(ctx.prompts),
            source.value,
            len(regions),
            (time.perf_counter() - started) * 1000,
        )
        return click_prediction(regions, self.weights.version)

    # -- /webhook ------------------------------------------------------------
    def trained_projects(self) -> list[str]:
        return []  # SAM is not fine-tuned

    def shared_cache_stats(self) -> BlobCacheStats | None:
        return self.shared.stats() if self.shared is not None else None

    def webhook(self, event: WebhookEvent, ls: LabelStudioClient | None) -> tuple[int, dict[str, Any]] | None:
        if event.action != PRECOMPUTE_ACTION:
            return None
        if not event.project:
            raise BadRequest(f"{PRECOMPUTE_ACTION} needs a 'project' id")
        _, _, precomputer = self._loaded()
        started, progress = precomputer.start(event.project, ls)
        return (202 if started else 200), {
            "status": "started" if started else "running",
            "progress": progress.to_json(),
        }
