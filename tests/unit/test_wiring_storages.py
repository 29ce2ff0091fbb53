"""GCS storages that exist already: a rotated key is pushed to them, and sources can be re-synced
alone (the real storage calls are tested against Label Studio and the GCS emulator elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from labelstack_common.labelstudio import LabelStudioClient
from labelstack_common.wiring import GcsStorage, ProjectPlan, sync_sources, wire


@dataclass
class FakeStorageApi:
    storages: list[SimpleNamespace] = field(default_factory=list)
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def list(self, project: int) -> list[SimpleNamespace]:
        return [s for s in self.storages if s.project == project]

    def create(self, **args: Any) -> SimpleNamespace:
        storage = SimpleNamespace(**{"id": len(self.storages) + 1, "description": None, **args})
        self.storages.append(storage)
        self.calls.append(("create", args))
        return storage

    def update(self, id: int, **args: Any) -> None:
        self.calls.append(("update", (id, args)))
        vars(self.storages[id - 1]).update(args)

    def sync(self, id: int, request_options: Any = None) -> None:
        self.calls.append(("sync", id))


def fake_client() -> tuple[LabelStudioClient, FakeStorageApi, FakeStorageApi]:
    project = SimpleNamespace(
        id=7,
        title="Runway",
        label_config="<View/>",
        description="",
        evaluate_predictions_automatically=True,
        show_collab_predictions=True,
    )
    sources, targets = FakeStorageApi(), FakeStorageApi()
    sdk = SimpleNamespace(
        projects=SimpleNamespace(list=lambda **_: [project]),
        import_storage=SimpleNamespace(gcs=sources),
        export_storage=SimpleNamespace(gcs=targets),
    )
    client = LabelStudioClient("http://ls.invalid", "t" * 40)
    client._sdk = sdk  # type: ignore[assignment]
    return client, sources, targets


def plan(key: str) -> ProjectPlan:
    return ProjectPlan(
        title="Runway",
        label_config="<View/>",
        gcs_source=GcsStorage("runway-images", "ss26", credentials_json=key),
        gcs_target=GcsStorage("runway-labels", "exports", credentials_json=key),
    )


def test_a_rotated_key_is_pushed_to_the_existing_source_and_target_once():
    client, sources, targets = fake_client()
    wire(client, [plan('{"key": 1}')])
    assert [c[0] for c in sources.calls] == ["create", "sync"]
    again = wire(client, [plan('{"key": 1}')])
    assert not again.changed and [c[0] for c in sources.calls] == ["create", "sync", "sync"]

    rotated = wire(client, [plan('{"key": 2}')])
    assert rotated.projects[0].changes == [
        "updated the key of source gs://runway-images/ss26",
        "updated the key of target gs://runway-labels/exports",
    ]
    for api in (sources, targets):
        kind, (storage_id, args) = next(c for c in api.calls if c[0] == "update")
        assert storage_id == 1 and args["google_application_credentials"] == '{"key": 2}'
    assert not wire(client, [plan('{"key": 2}')]).changed


def test_sources_are_synced_alone_without_creating_anything():
    client, sources, targets = fake_client()
    assert sync_sources(client, [plan("{}")]) == []  # not wired yet: nothing to sync, nothing made
    assert sources.calls == []
    wire(client, [plan("{}")])
    before = len(targets.calls)
    assert sync_sources(client, [plan("{}")]) == ["gs://runway-images/ss26"]
    assert sources.calls[-1] == ("sync", 1) and len(targets.calls) == before
