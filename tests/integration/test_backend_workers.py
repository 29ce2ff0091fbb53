"""Several gunicorn workers behind one port: the server is ready only when all of them are.

Label Studio checks /health once when a backend is connected (and marks it "disconnected"
on a 503); Kubernetes probes land on any worker. Both must see one answer for the server.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import psutil
import pytest
import requests

from tests.support.backend import run_backend
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def health(url: str) -> tuple[int, dict]:
    resp = requests.get(f"{url}/health", timeout=5)
    return resp.status_code, resp.json()


def test_a_worker_that_reloads_takes_the_server_out_until_it_is_back(tmp_path):
    env = {"LABELSTACK_DEMO_MODEL": "1", "WORKERS": "2", "LABELSTACK_IMGSZ": "160"}
    with run_backend(tmp_path, env) as backend:
        # Ready means every worker: any number of probes now all say so.
        for _ in range(20):
            status, body = health(backend.url)
            assert status == 200 and body["workers"] == {"ready": 2, "expected": 2}

        victim = psutil.Process(backend.proc.pid).children()[0]
        os.kill(victim.pid, signal.SIGKILL)  # gunicorn forks a new worker, which loads again

        def answering(want: int) -> Callable[[], dict | None]:
            def probe() -> dict | None:
                status, body = health(backend.url)
                return body if status == want else None

            return probe

        body = wait_for("the server to answer 503 while a worker reloads", answering(503), timeout=30)
        assert body["workers"]["expected"] == 2 and body["workers"]["ready"] <= 1
        assert body["ready"] is False and body["reason"]
        assert requests.get(f"{backend.url}/livez", timeout=5).status_code == 200, "reloading is alive"

        back = wait_for("the new worker to load", answering(200), timeout=120)
        assert back["workers"] == {"ready": 2, "expected": 2}
        assert victim.pid not in {p.pid for p in psutil.Process(backend.proc.pid).children()}
