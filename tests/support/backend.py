"""Run the real backend under gunicorn on a free port, as Label Studio would reach it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from labelstack_backend.localstack.ports import free_port


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


def gunicorn_command() -> list[str]:
    return [
        str(Path(sys.executable).with_name("gunicorn")),
        "-c",
        "python:labelstack_backend.gunicorn_conf",
        "labelstack_backend.wsgi:create_app_from_env()",
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
        **env,
    }
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            gunicorn_command(), env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = BackendServer(url=f"http://127.0.0.1:{port}", proc=proc, log_path=log_path, env=full_env)
    try:
        if wait_ready:
            deadline = time.monotonic() + ready_timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"backend exited with {proc.returncode}:\n{server.log()[-4000:]}")
                try:
                    if requests.get(f"{server.url}/health", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"backend not ready after {ready_timeout:.0f}s:\n{server.log()[-4000:]}"
                    )
                time.sleep(0.3)
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
