"""The operator image as the chart runs it: its entry point, as its non-root user, reconciling a
stack against the in-memory API server (reached from inside the container over loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from labelstack_tools.localstack.ports import free_port
from tests.support import containers
from tests.support.kube import KubeServer, reconciles_only_watched

pytestmark = pytest.mark.container


def test_the_operator_image_reconciles_its_namespace(operator_image: str, tmp_path: Path) -> None:
    cfg = containers.config(operator_image)
    assert cfg.user == "10001:10001" and cfg.entrypoint == ("labelstack-operator",)
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    with KubeServer() as kube, containers.container(operator_image) as ctr:
        running = ctr.start(
            tmp_path / "operator.log",
            argv=[*cfg.entrypoint, "--namespace", "watched", "--liveness", liveness],
            env={"LABELSTACK_KUBE_SERVER": kube.url, "LABELSTACK_RESYNC_SECONDS": "60"},
        )
        try:
            reconciles_only_watched(kube, timeout=120)
            assert requests.get(liveness, timeout=5).status_code == 200
        finally:
            code = containers.stop(running)
    assert code == 0, running.log()[-3000:]
    assert "Traceback" not in running.log(), running.log()[-3000:]
