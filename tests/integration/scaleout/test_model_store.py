"""Fine-tuned versions in gs:// (the GCS emulator): replicas that share no disk share models."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from labelstack_backend.registry import ModelRegistry, open_registry
from labelstack_backend.registry.gcs import GcsModelRegistry
from labelstack_backend.settings import Settings
from tests.support.gcs_emulator import GcsEmulator, make_bucket

pytestmark = pytest.mark.integration


@pytest.fixture
def store_uri(gcs_emulator: GcsEmulator) -> str:
    make_bucket("labelstack-models")
    return f"gs://labelstack-models/{uuid.uuid4().hex[:8]}/seg"


def test_a_version_published_by_one_replica_is_served_by_another(store_uri: str, tmp_path: Path) -> None:
    a = GcsModelRegistry.from_uri(store_uri, ModelRegistry(tmp_path / "a"))
    b = GcsModelRegistry.from_uri(store_uri, ModelRegistry(tmp_path / "b"))
    assert a.current_name("4") is None and b.versions("4") == [] and b.projects() == []
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"weights one")
    v1 = a.publish("4", weights, base="yolov8n-seg", meta={"images": 3})
    weights.write_bytes(b"weights two")
    v2 = a.publish("4", weights, base="yolov8n-seg", meta={"images": 5})
    assert v2.name.startswith("yolov8n-seg-p4-v2-")
    # B has nothing on its disk, and finds the same truth in the bucket.
    assert not (tmp_path / "b" / "projects").exists()
    assert b.current_name("4") == v2.name
    assert [v.name for v in b.versions("4")] == [v1.name, v2.name]
    assert b.versions("4")[0].meta["images"] == 3
    assert b.projects() == ["4"]
    got = b.get("4", v2.name)
    assert got is not None and got.path.read_bytes() == b"weights two"
    assert got.path.is_relative_to(tmp_path / "b"), "served from B's own mirror"
    assert b.current("4").name == v2.name  # type: ignore[union-attr]
    assert b.get("4", "no-such-version") is None


def test_model_store_setting_picks_the_bucket(store_uri: str, tmp_path: Path) -> None:
    settings = Settings.from_env({"MODEL_DIR": str(tmp_path), "LABELSTACK_MODEL_STORE": store_uri})
    store = open_registry(settings)
    assert isinstance(store, GcsModelRegistry) and not store.local_pointer
    assert store.location == store_uri
    local = open_registry(Settings.from_env({"MODEL_DIR": str(tmp_path)}))
    assert isinstance(local, ModelRegistry) and local.local_pointer


def test_a_model_store_that_is_not_gs_is_refused() -> None:
    with pytest.raises(ValueError, match="gs://bucket"):
        Settings.from_env({"LABELSTACK_MODEL_STORE": "s3://elsewhere/models"})
