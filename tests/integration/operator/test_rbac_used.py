"""The RBAC a full reconcile actually uses fits the chart's default Role.

The real kopf operator runs as the chart runs it by default (one watched namespace), against
kmock, through a stack's whole life: create, readiness and wiring, a spec change that prunes,
deletion. Every request it sends is turned into what an authorizer would check, including the
``update`` on ``labelingstacks/finalizers`` that owner references with ``blockOwnerDeletion``
need on clusters that enforce them, and each must be granted by the rendered Role.
"""

from __future__ import annotations

import pytest

from scripts import helm
from tests.support import stacks
from tests.support.kube import KubeServer, granted, permissions
from tests.support.operator import FakeWiring, StackDriver, running_operator
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

NAMESPACE = "labelstack"  # the release namespace, which the chart watches by default
SPEC = {
    **stacks.spec(stacks.SMALL),
    "backends": [
        *stacks.spec(stacks.SMALL)["backends"],
        {
            "name": "scaled",
            "type": "sam",
            "weights": {"demo": True},
            "autoscaling": {"enabled": True, "maxReplicas": 3, "targetCPUUtilizationPercentage": 60},
            "resources": {"requests": {"cpu": "1"}},
        },
    ],
    "monitoring": {"serviceMonitor": {"enabled": True}, "scraperNamespace": "monitoring"},
}


def test_every_call_of_a_full_reconcile_is_granted_by_the_charts_default_role(kube_server: KubeServer):
    (role,) = [o for o in helm.template(namespace=NAMESPACE) if o["kind"] == "Role"]
    assert role["metadata"]["namespace"] == NAMESPACE
    stack = StackDriver(kube_server, NAMESPACE)
    with running_operator(kube_server, FakeWiring(), namespaces=[NAMESPACE]):
        stack.create(SPEC)
        deployments = (
            "garments-label-studio",
            "garments-redis",
            "garments-seg",
            "garments-sam",
            "garments-scaled",
        )
        wait_for("the Deployments", lambda: all(stack.deployment(n) for n in deployments))
        stack.mark_ready(*deployments)
        stack.wait_condition("Ready", "True")
        stack.patch_spec({"backends": SPEC["backends"][:2]})  # prunes a Deployment, its HPA and PDB
        wait_for("the pruned backend", lambda: stack.deployment("garments-scaled") is None)
        stack.wait_passes(1)
        stack.delete()
        wait_for("the stack to go", lambda: stack.get() is None)

    used = permissions(kube_server.operator_requests())
    assert ("labelstack.dev", "labelingstacks/finalizers", "update") in used
    assert {verb for _, resource, verb in used if resource == "deployments"} >= {"list", "patch", "delete"}
    assert {verb for _, resource, verb in used if resource == "statefulsets"} >= {"list", "patch"}
    assert ("", "secrets", "get") in used and ("", "secrets", "create") in used
    assert ("monitoring.coreos.com", "servicemonitors", "patch") in used
    denied = sorted(p for p in used if not granted(role["rules"], p))
    assert denied == [], f"the chart's Role does not grant {denied}"
    # And nothing outside the watched namespace (a Role grants nothing there).
    assert {r.namespace for r in kube_server.operator_requests() if r.resource and r.resource.plural} == {
        NAMESPACE
    }
