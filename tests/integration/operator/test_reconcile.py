"""The real kopf operator against kmock: create, change, drift, resync, delete, faults, bad specs.

One operator runs for the module (resync every second, see conftest.py); each
test uses its own namespace. Readiness is simulated by patching Deployment
status, as nothing turns Deployments into pods here. Wiring is replaced by a
recorder (it is tested against a real Label Studio in test_wiring*.py).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest

from labelstack_common.labelstudio import LabelStudioError
from labelstack_operator import constants as c
from labelstack_operator.render import Stack, build_children
from labelstack_operator.spec import parse_spec
from tests.support import stacks
from tests.support.kube import KubeServer
from tests.support.operator import FakeWiring, StackDriver, running_operator
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

ALL_DEPLOYMENTS = ("garments-label-studio", "garments-redis", "garments-seg", "garments-sam")


@pytest.fixture(scope="module")
def wiring() -> FakeWiring:
    return FakeWiring()


@pytest.fixture(scope="module")
def operator(kube_server: KubeServer, wiring: FakeWiring) -> Iterator[None]:
    with running_operator(kube_server, wiring):
        yield


@pytest.fixture
def stack(request: pytest.FixtureRequest, kube_server: KubeServer, operator: None) -> Iterator[StackDriver]:
    namespace = request.node.name.replace("_", "-")[:50].strip("-").lower()
    driver = StackDriver(kube_server, namespace)
    yield driver
    kube_server.emulator.faults.clear()
    # Stacks left behind would keep the operator's timers busy for the tests after this one.
    if driver.get() is not None:
        driver.delete()
        try:
            wait_for("the stack to go", lambda: driver.get() is None)
        except AssertionError:
            writes = [
                f"{r.method.value} {r.url.path} {r.text[:300]}"
                for r in kube_server.operator_writes()
                if r.namespace == namespace and r.resource is not None and r.resource.plural == c.PLURAL
            ]
            raise AssertionError("the stack stayed; its writes:\n" + "\n".join(writes[-12:])) from None


def expected_children(driver: StackDriver, spec: dict) -> set[tuple[str, str]]:
    uid = driver.get()["metadata"]["uid"]
    rendered = build_children(Stack(driver.name, driver.namespace, uid, parse_spec(spec)))
    return {(o["kind"], o["metadata"]["name"]) for o in rendered} | {
        ("Secret", "garments-label-studio-admin"),
        ("Secret", "garments-redis"),
        ("Secret", "garments-postgres"),
    }


def ready_stack(stack: StackDriver, wiring: FakeWiring) -> None:
    """Create the SMALL stack and bring it to Ready=True."""
    stack.create(stacks.spec(stacks.SMALL))
    wait_for("the Deployments", lambda: all(stack.deployment(n) for n in ALL_DEPLOYMENTS))
    stack.mark_ready(*ALL_DEPLOYMENTS)
    stack.wait_condition("Ready", "True")


def test_create_makes_every_child_and_says_what_it_waits_for(stack):
    stack.create(stacks.spec(stacks.SMALL))
    want = expected_children(stack, stacks.SMALL)
    wait_for("every child", lambda: stack.children() >= want)
    assert stack.children() == want

    ready = stack.wait_condition("Ready", "False", "Starting")
    assert ready["message"].startswith("LabelStudioReady:")
    assert stack.condition("Wired")["reason"] == "WaitingForLabelStudio"
    assert stack.condition("BackendsReady")["reason"] == "NotReady"
    status = stack.get()["status"]
    assert status["url"] == "http://label.example.com" and status["backends"] == "0/2"
    assert status["observedGeneration"] == 1
    assert {"Created", "SecretGenerated"} <= set(stack.event_reasons())
    # The generated admin Secret has the three keys Label Studio and the backends read.
    secret = stack.kube.get("v1", "secrets", stack.namespace, "garments-label-studio-admin")
    assert set(secret["data"]) == {"username", "password", "token"}


def test_readiness_then_wiring_leads_to_ready(stack, wiring):
    stack.create(stacks.spec(stacks.SMALL))
    wait_for("the Deployments", lambda: all(stack.deployment(n) for n in ALL_DEPLOYMENTS))

    # Label Studio and one backend up: wired with what is ready, waiting for the rest.
    stack.mark_ready("garments-label-studio", "garments-redis", "garments-seg")
    stack.wait_condition("Wired", "False", "WaitingForBackends", "waiting for backends: sam")
    (partial,) = wiring.calls_for(stack.namespace)[-1]
    assert [(b.title, b.interactive) for b in partial.backends] == [("seg", False)]

    stack.mark_ready("garments-sam")
    stack.wait_condition("Ready", "True", "StackReady")
    calls = wiring.calls_for(stack.namespace)
    (plan,) = calls[-1]
    assert plan.title == "Garments"
    assert [(b.title, b.url, b.interactive) for b in plan.backends] == [
        ("seg", f"http://garments-seg.{stack.namespace}.svc:9090", False),
        ("sam", f"http://garments-sam.{stack.namespace}.svc:9090", True),
    ]
    status = stack.get()["status"]
    assert status["backends"] == "2/2" and status["projects"] == [{"title": "Garments", "id": 100}]
    assert "Wired" in stack.event_reasons()

    # A plan carried out is not wired again on resync.
    stack.wait_passes(3)
    assert len(wiring.calls_for(stack.namespace)) == len(calls)


def test_resync_of_a_steady_stack_writes_nothing(stack, wiring):
    ready_stack(stack, wiring)
    mark = stack.wait_passes(3)
    assert stack.writes_since(mark) == []


def test_a_spec_change_patches_only_the_affected_deployment(stack, wiring):
    ready_stack(stack, wiring)
    before = stack.deployment("garments-sam")
    mark = stack.mark()
    stack.patch_spec(
        {"backends": [stacks.SMALL["backends"][0], {**stacks.SMALL["backends"][1], "samModelType": "vit_b"}]}
    )
    wait_for(
        "the SAM Deployment to change",
        lambda: (
            stack.deployment("garments-sam")["metadata"]["resourceVersion"]
            != before["metadata"]["resourceVersion"]
        ),
    )
    stack.wait_passes(2)
    assert stack.child_writes_since(mark) == [("PATCH", "deployments", "garments-sam", None)]
    env = {
        e["name"]: e.get("value")
        for e in stack.deployment("garments-sam")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["LABELSTACK_SAM_MODEL_TYPE"] == "vit_b"
    assert stack.get()["status"]["observedGeneration"] == 2
    assert "Updated" in stack.event_reasons()


def test_a_deleted_or_hand_edited_child_is_restored(stack, wiring):
    ready_stack(stack, wiring)
    mark = stack.mark()
    stack.kube.delete("v1", "services", stack.namespace, "garments-seg")
    stack.kube.patch(
        "apps/v1", "deployments", stack.namespace, "garments-redis",
        {"spec": {"template": {"spec": {"containers": [{"name": "redis", "image": "someone/else:latest"}]}}}},
    )  # fmt: skip
    wait_for("the Service back", lambda: ("Service", "garments-seg") in stack.children())
    wait_for(
        "the image back",
        lambda: (
            stack.deployment("garments-redis")["spec"]["template"]["spec"]["containers"][0]["image"]
            == "redis:7-alpine"
        ),
    )
    assert sorted(stack.child_writes_since(mark)) == [
        ("PATCH", "deployments", "garments-redis", None),
        ("PATCH", "services", "garments-seg", None),
    ]
    assert "Restored" in stack.event_reasons()


def test_deleting_the_stack_keeps_pvcs_and_the_admin_secret(stack, wiring):
    spec = stacks.spec(stacks.SMALL)
    spec["redis"] = {"persistence": {"enabled": True}}
    stack.create(spec)
    want = expected_children(stack, spec)
    wait_for("every child", lambda: stack.children() >= want)
    stack.delete()
    wait_for("the stack and its owned children to go", lambda: stack.get() is None and not any(
        kind == "Deployment" for kind, _ in stack.children()
    ))  # fmt: skip
    assert stack.children() == {
        ("PersistentVolumeClaim", "garments-label-studio-data"),
        ("PersistentVolumeClaim", "garments-redis-data"),
        ("PersistentVolumeClaim", "garments-seg-models"),
        ("PersistentVolumeClaim", "garments-postgres-data"),
        ("Secret", "garments-label-studio-admin"),
        ("Secret", "garments-redis"),
        ("Secret", "garments-postgres"),
    }


def test_delete_policy_lets_the_data_go_with_the_stack(stack, wiring):
    spec = stacks.spec(stacks.SMALL)
    spec["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Delete"}
    stack.create(spec)
    want = expected_children(stack, spec)
    wait_for("every child", lambda: stack.children() >= want)
    stack.delete()
    wait_for("everything to go", lambda: stack.get() is None and not stack.children())


def test_injected_conflicts_and_server_errors_are_retried(stack, wiring, kube_server):
    faults = kube_server.emulator
    faults.fail("PATCH", "deployments", 409, times=2)
    faults.fail("PATCH", "services", 500, times=2)
    faults.fail("PATCH", "labelingstacks", 500, times=1, subresource="status")
    stack.create(stacks.spec(stacks.SMALL))
    want = expected_children(stack, stacks.SMALL)
    wait_for("every child", lambda: stack.children() >= want)
    stack.wait_condition("Wired", "False", "WaitingForLabelStudio")
    assert all(f.remaining == 0 for f in faults.faults)
    faults.faults.clear()


def test_errors_beyond_the_retries_become_a_condition_and_the_operator_recovers(stack, wiring, kube_server):
    kube_server.emulator.fail("PATCH", "deployments", 503, times=12)
    stack.create(stacks.spec(stacks.SMALL))
    failed = stack.wait_condition("Ready", "False", "ApplyFailed")
    assert "503" in failed["message"]
    wait_for("the faults to run out", lambda: all(f.remaining == 0 for f in kube_server.emulator.faults))
    kube_server.emulator.faults.clear()
    wait_for("every child", lambda: stack.children() >= expected_children(stack, stacks.SMALL))
    stack.wait_condition("Wired", "False", "WaitingForLabelStudio")
    assert "ApplyFailed" in stack.event_reasons()


def test_an_object_the_api_server_refuses_holds_back_nothing_else(stack, wiring, kube_server):
    # As a PVC whose storage class cannot grow would be: 422 Invalid, on every attempt.
    kube_server.emulator.fail("PATCH", "persistentvolumeclaims", 422, reason="Invalid", times=1000)
    stack.create(stacks.spec(stacks.SMALL))
    failed = stack.wait_condition("Ready", "False", "ApplyFailed")
    assert "PersistentVolumeClaim garments-label-studio-data: Invalid" in failed["message"]
    assert "PersistentVolumeClaim garments-seg-models: Invalid" in failed["message"]
    want = expected_children(stack, stacks.SMALL)
    wait_for(
        "every other child", lambda: stack.children() >= {k for k in want if k[0] != "PersistentVolumeClaim"}
    )
    assert not any(kind == "PersistentVolumeClaim" for kind, _ in stack.children())
    assert stack.event_reasons().count("ApplyFailed") == 1
    assert "Created" in stack.event_reasons()


def test_wiring_failures_are_reported_and_retried(stack, wiring):
    wiring.fail_with = LabelStudioError("connect backend seg", 400, "Can't connect to ML backend")
    try:
        stack.create(stacks.spec(stacks.SMALL))
        wait_for("the Deployments", lambda: all(stack.deployment(n) for n in ALL_DEPLOYMENTS))
        stack.mark_ready(*ALL_DEPLOYMENTS)
        failed = stack.wait_condition("Wired", "False", "WiringFailed")
        assert "Can't connect to ML backend" in failed["message"]
        assert stack.event_reasons().count("WiringFailed") == 1
    finally:
        wiring.fail_with = None
    stack.wait_condition("Ready", "True")


def test_a_broken_spec_is_a_clear_condition_not_a_crash_loop(stack, wiring):
    broken = copy.deepcopy(stacks.SMALL)
    broken["projects"][0]["backends"] = ["seg", "sam2"]
    stack.create(broken)
    failed = stack.wait_condition("Ready", "False", "InvalidSpec")
    assert "unknown backends: sam2" in failed["message"]
    mark = stack.wait_passes(3)
    # No children, no status rewrites, one Event: the same bad spec is reported once.
    assert stack.children() == set()
    assert stack.writes_since(mark) == []
    assert stack.event_reasons() == ["InvalidSpec"]

    stack.patch_spec({"projects": stacks.SMALL["projects"]})
    wait_for("every child", lambda: stack.children() >= expected_children(stack, stacks.SMALL))
    stack.wait_condition("Wired", "False", "WaitingForLabelStudio")
