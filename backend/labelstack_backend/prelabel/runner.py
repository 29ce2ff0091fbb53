"""Starts pre-labeling runs in background threads, one per project across every replica.

``start`` takes the project's lock without waiting: when another process (or replica) holds it,
the request only marks the run ``pending`` so that its holder makes one more pass when it ends
(a promotion during a run is not lost). A heartbeat renews the lock while the run goes on; a run
whose process died is found ``running`` with its lock free, and ``resume_interrupted`` (called
at start) runs it again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from labelstack_backend.coordination.link import RedisUnavailable
from labelstack_backend.errors import BackendError
from labelstack_backend.prelabel.job import JobParts, run_pass
from labelstack_backend.prelabel.progress import Progress, RunStatus
from labelstack_backend.prelabel.store import Lease, ProgressStore
from labelstack_common.errors import LabelStackError

log = logging.getLogger(__name__)


class Prelabeler:
    def __init__(
        self, store: ProgressStore, parts_for: Callable[[str], JobParts], lock_ttl: float = 60.0
    ) -> None:
        self.store = store
        self.parts_for = parts_for  # raises BackendError when the project cannot be reached
        self.lock_ttl = lock_ttl
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def progress(self, project: str) -> Progress:
        return self.store.get(project)

    def start(self, project: str, why: str, *, again_if_running: bool = True) -> tuple[bool, Progress]:
        """(started here, progress). Never waits for a run; one running elsewhere makes one more
        pass when it ends (``again_if_running``), so that what was asked for meanwhile is done."""
        parts = self.parts_for(project)
        lease = self.store.try_lock(project, self.owner, self.lock_ttl)
        if lease is None:
            if not again_if_running:
                return False, self.store.get(project)
            return False, self.store.update(project, lambda p: replace(p, pending=True))
        try:
            progress = self.store.update(project, lambda p: _started(p, self.owner))
        except BaseException:
            lease.release()
            raise
        thread = threading.Thread(
            target=self._run, args=(project, parts, lease), name=f"prelabel-{project}", daemon=True
        )
        with self._lock:
            self._threads[project] = thread
        log.info("pre-labeling project %s: %s", project, why)
        thread.start()
        return True, progress

    def resume_interrupted(self) -> list[str]:
        """Start again the runs whose process died while they ran (their lock is free)."""
        resumed = []
        try:
            runs = self.store.all()
        except RedisUnavailable as exc:
            log.warning("cannot look for interrupted pre-labeling runs: %s", exc.reason)
            return []
        for run in runs:
            if not (run.active or run.pending):
                continue
            try:
                # Every worker resumes at its start: the first takes the lock, and the others
                # need no extra pass from it.
                why = f"resuming the run interrupted in {run.owner or 'a process'}"
                started, _ = self.start(run.project, why, again_if_running=False)
            except LabelStackError as exc:
                log.warning("cannot resume pre-labeling project %s: %s", run.project, exc)
                continue
            if started:
                resumed.append(run.project)
        return resumed

    def wait(self, project: str, timeout: float | None = None) -> Progress:
        with self._lock:
            thread = self._threads.get(project)
        if thread is not None:
            thread.join(timeout)
        return self.store.get(project)

    def _run(self, project: str, parts: JobParts, lease: Lease) -> None:
        lost = threading.Event()
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(lease, stop, lost), daemon=True)
        beat.start()
        try:
            while True:
                progress = self._one_pass(project, parts, lost)
                if progress.status is not RunStatus.DONE or lost.is_set():
                    return
                again = self.store.update(project, _take_pending)
                if again.status is not RunStatus.RUNNING:
                    return
                log.info("pre-labeling project %s again: it was asked for during the run", project)
        finally:
            stop.set()
            lease.release()

    def _one_pass(self, project: str, parts: JobParts, lost: threading.Event) -> Progress:
        progress = self.store.get(project)
        started = time.monotonic()

        def save(p: Progress) -> None:
            self.store.update(project, lambda _old: replace(p, pending=_old.pending))

        try:
            progress = run_pass(parts, progress, save, still_ours=lambda: not lost.is_set())
            progress.status = RunStatus.DONE
        except (LabelStackError, BackendError) as exc:
            progress.status, progress.reason = RunStatus.FAILED, str(exc)
        except Exception as exc:  # a background thread must say why it died
            log.exception("pre-labeling project %s crashed", project)
            progress.status, progress.reason = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
        progress.finished_at = time.time()
        try:
            save(progress)
        except LabelStackError as exc:
            log.error("could not record the end of pre-labeling project %s: %s", project, exc)
        log.log(
            logging.INFO if progress.status is RunStatus.DONE else logging.ERROR,
            "pre-labeling project %s %s in %.1fs: %d/%d tasks hold %s, %d written, %d failed%s",
            project,
            progress.status.value,
            time.monotonic() - started,
            progress.done,
            progress.total,
            progress.version,
            progress.written,
            progress.failed,
            f": {progress.reason}" if progress.reason else "",
        )
        return progress

    def _heartbeat(self, lease: Lease, stop: threading.Event, lost: threading.Event) -> None:
        while not stop.wait(self.lock_ttl / 4):
            try:
                if not lease.renew():
                    lost.set()
                    return
            except RedisUnavailable:
                continue  # nobody can take the lock while Redis is down either


def _started(p: Progress, owner: str) -> Progress:
    now = time.time()
    return replace(p, status=RunStatus.RUNNING, owner=owner, reason="", pending=False, started_at=now,
                   finished_at=None)  # fmt: skip


def _take_pending(p: Progress) -> Progress:
    if not p.pending:
        return p
    return replace(
        p, status=RunStatus.RUNNING, pending=False, reason="", started_at=time.time(), finished_at=None
    )
