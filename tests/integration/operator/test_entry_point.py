"""``python -m labelstack_operator`` as a process: it logs in, watches its namespace, reconciles."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from labelstack_operator import constants as c
from tests.support import stacks
from tests.support.kube import KubeServer
from tests.support.waiting import wait_for

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
        kube_server.create(stacks.stack_body("garments", "watched"), c.PLURAL)
        kube_server.create(stacks.stack_body("garments", "elsewhere"), c.PLURAL)
        wait_for(
            "the watched stack's Deployments and StatefulSet",
            # Label Studio, Redis and the two backends; its PostgreSQL.
            lambda: (
                (
                    len(kube_server.list("apps/v1", "deployments", "watched")),
                    len(kube_server.list("apps/v1", "statefulsets", "watched")),
                )
                == (4, 1)
            ),
        )
        assert kube_server.list("apps/v1", "deployments", "elsewhere") == []
        assert kube_server.list("apps/v1", "statefulsets", "elsewhere") == []
        # The status is written after the last child, not with the Deployments.
        status = wait_for(
            "the watched stack's status",
            lambda: (kube_server.get(c.API_VERSION, c.PLURAL, "watched", "garments") or {}).get("status"),
        )
        assert {x["type"] for x in status["conditions"]} == {
            "Ready",
            "LabelStudioReady",
            "BackendsReady",
            "Wired",
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0, log.read_text()[-3000:]
