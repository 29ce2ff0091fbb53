"""Run the real backend under gunicorn on a free port, as Label Studio would reach it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import requests

from labelstack_tools.localstack.ports import free_port
from tests.support.waiting import wait_for


@dataclass
class BackendServer:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None


def trainers(server: BackendServer) -> list[psutil.Process]:
    """The training job processes this backend started (children of its workers)."""
    try:
        tree = psutil.Process(server.proc.pid).children(recursive=True)
    except psutil.Error:
        return []
    found = []
    for p in tree:
        with suppress(psutil.Error):
            if "labelstack_backend.training.job" in " ".join(p.cmdline()):
                found.append(p)
    return found


def versions(url: str, project: int) -> dict[str, Any]:
    """A backend's ``/versions`` for a project: what it serves and its training state."""
    return dict(requests.get(f"{url}/versions?project={project}", timeout=10).json())


def training_ended(url: str, project: int, timeout: float = 300) -> dict[str, Any]:
    """Wait for the project's training to be done or failed; return its state."""

    def ended() -> dict[str, Any] | None:
        job = dict(versions(url, project)["training"])
        return job if job["status"] in ("done", "failed") else None

    return wait_for("the training to end", ended, timeout, interval=0.5)


def serving(url: str, project: int, version: str, timeout: float = 30) -> dict[str, Any]:
    """Wait for the backend to serve ``version``: a job is done once it is published, and serving
    loads it and switches a moment later (docs/scaling.md gives the bound)."""

    def now() -> dict[str, Any] | None:
        info = versions(url, project)
        return info if info["model_version"] == version else None

    return wait_for(f"{version} to serve", now, timeout, interval=0.2)


def wait_until_ready(server: BackendServer, timeout: float = 120.0) -> None:
    """Until ``/health`` answers 200; fails with the end of the log when the backend dies or hangs."""
    deadline = time.monotonic() + timeout
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"backend exited with {server.proc.returncode}:\n{server.log()[-4000:]}")
        try:
            if requests.get(f"{server.url}/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"backend not ready after {timeout:.0f}s:\n{server.log()[-4000:]}")
        time.sleep(0.3)


@contextmanager
def run_replicas(
    workdirs: list[Path], env: Mapping[str, str], *, ready_timeout: float = 180.0
) -> Iterator[list[BackendServer]]:
    """Several replicas of one backend (each on its own port and, unless ``env`` says otherwise,
    its own MODEL_DIR), started together and ready on return."""
    with ExitStack() as stack:
        servers = [stack.enter_context(run_backend(w, env, wait_ready=False)) for w in workdirs]
        for server in servers:
            wait_until_ready(server, ready_timeout)
        yield servers


def gunicorn_command() -> list[str]:
    return [
        str(Path(sys.executable).with_name("gunicorn")),
        "-c",
        "python:labelstack_backend.server.gunicorn_conf",
        "labelstack_backend.server.wsgi:create_app_from_env()",
    ]


@contextmanager
def run_backend(
    workdir: Path,
    env: Mapping[str, str],
    *,
    ready_timeout: float = 120.0,
    wait_ready: bool = True,
) -> Iterator[BackendServer]:
    """Start ``gunicorn`` with the repo's config; stop it (and its workers) on exit.

    ``env`` adds to the current environment: LABELSTACK_PREDICTOR, MODEL_DIR,
    LABEL_STUDIO_URL, LABELSTACK_DEMO_MODEL... PORT is chosen here.
    """
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"backend-{port}.log"
    full_env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MODEL_DIR": str(workdir / "models"),
        "PYTHONUNBUFFERED": "1",
        # Tests write their task images under the temporary folder (pytest's tmp_path).
        "LABELSTACK_LOCAL_ROOTS": tempfile.gettempdir(),
        **env,
    }
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            gunicorn_command(), env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = BackendServer(url=f"http://127.0.0.1:{port}", proc=proc, log_path=log_path, env=full_env)
    try:
        if wait_ready:
            wait_until_ready(server, ready_timeout)
        yield server
    finally:
        # Training jobs run in their own sessions (a worker's shutdown must not kill them): collect
        # them first, so that none outlives the test.
        jobs = [p for p in trainers(server) if p.is_running()]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        for job in jobs:
            with suppress(psutil.Error):
                job.kill()
