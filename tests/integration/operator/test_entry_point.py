"""``python -m labelstack_operator`` as a process: it logs in, watches its namespace, reconciles."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.kube import KubeServer, reconciles_only_watched

pytestmark = pytest.mark.integration


def test_the_entry_point_reconciles_its_namespace_only(kube_server: KubeServer, tmp_path: Path):
    env = {**os.environ, "LABELSTACK_KUBE_SERVER": kube_server.url, "LABELSTACK_RESYNC_SECONDS": "60"}
    log = tmp_path / "operator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "labelstack_operator", "--namespace", "watched", "--liveness", ""],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        reconciles_only_watched(kube_server)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0, log.read_text()[-3000:]
