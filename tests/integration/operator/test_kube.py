"""The Kubernetes API wrapper against the emulator: apply, list, retries and error classes."""

from __future__ import annotations

import kopf
import pytest
import requests

from labelstack_common.retry import RetryPolicy
from labelstack_operator.kube import DEPLOYMENT, SECRET, Kube, KubeError
from tests.support.kube import KubeServer, describe

pytestmark = pytest.mark.integration

FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.02)


def deployment(name: str, ns: str, replicas: int = 1) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/instance": name}},
        "spec": {"replicas": replicas},
    }


@pytest.fixture
def kube(kube_server: KubeServer) -> Kube:
    return Kube(lambda: kopf.ConnectionInfo(server=kube_server.url, insecure=True), retry=FAST)


def test_apply_creates_then_updates_with_our_field_manager(kube, kube_server):
    created = kube.apply(deployment("web", "kube-apply"))
    assert created["metadata"]["uid"]
    updated = kube.apply(deployment("web", "kube-apply", replicas=3))
    assert updated["spec"]["replicas"] == 3 and updated["metadata"]["uid"] == created["metadata"]["uid"]
    applies = [r for r in kube_server.operator_writes() if r.namespace == "kube-apply"]
    assert all(r.params == {"fieldManager": "labelstack-operator", "force": "true"} for r in applies)
    assert all(r.headers["Content-Type"] == "application/apply-patch+yaml" for r in applies)


def test_list_filters_by_label_and_get_of_a_missing_object_is_none(kube):
    kube.apply(deployment("a", "kube-list"))
    kube.apply(deployment("b", "kube-list"))
    names = [
        o["metadata"]["name"] for o in kube.list(DEPLOYMENT, "kube-list", "app.kubernetes.io/instance=b")
    ]
    assert names == ["b"]
    assert kube.get(SECRET, "kube-list", "nothing-here") is None


@pytest.mark.parametrize("status", [409, 500, 503])
def test_transient_errors_are_retried_until_they_pass(kube, kube_server, status):
    ns = f"kube-retry-{status}"
    kube_server.emulator.fail("PATCH", "deployments", status, times=2)
    before = len(kube_server.requests())
    applied = kube.apply(deployment("web", ns))
    assert applied["metadata"]["name"] == "web"
    writes = describe(kube_server.operator_writes(before))
    assert [w.method for w in writes] == ["PATCH", "PATCH", "PATCH"]  # two failures, one success


def test_retries_give_up_with_a_classified_error(kube, kube_server):
    kube_server.emulator.fail("PATCH", "deployments", 500, times=10)
    with pytest.raises(KubeError) as err:
        kube.apply(deployment("web", "kube-giveup"))
    assert err.value.status == 500 and err.value.retryable
    kube_server.emulator.faults.clear()


def test_invalid_requests_are_not_retried(kube, kube_server):
    kube_server.emulator.fail("PATCH", "deployments", 422, reason="Invalid", times=1)
    before = len(kube_server.requests())
    with pytest.raises(KubeError) as err:
        kube.apply(deployment("web", "kube-invalid"))
    assert err.value.permanent and not err.value.retryable
    assert len(kube_server.operator_writes(before)) == 1


def test_create_of_an_existing_object_is_already_exists_not_a_retry(kube, kube_server):
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "kube-create"}}
    kube.create(secret)
    before = len(kube_server.requests())
    with pytest.raises(KubeError) as err:
        kube.create(secret)
    assert err.value.already_exists and not err.value.retryable
    assert len(kube_server.operator_writes(before)) == 1


def test_status_patches_go_to_the_status_subresource(kube, kube_server):
    kube.apply(deployment("web", "kube-status"))
    kube.patch_status(DEPLOYMENT, "kube-status", "web", {"readyReplicas": 1})
    live = kube_server.get("apps/v1", "deployments", "kube-status", "web")
    assert live is not None and live["status"] == {"readyReplicas": 1}
    assert kube.delete(DEPLOYMENT, "kube-status", "web") is True
    assert kube.delete(DEPLOYMENT, "kube-status", "web") is False


def test_an_unreachable_api_server_is_a_retryable_error():
    kube = Kube(lambda: kopf.ConnectionInfo(server="http://127.0.0.1:9", insecure=True), retry=FAST)
    with pytest.raises(KubeError) as err:
        kube.list(DEPLOYMENT, "x", "a=b")
    assert err.value.status == 0 and err.value.retryable


def test_the_emulator_refuses_new_finalizers_on_an_object_being_deleted(kube_server):
    # As the API server does; a late patch from kopf once kept a deleted stack forever.
    body = deployment("web", "kube-finalizers")
    body["metadata"]["finalizers"] = ["example.com/one"]
    kube_server.create(body, "deployments")
    kube_server.delete("apps/v1", "deployments", "kube-finalizers", "web")
    with pytest.raises(requests.HTTPError) as refused:
        kube_server.patch(
            "apps/v1", "deployments", "kube-finalizers", "web",
            {"metadata": {"finalizers": ["example.com/one", "example.com/two"]}},
        )  # fmt: skip
    assert refused.value.response.status_code == 422
    kube_server.patch("apps/v1", "deployments", "kube-finalizers", "web", {"metadata": {"finalizers": []}})
    assert kube_server.get("apps/v1", "deployments", "kube-finalizers", "web") is None
