"""Background precompute of a whole project's embeddings.

Triggered by ``POST /webhook {"action": "SAM_PRECOMPUTE", "project": <id>}``: the
project's label config and tasks come from Label Studio through label-studio-sdk
(task data as stored, exactly what Label Studio sends to ``/predict``, so the
cache keys match), and each task's image goes through the same embedding path
as a click. Background encodes give way to interactive ones, so labelers keep
clicking at full speed meanwhile.

Without a second cache level, precomputing more images than the cache holds
would only evict the first ones: the run stops at the cache's capacity and says so.

Progress is logged and exported as ``labelstack_sam_precompute_tasks{project,state}``
and ``labelstack_sam_precompute_running{project}``; posting the action again while
a run is going answers its progress.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from labelstack_backend import metrics
from labelstack_backend.errors import BadRequest, ImageError
from labelstack_backend.labelconfig import Control, LabelConfig, parse_label_config, task_image_value
from labelstack_backend.sam.answer import check_sam_config
from labelstack_backend.sam.cache import Source
from labelstack_backend.sam.embeddings import EmbeddingService
from labelstack_common.labelstudio import LabelStudioClient, LabelStudioError

log = logging.getLogger(__name__)

PRECOMPUTE_ACTION = "SAM_PRECOMPUTE"
LOG_EVERY_S = 15.0


@dataclass
class Progress:
    project: str
    status: str = "running"  # running, done, failed
    total: int = 0
    done: int = 0  # embeddings now cached (computed or already there)
    computed: int = 0  # of which the encoder ran for
    failed: int = 0
    skipped: int = 0  # left out because the cache cannot hold them
    reason: str = ""
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def project_tasks(ls: LabelStudioClient, project: str) -> tuple[LabelConfig, list[dict[str, Any]]]:
    """The project's label config and its tasks (id and data), through label-studio-sdk."""
    pid = int(project)
    info = ls.call(f"get project {pid}", ls.sdk.projects.get, id=pid)
    config = parse_label_config(info.label_config or "")

    def fetch() -> list[dict[str, Any]]:
        pager = ls.sdk.tasks.list(project=pid, fields="task_only", resolve_uri=False, page_size=100)
        return [{"id": t.id, "data": dict(t.data or {})} for t in pager]

    return config, ls.call(f"list the tasks of project {pid}", fetch)


class Precomputer:
    """One background run per project at a time."""

    def __init__(self, embeddings: EmbeddingService, *, polygons: bool = False) -> None:
        self.embeddings = embeddings
        self.polygons = polygons
        self._runs: dict[str, Progress] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def progress(self, project: str) -> Progress | None:
        with self._lock:
            return self._runs.get(project)

    def start(self, project: str, ls: LabelStudioClient | None) -> tuple[bool, Progress]:
        """Start a run for ``project`` unless one is going; returns (started, progress)."""
        if ls is None:
            raise BadRequest(
                "precomputing needs Label Studio access: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY, "
                "or connect this backend to the project in Label Studio first"
            )
        if not project.isdigit():
            raise BadRequest(f"'project' must be a Label Studio project id, got {project!r}")
        with self._lock:
            thread = self._threads.get(project)
            if thread is not None and thread.is_alive():
                return False, self._runs[project]
            progress = self._runs[project] = Progress(project)
            thread = threading.Thread(
                target=self._run, args=(progress, ls), name=f"sam-precompute-{project}", daemon=True
            )
            self._threads[project] = thread
        thread.start()
        return True, progress

    def wait(self, project: str, timeout: float | None = None) -> Progress | None:
        """Wait for the project's run to end (tests and scripts)."""
        with self._lock:
            thread = self._threads.get(project)
        if thread is not None:
            thread.join(timeout)
        return self.progress(project)

    def _run(self, progress: Progress, ls: LabelStudioClient) -> None:
        project = progress.project
        metrics.SAM_PRECOMPUTE_RUNNING.labels(project).set(1)
        try:
            config, tasks = project_tasks(ls, project)
            control = check_sam_config(config, self.polygons)[0]
            progress.total = len(tasks)
            self._publish(progress)
            log.info("precomputing the SAM embeddings of project %s: %d tasks", project, len(tasks))
            self._encode_all(progress, tasks, config, control, ls)
            progress.status = "done"
        except (LabelStudioError, BadRequest) as exc:
            progress.status, progress.reason = "failed", str(exc)
        except Exception as exc:  # a background thread must say why it died
            log.exception("precomputing project %s crashed", project)
            progress.status, progress.reason = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            progress.finished_at = time.time()
            self._publish(progress)
            metrics.SAM_PRECOMPUTE_RUNNING.labels(project).set(0)
        level = logging.INFO if progress.status == "done" else logging.ERROR
        log.log(
            level,
            "precompute of project %s %s: %d/%d cached (%d encoded), %d failed, %d skipped%s",
            project,
            progress.status,
            progress.done,
            progress.total,
            progress.computed,
            progress.failed,
            progress.skipped,
            f": {progress.reason}" if progress.reason else "",
        )

    def _encode_all(
        self,
        progress: Progress,
        tasks: list[dict[str, Any]],
        config: LabelConfig,
        control: Control,
        ls: LabelStudioClient,
    ) -> None:
        cache = self.embeddings.cache
        limit: int | None = None
        last_log = time.monotonic()
        for i, task in enumerate(tasks):
            if limit is not None and i >= limit:
                progress.skipped = len(tasks) - i
                progress.reason = (
                    f"the cache holds about {limit} embeddings (LABELSTACK_SAM_CACHE_BYTES="
                    f"{cache.max_bytes}); raise it to precompute all {len(tasks)} tasks"
                )
                log.warning("project %s: %s", progress.project, progress.reason)
                break
            try:
                value = task_image_value(task, config, control)
                embedding, source = self.embeddings.get(value, ls, background=True)
            except ImageError as exc:
                progress.failed += 1
                log.warning("precompute: task %s: %s", task.get("id"), exc.reason)
                continue
            progress.done += 1
            progress.computed += source is Source.COMPUTED
            if limit is None and cache.second is None:
                limit = max(1, cache.max_bytes // max(1, embedding.nbytes))
            self._publish(progress)
            if time.monotonic() - last_log > LOG_EVERY_S:
                last_log = time.monotonic()
                log.info(
                    "precompute of project %s: %d/%d done, %d failed",
                    progress.project,
                    progress.done,
                    progress.total,
                    progress.failed,
                )

    @staticmethod
    def _publish(progress: Progress) -> None:
        for state in ("total", "done", "failed", "skipped"):
            metrics.SAM_PRECOMPUTE_TASKS.labels(progress.project, state).set(getattr(progress, state))


class Warmer:
    """Encodes task images in the background, in order, one at a time.

    For ``/predict`` without a context on many tasks at once (Label Studio's Data Manager
    asks for a whole page when predictions are evaluated automatically): encoding them
    inside the request would hold Label Studio for minutes on a CPU. A click on an image
    still in the queue or being encoded waits for that one encode (single-flight).
    """

    def __init__(self, embeddings: EmbeddingService, max_queue: int = 1000) -> None:
        self.embeddings = embeddings
        self._queue: queue.Queue[tuple[str, LabelStudioClient | None]] = queue.Queue(max_queue)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, value: str, ls: LabelStudioClient | None) -> bool:
        """Queue an image; False when the queue is full (the image is then not warmed)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sam-warmer", daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait((value, ls))
        except queue.Full:
            log.warning("the warm-up queue is full; not warming %s", value[:120])
            return False
        return True

    def join(self) -> None:
        """Wait until every queued image is done (tests and scripts)."""
        self._queue.join()

    def _run(self) -> None:
        while True:
            value, ls = self._queue.get()
            try:
                self.embeddings.get(value, ls, background=True)
            except ImageError as exc:
                log.warning("warm-up of %s failed: %s", value[:120], exc.reason)
            except Exception:
                log.exception("warm-up of %s crashed", value[:120])
            finally:
                self._queue.task_done()
