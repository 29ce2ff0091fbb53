"""The composition root: settings -> predictor -> service -> WSGI app.

gunicorn calls ``labelstack_backend.server.wsgi:create_app_from_env()`` in each worker after forking
(no ``--preload``: CUDA must not be initialised before a fork). A configuration
that cannot work (bad settings, weights missing offline) stops the worker at
boot with exit code 3, which makes gunicorn halt with the message in its log.
"""

from __future__ import annotations

import logging

from flask import Flask

from labelstack_backend.coordination.blobcache import RedisBlobCache
from labelstack_backend.coordination.link import coordination_link
from labelstack_backend.coordination.versions import VersionBus
from labelstack_backend.errors import ModelLoadError
from labelstack_backend.images import ImageLoader
from labelstack_backend.logsetup import configure_logging
from labelstack_backend.predictors.base import Predictor
from labelstack_backend.registry import open_registry
from labelstack_backend.server.app import create_app
from labelstack_backend.server.projects import project_store
from labelstack_backend.server.service import BackendService
from labelstack_backend.server.workers import WorkerBoard
from labelstack_backend.settings import Settings, SettingsError
from labelstack_backend.training.manager import TrainingManager
from labelstack_backend.training.serving import ServingControl
from labelstack_backend.training.stores import job_store
from labelstack_common.contract import PredictorKind

log = logging.getLogger("labelstack")

WORKER_BOOT_ERROR = 3


def build_service(settings: Settings) -> BackendService:
    """Wire the parts for ``settings``. Raises ModelLoadError for unusable weights."""
    settings.model_dir_resolved.mkdir(parents=True, exist_ok=True)
    loader = ImageLoader.from_settings(settings)
    # Scaled out: one Redis link per process for coordination and shared caches (docs/scaling.md).
    link = coordination_link(settings) if settings.redis_url else None
    predictor: Predictor
    trainer: TrainingManager | None = None
    serving: ServingControl | None = None
    if settings.predictor is PredictorKind.SAM:
        from labelstack_backend.predictors.sam import SamPredictor

        shared = (
            RedisBlobCache(link, "sam-embeddings", settings.sam_redis_bytes, settings.sam_redis_ttl)
            if link is not None and settings.sam_redis_bytes > 0
            else None
        )
        predictor = SamPredictor(settings, loader, shared)
    else:
        from labelstack_backend.predictors.segmentation import SegmentationPredictor

        bus = VersionBus(link) if link is not None else None
        registry = open_registry(settings)
        predictor = SegmentationPredictor(settings, registry, loader, bus)
        # A switch by hand is announced like a trained version, so every worker follows it.
        serving = ServingControl(registry, settings.keep_versions, bus.announce if bus else lambda p, v: None)
        trainer = TrainingManager(
            job_store(settings, link), train_every=settings.train_every, timeout=settings.train_timeout
        )
    if link is not None:
        link.start_monitor()
    # What /setup says must reach every worker (and replica): it lands on one of them only.
    projects = project_store(link)
    return BackendService(settings, predictor, trainer, link, WorkerBoard.from_env(), projects, serving)


def create_app_from_env() -> Flask:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        configure_logging()
        log.critical("%s", exc)
        raise SystemExit(WORKER_BOOT_ERROR) from None
    configure_logging(settings.log_level)
    try:
        service = build_service(settings)
    except ModelLoadError as exc:
        log.critical("cannot start the %s backend: %s", settings.predictor.value, exc.reason)
        raise SystemExit(WORKER_BOOT_ERROR) from None
    service.start_loading()
    service.start_recovery()  # a training its pod's end interrupted runs again
    log.info("%s backend starting; model loading in the background", settings.predictor.value)
    return create_app(service)
