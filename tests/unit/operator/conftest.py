"""kmock for the tests that call one reconcile pass at a time (no kopf)."""

from __future__ import annotations

from collections.abc import Iterator

import kopf
import pytest

from labelstack_common.retry import RetryPolicy
from labelstack_operator import reconcile
from labelstack_operator.config import OperatorConfig
from labelstack_operator.kube import Kube
from tests.support.kube import KubeServer
from tests.support.operator import FakeAccounts


@pytest.fixture(scope="module")
def server() -> Iterator[KubeServer]:
    with KubeServer() as kube:
        yield kube


@pytest.fixture(scope="module")
def ctx(server: KubeServer) -> reconcile.Context:
    kube = Kube(
        lambda: kopf.ConnectionInfo(server=server.url, insecure=True),
        retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02),
    )
    return reconcile.Context(kube=kube, config=OperatorConfig())


@pytest.fixture(autouse=True)
def accounts(monkeypatch: pytest.MonkeyPatch) -> FakeAccounts:
    """Label Studio accounts without a Label Studio (the real one: tests/integration/test_team_access.py)."""
    fake = FakeAccounts()
    monkeypatch.setattr("labelstack_common.wiring.ensure_user", fake)
    return fake
