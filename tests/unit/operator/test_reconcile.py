"""One reconcile pass at a time against kmock: a scaled-out stack's children, and quiet resyncs.

The pass is called directly (no kopf), so each step is deterministic; the real
operator against the same emulator is in tests/integration/operator.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from labelstack_operator import constants as c
from labelstack_operator import reconcile
from labelstack_operator.reconcile import deployment_readiness
from tests.support import stacks
from tests.support.operator import Namespace

SCALED_OUT: dict[str, Any] = {
    "backends": [
        {
            "name": "seg",
            "type": "segmentation",
            "weights": {"demo": True},
            "modelStorage": {"accessMode": "ReadWriteMany"},
            "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 5},
        },
        {"name": "sam", "type": "sam", "weights": {"demo": True}, "replicas": 2},
    ],
}


def test_a_scaled_out_stack_gets_its_autoscaler_budgets_and_redis_password(server, ctx):
    ns = Namespace(server, "scaled-out")
    ns.create_stack(SCALED_OUT)
    reconcile.reconcile(ctx, ns.stack())

    hpa = ns.get("autoscaling/v2", "horizontalpodautoscalers", "garments-seg")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "garments-seg"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    assert ns.names("autoscaling/v2", "horizontalpodautoscalers") == {"garments-seg"}
    assert ns.names("policy/v1", "poddisruptionbudgets") == {"garments-seg", "garments-sam"}
    assert "replicas" not in ns.get("apps/v1", "deployments", "garments-seg")["spec"]

    secret = ns.get("v1", "secrets", "garments-redis")
    assert len(base64.b64decode(secret["data"]["password"])) >= 24
    assert "ownerReferences" not in secret["metadata"]  # kept with the data (Retain)
    events = server.list("v1", "events", ns.name)
    generated = sorted(e["message"] for e in events if e["reason"] == "SecretGenerated")
    assert generated == [
        "generated Secret garments-label-studio-admin",
        "generated Secret garments-postgres",
        "generated Secret garments-redis",
    ]

    # A resync of the unchanged stack writes nothing.
    mark = len(server.requests())
    reconcile.reconcile(ctx, ns.stack())
    assert ns.writes_since(mark) == []

    # The HPA scales the Deployment; the operator leaves the count alone and counts what it wants.
    server.patch("apps/v1", "deployments", ns.name, "garments-seg", {"spec": {"replicas": 4}})
    mark = len(server.requests())
    reconcile.reconcile(ctx, ns.stack())
    assert [w for w in ns.writes_since(mark) if w[1] != "labelingstacks"] == []
    assert ns.get("apps/v1", "deployments", "garments-seg")["spec"]["replicas"] == 4
    assert "seg 0/4" in ns.condition("BackendsReady")["message"]
    assert ns.get("v1", "secrets", "garments-redis") == secret  # never generated again


def test_turning_autoscaling_off_prunes_the_autoscaler_and_the_budget(server, ctx):
    ns = Namespace(server, "scaled-back")
    ns.create_stack(SCALED_OUT)
    reconcile.reconcile(ctx, ns.stack())
    spec = stacks.spec(SCALED_OUT)
    spec["backends"][0]["autoscaling"] = {"enabled": False}
    server.patch(c.API_VERSION, c.PLURAL, ns.name, "garments", {"spec": spec})
    reconcile.reconcile(ctx, ns.stack())
    assert ns.names("autoscaling/v2", "horizontalpodautoscalers") == set()
    assert ns.names("policy/v1", "poddisruptionbudgets") == {"garments-sam"}
    assert ns.get("apps/v1", "deployments", "garments-seg")["spec"]["replicas"] == 1


def test_a_redis_secret_without_a_password_is_a_clear_condition(server, ctx):
    ns = Namespace(server, "bad-redis-secret")
    server.create(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "garments-redis", "namespace": ns.name}},
        "secrets",
    )
    ns.create_stack(stacks.MINIMAL)
    reconcile.reconcile(ctx, ns.stack())
    ready = ns.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "RedisSecretInvalid")
    assert ready["message"].endswith("Secret garments-redis has no key 'password'")
    assert ns.names("apps/v1", "deployments") == set()


@pytest.mark.parametrize(
    ("deployment", "counts"),
    [
        (None, (0, 1)),
        # Rendered with autoscaling: no spec.replicas (what a live object never lacks).
        ({"spec": {}, "status": {"readyReplicas": 1}}, (1, 1)),
        # Live, scaled by the HPA.
        (
            {
                "metadata": {"generation": 3},
                "spec": {"replicas": 4},
                "status": {"readyReplicas": 3, "observedGeneration": 3},
            },
            (3, 4),
        ),
        (
            {
                "metadata": {"generation": 4},
                "spec": {"replicas": 4},
                "status": {"readyReplicas": 4, "observedGeneration": 3},
            },
            (0, 4),
        ),
        ({"spec": {"replicas": 0}, "status": {}}, (0, 0)),
    ],
)
def test_deployment_readiness_counts_what_the_live_object_wants(deployment, counts):
    assert deployment_readiness(deployment) == counts


def test_a_foreign_service_under_a_childs_name_is_left_untouched_and_reported(server, ctx):
    ns = Namespace(server, "foreign-service")
    # Another app's Service, controlled by its Deployment (which must exist, or kmock collects it).
    billing = server.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "billing", "namespace": ns.name},
        },
        "deployments",
    )
    uid = billing["metadata"]["uid"]
    foreign = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "garments-label-studio",
            "namespace": ns.name,
            "labels": {"app": "billing"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "billing",
                    "uid": uid,
                    "controller": True,
                }
            ],
        },
        "spec": {"selector": {"app": "billing"}, "ports": [{"port": 80}]},
    }
    server.create(foreign, "services")
    before = ns.get("v1", "services", "garments-label-studio")
    ns.create_stack(stacks.MINIMAL)
    reconcile.reconcile(ctx, ns.stack())

    assert ns.get("v1", "services", "garments-label-studio") == before  # not a field changed
    ready = ns.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ChildConflict")
    assert (
        f"Service garments-label-studio exists and belongs to Deployment billing (uid {uid})"
        in ready["message"]
    )
    events = [e for e in server.list("v1", "events", ns.name) if e["reason"] == "ChildConflict"]
    assert len(events) == 1 and events[0]["type"] == "Warning"
    # The other children are there; the conflict holds back only the object in the way.
    assert {"billing", "garments-label-studio"} <= ns.names("apps/v1", "deployments")

    mark = len(server.requests())
    reconcile.reconcile(ctx, ns.stack())
    assert ns.writes_since(mark) == []  # said once, never retried as a write

    # Once the foreign Service is gone, the stack takes the name.
    server.delete("v1", "services", ns.name, "garments-label-studio")
    reconcile.reconcile(ctx, ns.stack())
    service = ns.get("v1", "services", "garments-label-studio")
    assert service["metadata"]["ownerReferences"][0]["uid"] == ns.stack()["metadata"]["uid"]
    assert ns.condition("Ready")["reason"] != "ChildConflict"


def test_an_object_without_an_owner_is_not_adopted_but_retained_data_is(server, ctx):
    ns = Namespace(server, "no-owner")
    bare = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "garments-redis", "namespace": ns.name},
    }
    server.create(bare, "deployments")
    # A PVC a deleted stack of the same name kept (whenDeleted: Retain): no owner, the stack's labels.
    retained = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": "garments-label-studio-data",
            "namespace": ns.name,
            "labels": {c.LABEL_INSTANCE: "garments", c.LABEL_MANAGED_BY: c.FIELD_MANAGER},
        },
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}},
    }
    server.create(retained, "persistentvolumeclaims")
    ns.create_stack(stacks.MINIMAL)
    reconcile.reconcile(ctx, ns.stack())
    assert "ownerReferences" not in ns.get("apps/v1", "deployments", "garments-redis")["metadata"]
    message = ns.condition("Ready")["message"]
    assert "Deployment garments-redis exists and belongs to no controller" in message
    assert "PersistentVolumeClaim" not in message
    claim = ns.get("v1", "persistentvolumeclaims", "garments-label-studio-data")
    assert claim["metadata"]["annotations"][c.CONFIG_HASH_ANNOTATION]  # applied: it is the stack's own


MONITORED: dict[str, Any] = {
    "backends": [{"name": "seg", "type": "segmentation", "weights": {"demo": True}}],
    "monitoring": {"serviceMonitor": {"enabled": True}, "scraperNamespace": "monitoring"},
}


def test_a_service_monitor_is_applied_when_asked_for_and_pruned_when_no_longer(server, ctx):
    ns = Namespace(server, "monitored")
    ns.create_stack(MONITORED)
    reconcile.reconcile(ctx, ns.stack())
    monitor = ns.get("monitoring.coreos.com/v1", "servicemonitors", "garments-backends")
    assert monitor["metadata"]["ownerReferences"][0]["uid"] == ns.stack()["metadata"]["uid"]
    assert ns.stack()["status"]["serviceMonitor"] == "Applied"

    mark = len(server.requests())
    reconcile.reconcile(ctx, ns.stack())
    assert ns.writes_since(mark) == []

    spec = stacks.spec(MONITORED)
    spec["monitoring"]["serviceMonitor"]["enabled"] = False
    server.patch(c.API_VERSION, c.PLURAL, ns.name, "garments", {"spec": spec})
    reconcile.reconcile(ctx, ns.stack())
    assert ns.names("monitoring.coreos.com/v1", "servicemonitors") == set()
    assert "serviceMonitor" not in ns.stack()["status"]
    # From then on, ServiceMonitors are not even listed for this stack.
    mark = len(server.requests())
    reconcile.reconcile(ctx, ns.stack())
    assert not [
        r for r in server.operator_requests(mark) if r.resource and r.resource.plural == "servicemonitors"
    ]


def test_without_the_prometheus_operators_crd_the_service_monitor_is_skipped_and_said_so(server, ctx):
    ns = Namespace(server, "no-prometheus-operator")
    server.emulator.fail("GET", "servicemonitors", 404, reason="NotFound", times=100)
    try:
        ns.create_stack(MONITORED)
        reconcile.reconcile(ctx, ns.stack())
        reconcile.reconcile(ctx, ns.stack())
    finally:
        server.emulator.faults.clear()
    status = ns.stack()["status"]
    assert (
        status["serviceMonitor"]
        == "Skipped: the monitoring.coreos.com/v1 ServiceMonitor CRD is not installed"
    )
    assert ns.condition("Ready")["reason"] == "Starting"  # the rest of the stack goes on
    assert "garments-seg" in ns.names("apps/v1", "deployments")
    skipped = [e for e in server.list("v1", "events", ns.name) if e["reason"] == "ServiceMonitorSkipped"]
    assert len(skipped) == 1 and skipped[0]["type"] == "Warning"
