"""One fine-tuning job, run as its own process: ``python -m labelstack_backend.training.job PROJECT``.

A separate process keeps training off the web workers (a crash or an out-of-memory
kill cannot take a worker down) and lets it outlive the request that started it.
It waits for the backend-wide training lock (one training at a time), fetches the
project's finished annotations, builds a YOLO-seg dataset, trains, publishes the
new version and records every step in the shared job state. If another training
was asked for meanwhile (``pending``), it runs again once.

Exit codes: 0 done, 1 failed (the reason is in the job state), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from labelstack_backend.errors import BackendError, TrainingError
from labelstack_backend.formats.annotations import labeled_images
from labelstack_backend.formats.yolo import write_dataset
from labelstack_backend.imagecache import DiskCache
from labelstack_backend.images import ImageLoader
from labelstack_backend.labelconfig import BRUSH, POLYGON, parse_label_config
from labelstack_backend.logsetup import configure_logging
from labelstack_backend.predictors.segmentation import SegmentationModels
from labelstack_backend.registry import ModelRegistry
from labelstack_backend.settings import Settings
from labelstack_backend.training.dataset import annotated_tasks, project_label_config
from labelstack_backend.training.fit import EpochProgress, fit
from labelstack_backend.training.state import JobState, JobStatus, JobStore, TrainingLease
from labelstack_backend.training.stores import job_store
from labelstack_operator.labelstudio import LabelStudioClient, LabelStudioError

log = logging.getLogger("labelstack.training")

HEARTBEAT_SECONDS = 10.0
LOCK_TTL_SECONDS = 60.0
# Label Studio access for the job: the backend's own settings, or what /setup gave it.
ENV_LS_URL = "LABELSTACK_JOB_LS_URL"
ENV_LS_TOKEN = "LABELSTACK_JOB_LS_TOKEN"  # noqa: S105 - a variable name, not a secret


class Heartbeat:
    """Keeps the lock and the job state fresh while the job runs, so that a job
    that died can be told from one that is slow."""

    def __init__(self, store: JobStore, project: str, lease: TrainingLease | None = None) -> None:
        self.store = store
        self.project = project
        self.lease = lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            if self.lease is not None and not self.lease.renew():
                log.error("lost the training lock; another replica may start training")
            try:
                self.store.update(self.project, lambda s: s)
            except Exception as exc:  # the store may be briefly unreachable
                log.warning("heartbeat failed: %s", exc)


def _label_studio(settings: Settings) -> LabelStudioClient:
    url = os.environ.get(ENV_LS_URL) or settings.label_studio_url
    token = os.environ.get(ENV_LS_TOKEN) or settings.label_studio_api_key
    if not url or not token:
        raise TrainingError(
            "training needs Label Studio access: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY on the backend"
        )
    return LabelStudioClient(url, token, timeout=60)


def train_once(settings: Settings, project: str, store: JobStore) -> JobState:
    """Fetch, convert, train, publish. Raises on failure; the caller records it."""
    registry = ModelRegistry(settings.model_dir_resolved)
    models = SegmentationModels(settings, registry)
    ls = _label_studio(settings)
    config = parse_label_config(project_label_config(ls, project))
    class_names = config.label_names((POLYGON, BRUSH))
    if not class_names:
        raise TrainingError("the project's label config has no PolygonLabels or BrushLabels labels to train")
    images = labeled_images(annotated_tasks(ls, project), config, class_names)
    with_objects = sum(1 for img in images if img.objects)
    log.info("project %s: %d finished annotations, %d with objects", project, len(images), with_objects)
    if with_objects == 0:
        raise TrainingError("no finished annotation has a polygon or brush region to learn from")
    current = registry.current(project)
    base_name = models.source.name
    start_from = str(current.path) if current else models.base_weights_path()
    cache = DiskCache(settings.image_cache_path, settings.image_cache_bytes)
    loader = ImageLoader(
        max_pixels=settings.image_max_pixels,
        max_bytes=settings.image_max_bytes,
        timeout=settings.image_timeout,
        cache=cache,
    )
    extra = json.loads(settings.train_extra) if settings.train_extra else {}

    def on_epoch(p: EpochProgress) -> None:
        store.update(project, lambda s: replace(s, epoch=p.epoch, epochs=p.epochs, loss=p.loss))

    with registry.scratch(project) as work:
        summary = write_dataset(images, class_names, work / "dataset", lambda v: loader.dataset_bytes(v, ls))
        if summary.images == 0:
            raise TrainingError("no training image could be loaded: " + "; ".join(summary.skipped[:3]))
        result = fit(
            summary.data_yaml,
            start_from,
            epochs=settings.train_epochs,
            imgsz=settings.train_imgsz,
            batch=settings.train_batch,
            device=settings.train_device,
            workdir=work / "runs",
            on_epoch=on_epoch,
            extra=extra,
        )
        version = registry.publish(
            project,
            result.weights,
            base=base_name,
            meta={
                "started_from": start_from,
                "images": summary.images,
                "objects": summary.objects,
                "skipped": summary.skipped,
                "classes": list(class_names),
                "epochs": result.epochs,
                "metrics": result.metrics,
                "label_config_digest": config.digest,
                "annotations": [[i.task_id, i.annotation_id, i.updated_at] for i in images],
            },
        )
    log.info("project %s: published %s", project, version.name)
    return store.update(
        project,
        lambda s: replace(s, status=JobStatus.DONE, version=version.name, finished_at=time.time(), reason=""),
    )


def run(settings: Settings, project: str, store: JobStore) -> int:
    owner = f"{socket.gethostname()}:{os.getpid()}"
    store.update(project, lambda s: replace(s, status=JobStatus.QUEUED, extra={**s.extra, "owner": owner}))
    lease = None
    with Heartbeat(store, project):
        while lease is None:  # one training at a time: wait our turn
            lease = store.try_lock(owner, LOCK_TTL_SECONDS)
            if lease is None:
                time.sleep(1.0)
    code = 0
    try:
        while True:
            store.update(
                project,
                lambda s: replace(
                    s,
                    status=JobStatus.RUNNING,
                    epoch=0,
                    epochs=settings.train_epochs,
                    loss=None,
                    started_at=time.time(),
                    finished_at=0.0,
                    pending=False,
                    runs=s.runs + 1,
                    new_annotations=0,
                ),
            )
            try:
                with Heartbeat(store, project, lease):
                    train_once(settings, project, store)
            except (BackendError, LabelStudioError) as exc:
                reason = exc.reason if isinstance(exc, BackendError) else str(exc)
                _fail(store, project, reason)
                code = 1
            except Exception as exc:
                log.exception("training of project %s crashed", project)
                _fail(store, project, f"{type(exc).__name__}: {exc}")
                code = 1
            if not store.get(project).pending:
                return code
            log.info("project %s: more training was asked for while training; running again", project)
    finally:
        lease.release()


def _fail(store: JobStore, project: str, reason: str) -> None:
    log.error("training of project %s failed: %s (the serving model is unchanged)", project, reason)
    store.update(
        project, lambda s: replace(s, status=JobStatus.FAILED, reason=reason, finished_at=time.time())
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labelstack_backend.training.job", description=__doc__)
    parser.add_argument("project", help="Label Studio project id")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    Path(settings.model_dir_resolved).mkdir(parents=True, exist_ok=True)
    return run(settings, args.project, job_store(settings))


if __name__ == "__main__":
    sys.exit(main())
