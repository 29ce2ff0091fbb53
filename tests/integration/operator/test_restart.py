"""An operator restart: kopf resumes every stack, and an unchanged stack gets no writes."""

from __future__ import annotations

import pytest

from tests.support import stacks
from tests.support.kube import KubeServer
from tests.support.operator import FakeWiring, StackDriver, running_operator
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

DEPLOYMENTS = ("garments-label-studio", "garments-redis", "garments-seg", "garments-sam")


def test_resume_after_a_restart_writes_nothing_and_drift_is_still_repaired(kube_server: KubeServer):
    wiring = FakeWiring()
    stack = StackDriver(kube_server, "restart")
    with running_operator(kube_server, wiring):
        stack.create(stacks.spec(stacks.SMALL))
        wait_for("the Deployments", lambda: all(stack.deployment(n) for n in DEPLOYMENTS))
        stack.mark_ready(*DEPLOYMENTS)
        stack.wait_condition("Ready", "True")
    wired = len(wiring.calls_for("restart"))

    mark = stack.mark()
    with running_operator(kube_server, wiring):
        stack.wait_passes(2)  # the resume pass and timer passes
        assert stack.writes_since(mark) == []
        assert len(wiring.calls_for("restart")) == wired  # the wired plan is not wired again
        # And the restarted operator still repairs drift.
        kube_server.delete("v1", "services", "restart", "garments-sam")
        wait_for("the Service back", lambda: kube_server.get("v1", "services", "restart", "garments-sam"))
        stack.delete()
        wait_for("the stack to go", lambda: stack.get() is None)
