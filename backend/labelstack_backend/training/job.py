"""One fine-tuning job, run as its own process: ``python -m labelstack_backend.training.job PROJECT``.

A separate process keeps training off the web workers (a crash or an out-of-memory
kill cannot take a worker down) and lets it outlive the request that started it.
It waits for the training lock (one training at a time: per MODEL_DIR on one
machine, per project across replicas with Redis), fetches the project's
finished annotations, holds out a validation split (by task id), builds a YOLO-seg
dataset, trains, scores the new and the serving model on the held-out split, publishes
the new version, serves and announces it if ``LABELSTACK_PROMOTE`` says so, prunes old
versions and records every step in the shared job state. If another training was
asked for meanwhile (``pending``), it runs again once. A job that loses its lock (it
expired during a Redis outage and another replica took it) stops at the next epoch and
publishes nothing.

Exit codes: 0 done, 1 failed (the reason is in the job state), 2 bad arguments,
3 failed and the job state could not be written (MODEL_DIR full or read-only; the web
process's reaper records it). A write that fails on a full MODEL_DIR (the dataset, the
weights) fails the run with ``no space left on MODEL_DIR (<path>)``.
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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from labelstack_backend.coordination.link import RedisUnavailable, coordination_link
from labelstack_backend.coordination.versions import VersionBus
from labelstack_backend.diskspace import disk_reason_in
from labelstack_backend.errors import BackendError, InsufficientStorage, TrainingError
from labelstack_backend.formats.annotations import labeled_images
from labelstack_backend.formats.yolo import Fetch, write_dataset
from labelstack_backend.images import ImageLoader
from labelstack_backend.labelconfig import BRUSH, POLYGON, parse_label_config
from labelstack_backend.logsetup import configure_logging
from labelstack_backend.registry import ModelVersion, open_registry
from labelstack_backend.settings import Settings
from labelstack_backend.training.dataset import annotated_tasks, project_label_config
from labelstack_backend.training.evaluate import evaluate
from labelstack_backend.training.fit import EpochProgress, FitResult, fit
from labelstack_backend.training.promotion import decide
from labelstack_backend.training.serving import ServingControl
from labelstack_backend.training.state import JobState, JobStatus, JobStore, TrainingLease
from labelstack_backend.training.stores import job_store
from labelstack_backend.training.validation import Evaluation, Split, split_tasks
from labelstack_backend.yolo.model import base_weights
from labelstack_common.labelstudio import LabelStudioClient, LabelStudioError

log = logging.getLogger("labelstack.training")

HEARTBEAT_SECONDS = 10.0
# How long a job waits for an unreachable Redis before giving up (while queued or finishing).
REDIS_PATIENCE_SECONDS = 300.0
# Label Studio access for the job: the backend's own settings, or what /setup gave it.
ENV_LS_URL = "LABELSTACK_JOB_LS_URL"
ENV_LS_TOKEN = "LABELSTACK_JOB_LS_TOKEN"  # noqa: S105 - a variable name, not a secret
# The job failed and could not even write that into its state (see the module's docstring).
EXIT_UNRECORDED = 3


class LockLost(TrainingError):
    """Another job holds this project's training lock now: stop, publish nothing."""


class Heartbeat:
    """Keeps the lock and the job state fresh while the job runs, so that a job
    that died can be told from one that is slow.

    A state that Redis lost (it restarted empty, so it reads as idle) is written
    back as ``status``; a lock that another owner took sets :attr:`lost`.
    """

    def __init__(
        self,
        store: JobStore,
        project: str,
        status: JobStatus,
        lease: TrainingLease | None = None,
        interval: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.store = store
        self.project = project
        self.status = status
        self.lease = lease
        self.interval = interval
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def check(self) -> None:
        if self.lost.is_set():
            raise LockLost(
                "another replica took this project's training lock (it expired while Redis was "
                "unreachable); this run stopped without publishing"
            )

    def beat(self) -> None:
        if self.lease is not None:
            try:
                if not self.lease.renew():
                    log.error("lost the training lock of project %s to another job", self.project)
                    self.lost.set()
            except RedisUnavailable as exc:  # nobody can take it while Redis is down either
                log.warning("could not renew the training lock: %s", exc.reason)
        status = self.status
        try:
            # IDLE is what a state lost by Redis reads as; a finished state must stay finished.
            self.store.update(
                self.project, lambda s: replace(s, status=status) if s.status is JobStatus.IDLE else s
            )
        except Exception as exc:  # the store may be briefly unreachable
            log.warning("heartbeat failed: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()


def record(
    store: JobStore,
    project: str,
    change: Callable[[JobState], JobState],
    patience: float = REDIS_PATIENCE_SECONDS,
) -> JobState | None:
    """Write a step that must not be lost (queued, done, failed), waiting out a Redis outage."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return store.update(project, change)
        except RedisUnavailable as exc:
            if time.monotonic() > deadline:
                log.error("could not record the job state of project %s: %s", project, exc.reason)
                return None
            time.sleep(1.0)


def announce(settings: Settings, project: str, version: str) -> None:
    """Tell the other replicas now rather than at their next poll."""
    if not settings.redis_url:
        return
    link = coordination_link(settings)
    try:
        VersionBus(link).announce(project, version)
    finally:
        link.close()


def _label_studio(settings: Settings) -> LabelStudioClient:
    url = os.environ.get(ENV_LS_URL) or settings.label_studio_url
    token = os.environ.get(ENV_LS_TOKEN) or settings.label_studio_api_key
    if not url or not token:
        raise TrainingError(
            "training needs Label Studio access: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY on the backend"
        )
    return LabelStudioClient(url, token, timeout=60)


@dataclass(frozen=True)
class TrainingData:
    """What a training reads: the label config, the finished annotations, each task's image."""

    label_config: str
    tasks: Iterable[dict[str, Any]]
    fetch: Fetch


Source = Callable[[Settings, str], TrainingData]


def label_studio_source(settings: Settings, project: str) -> TrainingData:
    ls = _label_studio(settings)
    loader = ImageLoader.from_settings(settings)
    return TrainingData(
        project_label_config(ls, project), annotated_tasks(ls, project), lambda v: loader.dataset_bytes(v, ls)
    )


def train_once(
    settings: Settings,
    project: str,
    store: JobStore,
    still_ours: Callable[[], None] = lambda: None,
    source: Source = label_studio_source,
) -> JobState | None:
    """Fetch, convert, train, validate, publish (serving it if the policy says so). Raises on
    failure; the caller records it.

    ``still_ours`` raises when the training lock was lost; it is asked at every epoch and
    right before publishing."""
    registry = open_registry(settings)
    base = base_weights(settings)
    data = source(settings, project)
    config = parse_label_config(data.label_config)
    class_names = config.label_names((POLYGON, BRUSH))
    if not class_names:
        raise TrainingError("the project's label config has no PolygonLabels or BrushLabels labels to train")
    images = labeled_images(data.tasks, config, class_names)
    with_objects = sum(1 for img in images if img.objects)
    log.info("project %s: %d finished annotations, %d with objects", project, len(images), with_objects)
    if with_objects == 0:
        raise TrainingError("no finished annotation has a polygon or brush region to learn from")
    split = split_tasks([img.task_id for img in images], settings.val_fraction, settings.val_min)
    current = registry.current(project)
    base_name = base.name
    # What fine-tuning starts from: the serving version, else the base weights (a demo's config).
    start_from = str(current.path) if current else base.value
    extra = json.loads(settings.train_extra) if settings.train_extra else {}

    def on_epoch(p: EpochProgress) -> None:
        still_ours()
        try:
            store.update(project, lambda s: replace(s, epoch=p.epoch, epochs=p.epochs, loss=p.loss))
        except RedisUnavailable as exc:  # progress is best effort; the training goes on
            log.warning("could not record epoch %d: %s", p.epoch, exc.reason)

    with registry.scratch(project) as work:
        summary = write_dataset(images, class_names, work / "dataset", data.fetch, val_tasks=split.val)
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
        still_ours()
        candidate, serving = validate_both(
            settings, summary.data_yaml, class_names, split, result, current, work
        )
        decision = decide(settings.promote, candidate, serving, current.name if current else None)
        still_ours()
        version = registry.publish(
            project,
            result.weights,
            base=base_name,
            serve=False,
            meta={
                "started_from": start_from,
                "images": summary.images,
                "objects": summary.objects,
                "skipped": summary.skipped,
                "classes": list(class_names),
                "epochs": result.epochs,
                "imgsz": settings.train_imgsz,
                "metrics": result.metrics,
                "label_config_digest": config.digest,
                "annotations": [[i.task_id, i.annotation_id, i.updated_at] for i in images],
                "validation": {
                    "split": split.to_json(),
                    "candidate": candidate.to_json(),
                    "serving": {"version": current.name if current else None, **serving.to_json()},
                },
                "promotion": decision.to_json(),
            },
        )
    log.info(
        "project %s: published %s, %s: %s (validation: %s; serving %s: %s)",
        project,
        version.name,
        "promoted" if decision.promote else "kept, not promoted",
        decision.reason,
        candidate.scores.summary() if candidate.scores else candidate.note,
        current.name if current else "the base model",
        serving.scores.summary() if serving.scores else serving.note,
    )
    control = ServingControl(registry, settings.keep_versions, lambda p, v: announce(settings, p, v))
    if decision.promote:
        control.switch(project, version.name, "trained", decision.reason)
    control.prune(project)
    outcome = {"promoted": decision.promote, "promotion": decision.reason}
    return record(
        store,
        project,
        lambda s: replace(
            s,
            status=JobStatus.DONE,
            version=version.name,
            finished_at=time.time(),
            reason="",
            extra={**s.extra, **outcome},
        ),
    )


def validate_both(
    settings: Settings,
    data_yaml: Path,
    class_names: Sequence[str],
    split: Split,
    result: FitResult,
    current: ModelVersion | None,
    work: Path,
) -> tuple[Evaluation, Evaluation]:
    """The new model's and the serving model's scores on the same held-out split, at the size
    predictions are made (LABELSTACK_IMGSZ)."""
    if not split.val:
        note = f"too few finished annotations to hold out a validation split ({len(split.train)})"
        return Evaluation(None, note), Evaluation(None, note)
    held_out = sum(1 for _ in (data_yaml.parent / "images" / "val").iterdir())

    def score(weights: str) -> Evaluation:
        return evaluate(
            weights,
            data_yaml,
            class_names,
            images=held_out,
            imgsz=settings.imgsz,
            batch=settings.train_batch,
            device=settings.train_device,
            workdir=work / "val",
        )

    candidate = score(str(result.weights))
    serving = score(str(current.path)) if current else Evaluation(None, "no fine-tuned version serves yet")
    return candidate, serving


def wait_for_lock(settings: Settings, project: str, store: JobStore, owner: str) -> TrainingLease | None:
    """Wait our turn; None when the lock could not be asked for (Redis gone for too long)."""
    unreachable_since: float | None = None
    with Heartbeat(store, project, JobStatus.QUEUED):
        while True:
            try:
                lease = store.try_lock(project, owner, settings.train_lock_ttl)
                unreachable_since = None
            except RedisUnavailable as exc:
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since > REDIS_PATIENCE_SECONDS:
                    log.error("giving up on project %s: %s", project, exc.reason)
                    return None
                lease = None
            if lease is not None:
                return lease
            time.sleep(1.0)


def run(settings: Settings, project: str, store: JobStore) -> int:
    try:
        return _run(settings, project, store)
    except InsufficientStorage as exc:
        # Even the failure could not be recorded: the exit code tells the reaper to record it.
        log.error("training of project %s could not record its state: %s", project, exc.reason)
        return EXIT_UNRECORDED


def _run(settings: Settings, project: str, store: JobStore) -> int:
    owner = f"{socket.gethostname()}:{os.getpid()}"
    queued = record(
        store, project, lambda s: replace(s, status=JobStatus.QUEUED, extra={**s.extra, "owner": owner})
    )
    lease = wait_for_lock(settings, project, store, owner) if queued is not None else None
    if lease is None:
        return 1
    code = 0
    try:
        while True:
            record(
                store,
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
                with Heartbeat(store, project, JobStatus.RUNNING, lease) as heartbeat:
                    train_once(settings, project, store, heartbeat.check)
            except LockLost as exc:
                # The state is the new holder's now: say it in the log only.
                log.error("training of project %s stopped: %s", project, exc.reason)
                return 1
            except (BackendError, LabelStudioError) as exc:
                reason = exc.reason if isinstance(exc, BackendError) else str(exc)
                _fail(store, project, reason)
                code = 1
            except Exception as exc:
                # A full disk under a library's own error (ultralytics, torch.save) still says so.
                disk = disk_reason_in(exc, settings.model_dir_resolved)
                if disk is None:
                    log.exception("training of project %s crashed", project)
                _fail(store, project, disk or f"{type(exc).__name__}: {exc}")
                code = 1
            try:
                pending = store.get(project).pending
            except RedisUnavailable:
                pending = False  # asked-for runs are not lost: the next request starts one
            if not pending:
                return code
            log.info("project %s: more training was asked for while training; running again", project)
    finally:
        try:
            lease.release()
        except RedisUnavailable as exc:  # it expires by itself
            log.warning("could not release the training lock: %s", exc.reason)


def _fail(store: JobStore, project: str, reason: str) -> None:
    log.error("training of project %s failed: %s (the serving model is unchanged)", project, reason)
    record(
        store, project, lambda s: replace(s, status=JobStatus.FAILED, reason=reason, finished_at=time.time())
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labelstack_backend.training.job", description=__doc__)
    parser.add_argument("project", help="Label Studio project id")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    Path(settings.model_dir_resolved).mkdir(parents=True, exist_ok=True)
    link = coordination_link(settings) if settings.redis_url else None
    return run(settings, args.project, job_store(settings, link))


if __name__ == "__main__":
    sys.exit(main())
