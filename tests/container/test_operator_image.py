"""The operator image as the chart runs it: the image's entry point with the chart's arguments,
environment, user and /tmp volume, reconciling a stack against the in-memory API server (reached
from inside the container over loopback) and writing nothing outside its volume, as the pod's
read-only root filesystem demands."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from labelstack_tools.localstack.ports import free_port
from scripts import helm
from tests.support import containers
from tests.support.kube import KubeServer, reconciles_only_watched
from tests.support.shipping import one

pytestmark = pytest.mark.container


def test_the_operator_image_reconciles_its_namespace_as_the_chart_runs_it(
    operator_image: str, tmp_path: Path
) -> None:
    pod = one(helm.template([{"watch": {"namespaces": ["watched"]}}]), "Deployment")["spec"]["template"][
        "spec"
    ]
    (cont,) = pod["containers"]
    assert "command" not in cont, "the chart keeps the image's entry point"
    security = {**pod["securityContext"], **cont["securityContext"]}
    user = f"{security['runAsUser']}:{security.get('runAsGroup', security['runAsUser'])}"
    cfg = containers.config(operator_image)
    assert cfg.user == user and security["readOnlyRootFilesystem"]
    assert "--namespace=watched" in cont["args"]

    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    env = {e["name"]: e["value"] for e in cont["env"] if "value" in e}
    assert env["LABELSTACK_LIVENESS"].endswith(":8080/healthz")
    volumes = {containers.owned_by(tmp_path / m["name"], user): m["mountPath"] for m in cont["volumeMounts"]}
    with KubeServer() as kube, containers.container(operator_image) as ctr:
        running = ctr.start(
            tmp_path / "operator.log",
            argv=[*cfg.entrypoint, *cont["args"]],
            # Out of a cluster: the test's API server, and a free port for the probe.
            env={**env, "LABELSTACK_LIVENESS": liveness, "LABELSTACK_KUBE_SERVER": kube.url},
            volumes=volumes,
        )
        try:
            reconciles_only_watched(kube, timeout=120)
            assert requests.get(liveness, timeout=5).status_code == 200
        finally:
            code = containers.stop(running)
        assert ctr.written() == [], running.log()[-3000:]
    assert code == 0, running.log()[-3000:]
    assert "Traceback" not in running.log(), running.log()[-3000:]
