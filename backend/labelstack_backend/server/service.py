"""The backend's behaviour behind the HTTP routes, free of Flask.

One :class:`BackendService` per process. It loads the model in the background
(so ``/health`` answers at once and tells the truth while loading), remembers
what ``/setup`` said about each project (in a store every worker shares:
:mod:`.projects`), and routes predictions, webhooks and version queries to the
predictor and the training manager.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from labelstack_backend import metrics
from labelstack_backend.coordination.link import OFF, LinkStatus, RedisLink, RedisUnavailable
from labelstack_backend.errors import (
    BadRequest,
    InsufficientStorage,
    ModelLoadError,
    NotReady,
    TooManyTasks,
    UnknownProject,
)
from labelstack_backend.labelconfig import LabelConfig, parse_label_config
from labelstack_backend.predictors.base import PredictCall, Predictor
from labelstack_backend.prelabel.job import JobParts
from labelstack_backend.prelabel.progress import Progress
from labelstack_backend.prelabel.runner import Prelabeler
from labelstack_backend.prelabel.store import open_store
from labelstack_backend.protocol import (
    ANNOTATION_ACTIONS,
    PRELABEL_ACTION,
    TRAIN_ACTIONS,
    PredictRequest,
    SetupRequest,
    WebhookEvent,
    project_id,
)
from labelstack_backend.runtime import resolve_device
from labelstack_backend.server.projects import MemoryProjectStore, ProjectInfo, ProjectStore
from labelstack_backend.server.workers import WorkerBoard
from labelstack_backend.settings import Settings
from labelstack_backend.training.job import HEARTBEAT_SECONDS
from labelstack_backend.training.manager import TrainingManager
from labelstack_backend.training.serving import ServingControl
from labelstack_backend.training.state import JobState, JobStatus
from labelstack_common.contract import Env
from labelstack_common.labelstudio import LabelStudioClient

log = logging.getLogger(__name__)


class ModelState(enum.StrEnum):
    LOADING = "LOADING"
    READY = "UP"
    FAILED = "FAILED"


class BackendService:
    def __init__(
        self,
        settings: Settings,
        predictor: Predictor,
        trainer: TrainingManager | None = None,
        link: RedisLink | None = None,
        board: WorkerBoard | None = None,
        projects: ProjectStore | None = None,
        serving: ServingControl | None = None,
    ) -> None:
        self.settings = settings
        self.serving = serving  # promote, roll back, retention (a backend that trains)
        self.predictor = predictor
        self.trainer = trainer
        self.link = link
        self.board = board
        self.state = ModelState.LOADING
        self.reason = ""
        self.started_at = time.time()
        # Shared by the workers (and, with Redis, the replicas): /setup lands on one of them only.
        self.projects: ProjectStore = projects if projects is not None else MemoryProjectStore()
        self._clients: dict[tuple[str, str], LabelStudioClient] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        # Bulk pre-labeling, for a predictor that pre-labels (SAM answers clicks only).
        self.prelabeler = (
            None
            if predictor.interactive
            else Prelabeler(open_store(settings, link), self._prelabel_parts, settings.train_lock_ttl)
        )

    # -- model loading -------------------------------------------------------
    def start_loading(self) -> threading.Thread:
        thread = threading.Thread(target=self._load, name="model-loader", daemon=True)
        thread.start()
        return thread

    def _load(self) -> None:
        started = time.monotonic()
        try:
            self.predictor.load()
        except ModelLoadError as exc:
            self._fail(exc.reason)
            return
        except Exception as exc:
            log.exception("loading the %s model crashed", self.predictor.name)
            self._fail(f"{type(exc).__name__}: {exc}")
            return
        metrics.MODEL_LOAD_SECONDS.set(time.monotonic() - started)
        metrics.MODEL_READY.set(1)
        self.state = ModelState.READY
        if self.board is not None:
            self.board.mark_ready()
        if self.prelabeler is not None:  # before "ready": whoever waits for it sees the run
            self.prelabeler.resume_interrupted()
        self._ready.set()
        log.info("%s backend ready (%s)", self.predictor.name, self.predictor.model_version(None))

    def _fail(self, reason: str) -> None:
        self.state, self.reason = ModelState.FAILED, reason
        log.critical("the %s model could not be loaded: %s", self.predictor.name, reason)
        self._ready.set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        self._ready.wait(timeout)
        return self.state is ModelState.READY

    def _require_ready(self) -> None:
        if self.state is ModelState.LOADING:
            raise NotReady("the model is still loading; try again shortly")
        if self.state is ModelState.FAILED:
            raise NotReady(f"the model failed to load: {self.reason}")

    # -- routes --------------------------------------------------------------
    def health(self) -> tuple[int, dict[str, Any]]:
        """200 once every worker of this server has its model (workers.py says why all)."""
        ready = self.state is ModelState.READY
        reason = self.reason
        body: dict[str, Any] = {
            "status": self.state.value,
            "model_class": self.predictor.name,
            "uptime_s": round(time.time() - self.started_at, 1),
        }
        if ready:
            body["model_version"] = self.predictor.model_version(None)
        if self.board is not None:
            up, expected = self.board.counts()
            body["workers"] = {"ready": up, "expected": expected}
            if ready and up < expected:
                ready, reason = False, f"{up} of {expected} workers have loaded the model"
        body["ready"] = ready
        if reason:
            body["reason"] = reason
        # Redis down degrades coordination, not serving: still 200, so that Kubernetes keeps
        # routing to every replica (a 503 here would take them all out at once).
        redis = self.redis_status()
        body["redis"] = redis.to_json()
        body["degraded"] = redis.degraded
        return (200 if ready else 503), body

    def live(self) -> tuple[int, dict[str, Any]]:
        """Liveness: a worker still loading is alive (a restart would only start over);
        one whose model failed to load is not."""
        body: dict[str, Any] = {"status": self.state.value}
        if self.state is ModelState.FAILED:
            body["reason"] = self.reason
            return 503, body
        return 200, body

    def redis_status(self) -> LinkStatus:
        return self.link.status() if self.link is not None else OFF

    def setup(self, req: SetupRequest) -> dict[str, Any]:
        config = parse_label_config(req.label_config)
        self.predictor.check_config(config, req.project)
        if req.project:
            self.projects.put(req.project, ProjectInfo(req.label_config, req.hostname, req.access_token))
        return {"model_version": self.predictor.model_version(req.project)}

    def validate(self, body: Mapping[str, Any]) -> dict[str, Any]:
        xml = body.get("config") or body.get("schema") or body.get("label_config")
        if not isinstance(xml, str):
            raise BadRequest("missing 'config': the label config to validate")
        self.predictor.check_config(parse_label_config(xml))
        return {"status": "ok"}

    def predict(self, req: PredictRequest) -> dict[str, Any]:
        limit = self.settings.max_tasks_per_request
        if len(req.tasks) > limit:
            raise TooManyTasks(
                f"{len(req.tasks)} tasks in one request, above the limit of {limit} "
                f"({Env.MAX_TASKS_PER_REQUEST}); send batches of at most {limit} (in Label Studio, "
                "select fewer tasks for 'Retrieve Predictions'), or raise the limit"
            )
        self._require_ready()
        config = self._config(req)
        call = PredictCall(
            tasks=req.tasks,
            project=req.project,
            config=config,
            context=req.context,
            ls=self.label_studio(req.project),
        )
        results = self.predictor.predict(call)
        ok = sum(1 for r in results if "result" in r)
        metrics.PREDICTED_TASKS.labels("ok").inc(ok)
        metrics.PREDICTED_TASKS.labels("failed").inc(len(results) - ok)
        return {"results": results, "model_version": self.predictor.model_version(req.project)}

    def _config(self, req: PredictRequest) -> LabelConfig:
        if req.label_config:
            return parse_label_config(req.label_config)
        info = self._project(req.project)
        if info is None:
            raise BadRequest(
                "no 'label_config' in the request, and the project was never set up (POST /setup)"
            )
        return info.config

    def webhook(self, event: WebhookEvent) -> tuple[int, dict[str, Any]]:
        if event.action == PRELABEL_ACTION:
            return self.prelabel(event.project)
        if event.action in TRAIN_ACTIONS or event.action in ANNOTATION_ACTIONS:
            if self.trainer is None:
                return 200, {
                    "status": "ignored",
                    "reason": f"the {self.predictor.name} backend does not train",
                }
            if not event.project:
                raise BadRequest(f"{event.action} needs a 'project'")
            ls = self._training_access(event.project)
            if event.action in TRAIN_ACTIONS:
                decision = self.trainer.request(event.project, "START_TRAINING from Label Studio", ls)
                return (201 if decision.started else 200), training_answer(decision.status, decision.state)
            if event.cancelled:
                return 200, {"status": "ignored", "reason": "skipped annotations do not count"}
            try:
                decision_or_none = self.trainer.on_annotations(event.project, event.annotation_count, ls)
            except RedisUnavailable as exc:  # the next START_TRAINING still sees every annotation
                log.warning("annotation of project %s not counted: %s", event.project, exc.reason)
                return 200, {"status": "not_counted", "reason": exc.reason}
            if decision_or_none is None:
                return 200, {"status": "counted"}
            return 201, training_answer(decision_or_none.status, decision_or_none.state)
        handled = self.predictor.webhook(event, self.label_studio(event.project))
        if handled is not None:
            return handled
        return 200, {"status": "ignored", "action": event.action}

    def versions(self, project_value: Any) -> dict[str, Any]:
        """One project's versions and training; without a project, the default model's, and every
        known project's under ``projects`` (so a bare GET shows a training that runs)."""
        project = project_id(project_value)
        if project:
            return self._project_versions(project)
        body: dict[str, Any] = {
            "versions": self.predictor.versions(None),
            "model_version": self.predictor.model_version(None),
        }
        trained = {job.project for job in self.jobs() if job.runs or job.active}
        body["projects"] = {
            p: self._project_versions(p) for p in sorted(set(self.known_projects()) | trained)
        }
        return body

    def _project_versions(self, project: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "versions": self.predictor.versions(project),
            "model_version": self.predictor.model_version(project),
        }
        if self.serving is not None:
            body.update(self.serving.describe(project))
        if self.prelabeler is not None:
            try:
                body["prelabel"] = self.prelabeler.progress(project).to_json()
            except RedisUnavailable as exc:
                body["prelabel"] = {"project": project, "status": "unknown", "reason": exc.reason}
        if self.trainer is not None:
            try:
                body["training"] = self.trainer.state(project).to_json()
            except RedisUnavailable as exc:
                body["training"] = {"project": project, "status": "unknown", "reason": exc.reason}
        return body

    def _control(self, project_value: Any) -> tuple[ServingControl, str]:
        if self.serving is None:
            raise BadRequest(f"the {self.predictor.name} backend has no trained versions to switch")
        project = project_id(project_value)
        if not project:
            raise BadRequest("missing 'project': the Label Studio project whose version to switch")
        return self.serving, project

    def promote(self, project_value: Any, version: Any) -> dict[str, Any]:
        """Serve ``version`` now, on every worker (and replica, with Redis)."""
        control, project = self._control(project_value)
        if not isinstance(version, str) or not version:
            raise BadRequest("missing 'version': the version to serve (GET /versions?project= lists them)")
        done = control.promote(project, version)
        return {**done, "prelabel": self.prelabel_after_promotion(project)}

    def rollback(self, project_value: Any, version: Any = None) -> dict[str, Any]:
        """Serve ``version``, or the version that served before the current one."""
        control, project = self._control(project_value)
        if version is not None and not isinstance(version, str):
            raise BadRequest("'version' must be a version name")
        done = control.rollback(project, version or None)
        return {**done, "prelabel": self.prelabel_after_promotion(project)}

    def version_records(self) -> list[dict[str, Any]]:
        """Every kept version of every trained project with its scores, for /metrics."""
        if self.serving is None:
            return []
        return [
            {"project": p, **d}
            for p in self.predictor.trained_projects()
            for d in self.serving.describe(p)["details"]
        ]

    def sweep_trainings(self) -> None:
        """Re-queue trainings whose job died with its process or pod, and pre-label after a
        version a training promoted (LABELSTACK_PRELABEL_ON_PROMOTE): the job runs in its own
        process, so the web side notices the promotion in the job state."""
        trainer = self.trainer
        if trainer is None:
            return

        def access(project: str) -> tuple[str, str] | None:
            try:
                return self._training_access(project)
            except UnknownProject as exc:  # the job then fails, and says why
                log.warning("re-queued training of project %s: %s", project, exc.reason)
                return None

        trainer.requeue_dead(access)
        if not self.settings.prelabel_on_promote:
            return
        for job in trainer.store.all():
            if job.status is not JobStatus.DONE or not job.extra.get("promoted"):
                continue
            claimed = False

            def claim(state: JobState, version: str = job.version) -> JobState:
                # One worker of one replica claims each promoted version (a transaction).
                nonlocal claimed
                claimed = state.version == version and state.extra.get("prelabeled") != version
                return replace(state, extra={**state.extra, "prelabeled": version}) if claimed else state

            trainer.store.update(job.project, claim)
            if claimed:
                self.prelabel_after_promotion(job.project)

    def start_recovery(self, interval: float = HEARTBEAT_SECONDS) -> threading.Thread | None:
        """:meth:`sweep_trainings` at start, then at every heartbeat period (a state goes stale
        only some time after its job died)."""
        if self.trainer is None:
            return None

        def sweep() -> None:
            while True:
                try:
                    self.sweep_trainings()
                except (RedisUnavailable, InsufficientStorage) as exc:
                    log.warning("could not look for interrupted trainings: %s", exc.reason)
                except Exception:
                    log.exception("looking for interrupted trainings failed")
                time.sleep(interval)

        thread = threading.Thread(target=sweep, name="training-recovery", daemon=True)
        thread.start()
        return thread

    # -- bulk pre-labeling ----------------------------------------------------
    def prelabel(self, project_value: Any, why: str = "asked for") -> tuple[int, dict[str, Any]]:
        """Start pre-labeling a project in the background: 202 when it starts here, 200 when a run
        is going (it then makes one more pass when it ends)."""
        project = self._prelabel_project(project_value)
        self._require_ready()
        assert self.prelabeler is not None
        started, progress = self.prelabeler.start(project, why)
        return (202 if started else 200), {
            "status": "started" if started else "already_running",
            "prelabel": progress.to_json(),
        }

    def prelabel_progress(self, project_value: Any) -> dict[str, Any]:
        project = self._prelabel_project(project_value)
        assert self.prelabeler is not None
        return {"prelabel": self.prelabeler.progress(project).to_json()}

    def prelabel_after_promotion(self, project: str) -> bool:
        """For the promotion code: pre-label the project with the version just promoted, when
        LABELSTACK_PRELABEL_ON_PROMOTE is on. True when a run was asked for."""
        if not self.settings.prelabel_on_promote or self.prelabeler is None:
            return False
        self.prelabel(project, "a version was promoted")
        return True

    def prelabel_runs(self) -> list[Progress]:
        if self.prelabeler is None:
            return []
        try:
            return self.prelabeler.store.all()
        except RedisUnavailable:
            return []  # labelstack_redis_up says why

    def _prelabel_project(self, project_value: Any) -> str:
        if self.prelabeler is None:
            raise BadRequest(f"the {self.predictor.name} backend answers clicks; it does not pre-label")
        project = project_id(project_value)
        if not project or not project.isdigit():
            raise BadRequest("missing 'project': the id of the Label Studio project to pre-label")
        return project

    def _prelabel_parts(self, project: str) -> JobParts:
        ls = self.label_studio(project)
        if ls is None:
            raise UnknownProject(
                f"project {project} was never set up with this backend (POST /setup), and LABEL_STUDIO_URL "
                "and LABEL_STUDIO_API_KEY are not set, so its tasks cannot be read"
            )
        pid = int(project)
        config = parse_label_config(ls.label_config(pid))
        self.predictor.check_config(config)

        def predict(tasks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
            call = PredictCall(tasks, project, config, None, ls, background=True)
            results = self.predictor.predict(call)
            ok = sum(1 for r in results if "result" in r)
            metrics.PREDICTED_TASKS.labels("ok").inc(ok)
            metrics.PREDICTED_TASKS.labels("failed").inc(len(results) - ok)
            return results

        batch = self.settings.batch_for(resolve_device(self.settings.device))
        return JobParts(ls, pid, lambda: self.predictor.model_version(project), predict, batch)

    # -- helpers -------------------------------------------------------------
    def label_studio(self, project: str | None) -> LabelStudioClient | None:
        """Label Studio access: the backend's own settings first, else what /setup sent."""
        url, token = self.settings.label_studio_url, self.settings.label_studio_api_key
        if not (url and token):
            info = self._project(project)
            if info is None or not (info.hostname and info.access_token):
                return None
            url, token = info.hostname, info.access_token
        key = (url, token)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = LabelStudioClient(
                    url, token, timeout=self.settings.image_timeout
                )
            return client

    def _training_access(self, project: str) -> tuple[str, str] | None:
        if self.settings.label_studio_url and self.settings.label_studio_api_key:
            return None  # the job reads the same settings
        info = self._project(project)
        if info is None or not (info.hostname and info.access_token):
            raise UnknownProject(
                f"project {project} was never set up with this backend (POST /setup), and "
                "LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY are not set, so its annotations cannot be fetched"
            )
        return info.hostname, info.access_token

    def _project(self, project: str | None) -> ProjectInfo | None:
        return self.projects.get(project) if project else None

    def known_projects(self) -> Iterable[str]:
        """Projects set up with any worker (any replica, with Redis), plus those with trained versions."""
        return sorted(set(self.projects.projects()) | set(self.predictor.trained_projects()))

    def model_versions(self) -> dict[str, str]:
        out = {"default": self.predictor.model_version(None)}
        for project in self.known_projects():
            out[project] = self.predictor.model_version(project)
        return out

    def shared_cache_stats(self) -> tuple[int, int, int] | None:
        try:
            stats = self.predictor.shared_cache_stats()
        except RedisUnavailable:
            return None
        if stats is None:
            return None
        return stats.entries, stats.bytes, stats.max_bytes

    def jobs(self) -> list[JobState]:
        if self.trainer is None:
            return []
        try:
            return self.trainer.store.all()
        except RedisUnavailable:
            return []  # labelstack_redis_up says why


def training_answer(status: str, state: JobState) -> dict[str, Any]:
    """The answer to a training request: Label Studio keeps ``job`` as the training's id (128
    characters at most), so it is a short string; the state is under ``training``, as in /versions."""
    run = state.runs + (1 if state.status == JobStatus.QUEUED else 0)  # runs counts started ones
    return {
        "status": status,
        "job": f"project-{state.project}-run-{run}",
        "training": state.to_json(),
        "message": f"training of project {state.project}: {status}; GET /versions?project={state.project} "
        "follows it",
    }
