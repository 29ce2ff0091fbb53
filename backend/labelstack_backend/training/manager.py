"""Starts training jobs from web requests, without blocking them.

Label Studio's webhook times out after about a second, so a request only
records the wish and spawns the job process (:mod:`.job`); the job reports
through the shared :class:`JobStore`. A request for a project whose job is
still queued is folded into it (the job has not read the annotations yet); one
for a project whose job is running sets ``pending`` instead: the job trains
once more when it finishes, so no annotation is left out and no two jobs overlap.

With Redis the decision is one transaction shared by every replica. When Redis
cannot be reached, a training request is refused with the reason rather than
decided locally, so an outage can never make a project train twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from labelstack_backend.coordination.link import RedisUnavailable
from labelstack_backend.errors import BackendError, InsufficientStorage
from labelstack_backend.training.job import (
    ENV_LS_TOKEN,
    ENV_LS_URL,
    EXIT_UNRECORDED,
    HEARTBEAT_SECONDS,
)
from labelstack_backend.training.state import JobState, JobStatus, JobStore
from labelstack_common.contract import Env

log = logging.getLogger(__name__)

STALE_AFTER = HEARTBEAT_SECONDS * 4
# How long an overdue job gets to exit after SIGTERM before SIGKILL.
STOP_GRACE_SECONDS = 10.0


class TrainingRefused(BackendError):
    """Training cannot be coordinated right now (Redis is unreachable)."""

    status = 503


def refusal(exc: RedisUnavailable) -> TrainingRefused:
    # The gist first: Label Studio shows only the start of it (the HTTP reason phrase).
    return TrainingRefused(
        "training refused: Redis is unreachable, and without it a training could run twice; "
        f"ask again once Redis is back ({exc.cause})"
    )


@dataclass(frozen=True)
class TrainDecision:
    state: JobState
    started: bool  # False: one is already queued or running (this request is folded into it)

    @property
    def status(self) -> str:
        return "started" if self.started else "already_running"


Spawn = Callable[[str, Mapping[str, str]], subprocess.Popen[bytes]]


def spawn_job(project: str, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "labelstack_backend.training.job", project],
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # a worker's shutdown signal should not kill a running training
    )


def is_stale(state: JobState, now: float | None = None) -> bool:
    """An active state whose heartbeat stopped: its job died without saying so."""
    return state.active and (now or time.time()) - state.updated_at > STALE_AFTER


class TrainingManager:
    def __init__(
        self, store: JobStore, train_every: int = 0, spawn: Spawn = spawn_job, timeout: float | None = None
    ) -> None:
        self.store = store
        self.train_every = train_every
        self.timeout = timeout  # LABELSTACK_TRAIN_TIMEOUT: a job running longer is stopped
        self._spawn = spawn
        self._lock = threading.Lock()
        self._children: list[subprocess.Popen[bytes]] = []

    def state(self, project: str) -> JobState:
        state = self.store.get(project)
        if is_stale(state):
            return replace(state, status=JobStatus.FAILED, reason="the training process stopped responding")
        return state

    def request(self, project: str, reason: str, ls: tuple[str, str] | None = None) -> TrainDecision:
        """Start a training of ``project`` unless one is already queued or running.

        Raises InsufficientStorage (507, the reason names MODEL_DIR) when the job state cannot be
        written: nothing is started then."""
        with self._lock:
            started = False

            def decide(state: JobState) -> JobState:
                # Pure: with Redis it runs again when another replica changed the state meanwhile.
                nonlocal started
                started = not state.active or is_stale(state)
                if not started:
                    # A queued job reads the annotations when it starts: this request is in it.
                    return replace(state, pending=True) if state.status is JobStatus.RUNNING else state
                return replace(
                    state,
                    status=JobStatus.QUEUED,
                    reason=reason,
                    requeued="",
                    pending=False,
                    epoch=0,
                    loss=None,
                    new_annotations=0,
                )

            try:
                state = self.store.update(project, decide)
            except RedisUnavailable as exc:
                raise refusal(exc) from None
            if started:
                failed = self._launch(project, reason, ls)
                if failed is not None:
                    return TrainDecision(failed, started=False)
            else:
                log.info("training of project %s already active; queued one more run", project)
            return TrainDecision(state, started=started)

    def _launch(self, project: str, reason: str, ls: tuple[str, str] | None) -> JobState | None:
        """Spawn the job of a state just set to queued, and its reaper; the failed state when it
        cannot start."""
        env = {ENV_LS_URL: ls[0], ENV_LS_TOKEN: ls[1]} if ls else {}
        try:
            child = self._spawn(project, env)
        except OSError as exc:
            return self._mark_failed(project, f"could not start training: {exc}")
        self._children.append(child)
        threading.Thread(target=self._reap, args=(project, child), daemon=True, name="train-reaper").start()
        log.info("training of project %s started (%s)", project, reason)
        return None

    def is_dead(self, state: JobState) -> bool:
        """An active state whose job is gone: its heartbeat stopped, or it says it runs while
        nobody holds the training lock (the kernel dropped its flock when the process died)."""
        if not state.active:
            return False
        return is_stale(state) or (
            state.status is JobStatus.RUNNING and not self.store.lock_held(state.project)
        )

    def requeue_dead(self, access: Callable[[str], tuple[str, str] | None]) -> list[JobState]:
        """Queue again every training whose job died with its process or pod (not one whose job
        failed: its launcher recorded that). Several workers may sweep at once: the transaction
        starts one job, for a state unchanged since it was found dead."""
        requeued: list[JobState] = []
        for found in self.store.all():
            if not self.is_dead(found):
                continue
            owner = str(found.extra.get("owner") or "its process")
            why = f"re-queued: the training that was {found.status.value} in {owner} stopped with it"
            with self._lock:
                started = False

                def again(state: JobState, found: JobState = found, why: str = why) -> JobState:
                    nonlocal started
                    same = (state.status, state.updated_at) == (found.status, found.updated_at)
                    started = state.active and (same or is_stale(state))
                    if not started:
                        return state
                    return replace(
                        state,
                        status=JobStatus.QUEUED,
                        reason=why,
                        requeued=why,
                        epoch=0,
                        loss=None,
                        new_annotations=0,
                    )

                state = self.store.update(found.project, again)
                if not started:
                    continue
                log.warning("project %s: %s", found.project, why)
                requeued.append(self._launch(found.project, why, access(found.project)) or state)
        return requeued

    def on_annotations(
        self, project: str, count: int, ls: tuple[str, str] | None = None
    ) -> TrainDecision | None:
        """Count new annotations; start a training every ``train_every`` of them."""
        if self.train_every <= 0 or count <= 0:
            return None
        state = self.store.update(project, lambda s: replace(s, new_annotations=s.new_annotations + count))
        if state.new_annotations >= self.train_every:
            return self.request(project, f"{state.new_annotations} new annotations", ls)
        return None

    def _reap(self, project: str, child: subprocess.Popen[bytes]) -> None:
        try:
            code = child.wait() if self.timeout is None else child.wait(self.timeout)
        except subprocess.TimeoutExpired:
            code = self._stop_overdue(project, child)
        if code not in (0, 1):  # killed (out of memory?) or crashed before it could say why
            if code == EXIT_UNRECORDED:
                reason = "the training failed and could not write its job state (is MODEL_DIR full?)"
            else:
                reason = f"the training process exited with code {code}"
            log.error("training of project %s: %s", project, reason)
            try:
                self._mark_failed(project, reason)
            except (RedisUnavailable, InsufficientStorage) as exc:
                # Its heartbeat stops: the state goes stale, then reads as failed.
                log.warning("could not record that: %s", exc.reason)
        with self._lock:
            if child in self._children:
                self._children.remove(child)

    def _stop_overdue(self, project: str, child: subprocess.Popen[bytes]) -> int:
        """A job past its time: recorded as failed first (so its reason is the timeout, not its
        exit code), then its whole session stopped, SIGTERM then SIGKILL."""
        reason = f"the training ran longer than {Env.TRAIN_TIMEOUT}={self.timeout:g} s and was stopped"
        log.error("training of project %s: %s", project, reason)
        try:
            self._mark_failed(project, reason)
        except (RedisUnavailable, InsufficientStorage) as exc:
            log.warning("could not record that: %s", exc.reason)
        for sig, grace in ((signal.SIGTERM, STOP_GRACE_SECONDS), (signal.SIGKILL, None)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, sig)  # the job runs in its own session (spawn_job)
            try:
                return child.wait(grace)
            except subprocess.TimeoutExpired:
                continue
        return child.wait()

    def _mark_failed(self, project: str, reason: str) -> JobState:
        def fail(s: JobState) -> JobState:
            if s.status is JobStatus.FAILED or not s.active:
                return s
            return replace(s, status=JobStatus.FAILED, reason=reason, finished_at=time.time())

        return self.store.update(project, fail)

    def join(self, timeout: float) -> bool:
        """Wait until every training started here is reaped, its outcome recorded and logged; False
        if some still runs after ``timeout`` s. For a clean shutdown, and tests that end a job."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if not self._children:
                    return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def running_children(self) -> int:
        with self._lock:
            return sum(1 for c in self._children if c.poll() is None)
