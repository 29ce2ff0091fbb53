"""gunicorn settings for the backend, the ``-c`` of ``labelstack_common.contract.command()``.

Every value can be overridden from the environment (the names are ``contract.Env``'s).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from labelstack_backend.server.workers import STATE_DIR_ENV, WorkerBoard, worker_threads
from labelstack_common import contract
from labelstack_common.contract import Env

bind = f"{os.environ.get(Env.HOST, '0.0.0.0')}:{os.environ.get(Env.PORT, str(contract.PORT))}"
# One worker per GPU is the norm: each worker loads its own copy of the model.
workers = int(os.environ.get(Env.WORKERS, "1"))
# Threads let /health and /metrics answer while a long /predict runs.
worker_class = "gthread"
threads = worker_threads()
# Label Studio waits up to 100 s for /predict; a batch on CPU can take a while.
timeout = int(os.environ.get(Env.GUNICORN_TIMEOUT, "300"))
graceful_timeout = int(os.environ.get(Env.GUNICORN_GRACEFUL_TIMEOUT, "30"))
keepalive = 5
# Never preload: the app would initialise CUDA in the master, and forked workers
# cannot use a CUDA context inherited from their parent.
preload_app = False
accesslog = "-" if os.environ.get(Env.ACCESS_LOG, "").lower() in {"1", "true", "yes"} else None
errorlog = "-"
loglevel = os.environ.get(Env.LOG_LEVEL, "info").lower()


def shared_dir(env: str, prefix: str) -> Path:
    """A folder every worker finds through ``env`` (inherited at the fork): the one it names, or
    a fresh temporary one."""
    if env not in os.environ:
        os.environ[env] = tempfile.mkdtemp(prefix=prefix)
    path = Path(os.environ[env])
    path.mkdir(parents=True, exist_ok=True)
    return path


# Prometheus counters from every worker are summed at scrape time.
shared_dir(Env.PROMETHEUS_MULTIPROC_DIR, "labelstack-prom-")
# /health is 200 only once every worker has its model (labelstack_backend/workers.py).
board = WorkerBoard(shared_dir(STATE_DIR_ENV, "labelstack-workers-"))
# Unused, and its default path in $HOME is shared by every server on the host.
control_socket_disable = True


def on_starting(server: Any) -> None:
    board.reset(server.num_workers)


def nworkers_changed(server: Any, new_value: int, old_value: int | None) -> None:
    board.set_expected(new_value)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
    board.forget(worker.pid)
