"""Drift detection: what makes the operator write, and what does not."""

from __future__ import annotations

import copy

import pytest

from labelstack_operator import constants as c
from labelstack_operator.children import drift, holds, quantity, with_hash


def deployment() -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x", "namespace": "ns", "labels": {"a": "b"}},
        "spec": {
            "replicas": 1,
            "template": {
                "spec": {
                    "containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "0.5"}}}],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                }
            },
        },
    }


def live_version(desired: dict) -> dict:
    """What an API server hands back: our fields plus its own (defaults, status, bookkeeping)."""
    live = copy.deepcopy(desired)
    live["metadata"].update({"uid": "u", "resourceVersion": "7", "generation": 2, "managedFields": []})
    live["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] = "/dev/termination-log"
    live["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "500m"
    live["spec"]["strategy"] = {"type": "RollingUpdate"}
    live["status"] = {"readyReplicas": 1}
    return live


def test_missing_object_must_be_applied():
    assert drift(with_hash(deployment()), None) == "missing"


def test_server_additions_and_canonical_quantities_are_not_drift():
    desired = with_hash(deployment())
    assert drift(desired, live_version(desired)) is None


def test_a_changed_manifest_is_detected_by_its_hash():
    old = with_hash(deployment())
    new = deployment()
    new["spec"]["replicas"] = 2
    assert drift(with_hash(new), live_version(old)) == "changed"


def test_a_hand_edit_of_a_field_we_set_is_detected():
    desired = with_hash(deployment())
    live = live_version(desired)
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "someone/else:latest"
    assert drift(desired, live) == "edited"


def test_a_removed_label_is_detected():
    desired = with_hash(deployment())
    live = live_version(desired)
    del live["metadata"]["labels"]["a"]
    assert drift(desired, live) == "edited"


def test_hash_ignores_itself_and_is_stable():
    once = with_hash(deployment())
    twice = with_hash(once)
    assert once == twice
    assert len(once["metadata"]["annotations"][c.CONFIG_HASH_ANNOTATION]) == 16


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("0.5", "500m", True),
        ("1Gi", "1024Mi", True),
        ("1", 1, True),
        ("2", "2000m", True),
        ("1Gi", "1G", False),
    ],
)
def test_quantities_compare_by_value(a, b, same):
    assert (quantity(a) == quantity(b)) is same
    assert holds({"q": a}, {"q": b}) is same


def test_lists_must_match_item_by_item():
    assert not holds({"l": [1, 2]}, {"l": [1]})
    assert not holds({"l": [{"a": 1}]}, {"l": [{"a": 2}]})
    assert holds({"l": [{"a": 1}]}, {"l": [{"a": 1, "extra": True}]})
