"""The operator on a shared cluster, against kmock: stacks that would share child names.

The real kopf operator (its index of stacks included) runs for the module; each test uses
its own namespace.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.kube import KubeServer
from tests.support.operator import FakeWiring, StackDriver, running_operator
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

DEMO = {"weights": {"demo": True}, "type": "segmentation"}


@pytest.fixture(scope="module")
def operator(kube_server: KubeServer) -> Iterator[None]:
    with running_operator(kube_server, FakeWiring()):
        yield


def test_a_later_stack_whose_children_would_collide_is_refused_before_any_write(kube_server, operator):
    namespace = "name-collision"
    first = StackDriver(kube_server, namespace, "a")
    later = StackDriver(kube_server, namespace, "a-b")
    first.create({"backends": [{"name": "b-seg", **DEMO}]})
    wait_for("stack a's backend", lambda: first.deployment("a-b-seg"))
    first.wait_condition("Ready", "False", "Starting")
    owner = first.deployment("a-b-seg")["metadata"]["ownerReferences"]

    mark = first.mark()
    later.create({"backends": [{"name": "seg", **DEMO}]})  # renders Deployment a-b-seg too
    ready = later.wait_condition("Ready", "False", "NameCollision")
    assert ready["message"].startswith(
        "Deployment a-b-seg, PersistentVolumeClaim a-b-seg-models, Service a-b-seg are children of "
        "LabelingStack a, created first: rename this stack or the backend"
    )
    assert "NameCollision" in [e["reason"] for e in later.events() if e["involvedObject"]["name"] == "a-b"]
    first.wait_passes(3)  # both stacks resync several times meanwhile

    # Not one child written by either stack: a keeps its objects, a-b made none.
    assert first.child_writes_since(mark) == []
    assert first.deployment("a-b-seg")["metadata"]["ownerReferences"] == owner
    assert later.deployment("a-b-label-studio") is None
    assert first.condition("Ready")["reason"] == "Starting"

    # Renamed, the later stack goes ahead.
    later.patch_spec({"backends": [{"name": "sam2", **DEMO}]})
    wait_for("stack a-b's backend", lambda: later.deployment("a-b-sam2"))
    assert first.deployment("a-b-seg")["metadata"]["ownerReferences"] == owner


def secret(namespace: str, name: str, keys: tuple[str, ...]) -> dict:
    data = dict.fromkeys(keys, "e30=")  # "{}"
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


def test_missing_secrets_are_named_and_the_stack_resumes_by_itself_once_they_appear(kube_server, operator):
    stack = StackDriver(kube_server, "secret-missing")
    store = {
        "bucket": "garment-models",
        "prefix": "seg",
        "credentialsSecret": {"name": "gcs-models", "key": "sa.json"},
    }
    stack.create(
        {
            "backends": [{"name": "seg", **DEMO, "modelStorage": {"gcs": store}}],
            "ingress": {"enabled": True, "host": "label.example.com", "tlsSecretName": "label-tls"},
        }
    )
    ready = stack.wait_condition("Ready", "False", "SecretMissing")
    assert ready["message"] == (
        "Secret gcs-models (backends[seg].modelStorage.gcs.credentialsSecret) does not exist; "
        "Secret label-tls (ingress.tlsSecretName) does not exist"
    )
    # Nothing waits for them: cert-manager, say, writes the TLS Secret once the Ingress exists.
    wait_for(
        "the Ingress",
        lambda: kube_server.get(
            "networking.k8s.io/v1", "ingresses", stack.namespace, "garments-label-studio"
        ),
    )
    assert stack.event_reasons().count("SecretMissing") == 1

    kube_server.create(
        secret(stack.namespace, "gcs-models", ("credentials.json",)), "secrets"
    )  # the wrong key
    stack.wait_condition(
        "Ready",
        "False",
        "SecretMissing",
        "Secret gcs-models (backends[seg].modelStorage.gcs.credentialsSecret) has no key 'sa.json'; "
        "Secret label-tls (ingress.tlsSecretName) does not exist",
    )
    kube_server.delete("v1", "secrets", stack.namespace, "gcs-models")
    kube_server.create(secret(stack.namespace, "gcs-models", ("sa.json",)), "secrets")
    kube_server.create(secret(stack.namespace, "label-tls", ("tls.crt", "tls.key")), "secrets")
    stack.wait_condition("Ready", "False", "Starting")  # the next resync, with no change to the stack
