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
