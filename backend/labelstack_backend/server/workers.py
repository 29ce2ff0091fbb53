"""Readiness across the workers of one gunicorn server.

Every worker loads its own model, and any of them may answer a probe. A pod whose first
worker is ready while another still loads would pass its readiness probe and then answer
some requests 503 (Label Studio marks the backend "disconnected" when its health check
lands there). So the workers share a small directory: the master writes how many workers
it runs, each worker drops a file once its model is loaded, and ``/health`` is 200 only
when every worker has one. Standard library only; the files live on the container's own
disk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from labelstack_common.contract import Env

STATE_DIR_ENV = Env.WORKER_STATE_DIR
DEFAULT_THREADS = 8


def worker_threads(environ: dict[str, str] | None = None) -> int:
    """The threads of each gunicorn worker (``THREADS``), as gunicorn_conf configures them."""
    env = os.environ if environ is None else environ
    return int(env.get(Env.THREADS) or DEFAULT_THREADS)


EXPECTED_FILE = "workers"
READY_SUFFIX = ".ready"


@dataclass(frozen=True)
class WorkerBoard:
    directory: Path

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> WorkerBoard | None:
        """The board of the gunicorn server this process runs in; None outside gunicorn."""
        env = os.environ if environ is None else environ
        value = env.get(STATE_DIR_ENV)
        return cls(Path(value)) if value else None

    # -- the master ------------------------------------------------------------
    def reset(self, expected: int) -> None:
        """A fresh server: no worker is ready yet (files left by a killed container are stale,
        and pids repeat in a new one)."""
        self.set_expected(expected)
        for path in self.directory.glob(f"*{READY_SUFFIX}"):
            path.unlink(missing_ok=True)

    def set_expected(self, expected: int) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{EXPECTED_FILE}.{os.getpid()}"
        tmp.write_text(str(expected))
        tmp.replace(self.directory / EXPECTED_FILE)  # atomic: a reader never sees it half written

    def forget(self, pid: int) -> None:
        (self.directory / f"{pid}{READY_SUFFIX}").unlink(missing_ok=True)

    # -- a worker --------------------------------------------------------------
    def mark_ready(self, pid: int | None = None) -> None:
        (self.directory / f"{pid or os.getpid()}{READY_SUFFIX}").touch()

    def counts(self) -> tuple[int, int]:
        """(workers ready, workers the master runs)."""
        ready = sum(1 for _ in self.directory.glob(f"*{READY_SUFFIX}"))
        try:
            expected = int((self.directory / EXPECTED_FILE).read_text())
        except (OSError, ValueError):
            expected = 1  # not written yet: only this worker is known
        return ready, expected
