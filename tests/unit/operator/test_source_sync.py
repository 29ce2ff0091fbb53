"""The projects' GCS sources are synced every syncInterval, without a spec change."""

from __future__ import annotations

from typing import Any

import pytest

from labelstack_operator import constants as c
from labelstack_operator import reconcile
from labelstack_operator.spec import parse_spec
from tests.support.operator import FakeWiring, Namespace
from tests.unit.operator.test_accounts import _mark_ready


def stack_with_source(interval: str) -> dict[str, Any]:
    source = {"bucket": "runway-images", "prefix": "ss26", "syncInterval": interval}
    return {"projects": [{"title": "Runway", "labelConfig": "<View/>", "gcs": {"source": source}}]}


@pytest.fixture
def wiring(monkeypatch: pytest.MonkeyPatch) -> FakeWiring:
    fake = FakeWiring()
    monkeypatch.setattr("labelstack_common.wiring.wire", fake)
    monkeypatch.setattr("labelstack_common.wiring.sync_sources", fake.sync_sources)
    return fake


def _synced_long_ago(server, ns) -> None:
    """The stack's status says its sources were last synced long before any interval."""
    server.patch(
        c.API_VERSION,
        c.PLURAL,
        ns.name,
        "garments",
        {"status": {"sourcesSyncedAt": "2026-01-01T00:00:00Z"}},
        sub="status",
    )


def test_the_source_is_synced_again_once_its_interval_has_passed(server, ctx, wiring):
    ns = Namespace(server, "periodic-sync")
    ns.create_stack(stack_with_source("10m"))
    reconcile.reconcile(ctx, ns.stack())
    _mark_ready(ns, "garments-label-studio")
    reconcile.reconcile(ctx, ns.stack())
    assert len(wiring.calls) == 1 and wiring.syncs == []  # wiring syncs the new source itself
    first = ns.stack()["status"]["sourcesSyncedAt"]

    reconcile.reconcile(ctx, ns.stack())
    assert len(wiring.calls) == 1 and wiring.syncs == []  # not due yet

    # Ten minutes later (as the status tells it), the next pass syncs the source alone.
    _synced_long_ago(server, ns)
    reconcile.reconcile(ctx, ns.stack())
    assert len(wiring.calls) == 1 and len(wiring.syncs) == 1
    assert ns.stack()["status"]["sourcesSyncedAt"] >= first


def test_an_interval_of_0_syncs_only_when_the_stack_changes(server, ctx, wiring):
    ns = Namespace(server, "no-periodic-sync")
    ns.create_stack(stack_with_source("0"))
    reconcile.reconcile(ctx, ns.stack())
    _mark_ready(ns, "garments-label-studio")
    reconcile.reconcile(ctx, ns.stack())
    _synced_long_ago(server, ns)
    reconcile.reconcile(ctx, ns.stack())
    assert len(wiring.calls) == 1 and wiring.syncs == []


def test_sync_intervals_are_read_in_seconds():
    project = parse_spec(stack_with_source("1h")).projects[0]
    assert project.gcs.source is not None and project.gcs.source.sync_seconds == 3600
    assert parse_spec(stack_with_source("45s")).projects[0].gcs.source.sync_seconds == 45  # type: ignore[union-attr]
