"""Which fine-tuned version serves a project, and when it switches (no model is really loaded)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from labelstack_backend.coordination.versions import Announcement
from labelstack_backend.predictors import segmentation
from labelstack_backend.registry import ModelRegistry
from labelstack_backend.settings import Settings
from labelstack_backend.yolo.versions import SegmentationModels, VersionFollower


class FakeModel:
    def __init__(self, version: str) -> None:
        self.version = version


class CountingRegistry(ModelRegistry):
    """A real registry that counts pointer reads and can pretend to be remote."""

    def __init__(self, root: Path, *, local: bool) -> None:
        super().__init__(root)
        self.local_pointer = local
        self.reads = 0

    def current_name(self, project: str) -> str | None:
        self.reads += 1
        return super().current_name(project)


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    loaded: list[str] = []
    gate = threading.Event()
    gate.set()

    def fake_load(cls: Any, source: str, version: str, **kwargs: Any) -> FakeModel:
        gate.wait(5)
        loaded.append(version)
        if "broken" in version:
            raise RuntimeError("unreadable weights")
        return FakeModel(version)

    monkeypatch.setattr(segmentation.SegmentationModel, "load", classmethod(fake_load))
    return loaded


def models(tmp_path: Path, *, local: bool, redis: bool) -> tuple[SegmentationModels, CountingRegistry]:
    env = {"LABELSTACK_DEMO_MODEL": "1", "MODEL_DIR": str(tmp_path)}
    if redis:
        env["REDIS_URL"] = "redis://127.0.0.1:1/0"
    registry = CountingRegistry(tmp_path, local=local)
    m = SegmentationModels(Settings.from_env(env), registry)
    m.base = FakeModel("base")  # type: ignore[assignment]
    return m, registry


def publish(registry: ModelRegistry, tmp_path: Path, content: bytes) -> str:
    weights = tmp_path / "w.pt"
    weights.write_bytes(content)
    return registry.publish("1", weights, base="yolov8n-seg", meta={}).name


def test_one_replica_on_a_local_disk_follows_the_pointer_on_every_request(tmp_path, loads) -> None:
    m, registry = models(tmp_path, local=True, redis=False)
    assert m.per_request
    assert m.model_for("1").version == "base"
    v1 = publish(registry, tmp_path, b"one")
    assert m.model_for("1").version == v1 and m.version_for("1") == v1
    assert m.model_for("1").version == v1
    assert loads == [v1], "loaded once"


def test_scaled_out_requests_use_the_served_version_and_announcements_switch_it(tmp_path, loads) -> None:
    m, registry = models(tmp_path, local=True, redis=True)
    assert not m.per_request
    assert m.model_for("1").version == "base"
    reads = registry.reads
    v1 = publish(registry, tmp_path, b"one")
    for _ in range(5):
        assert m.model_for("1").version == "base", "no per-request pointer reads when scaled out"
    assert registry.reads == reads
    follower = VersionFollower(m, None, poll_seconds=60)
    follower._announced(Announcement("1", v1, published_at=0.0))
    assert m.model_for("1").version == v1 and m.version_for("1") == v1
    assert loads == [v1]


def test_a_poll_catches_a_missed_announcement_and_a_repeated_pointer_is_a_no_op(tmp_path, loads) -> None:
    m, registry = models(tmp_path, local=False, redis=False)
    assert not m.per_request
    m.model_for("1")
    v1 = publish(registry, tmp_path, b"one")
    m.resync()
    assert m.model_for("1").version == v1
    m.resync()
    assert loads == [v1]


def test_a_version_that_fails_to_load_is_not_switched_to(tmp_path, loads) -> None:
    m, registry = models(tmp_path, local=True, redis=True)
    v1 = publish(registry, tmp_path, b"one")
    assert m.model_for("1").version == v1
    assert not m.observe("1", "yolov8n-seg-p1-v9-missing"), "a missing version"
    assert m.model_for("1").version == v1
    broken = registry.install("1", "broken-v2", lambda d: (d / "model.pt").write_bytes(b"x"))
    assert not m.observe("1", broken.name)
    assert m.model_for("1").version == v1, "the old version serves on"


def test_the_old_version_serves_while_the_new_one_loads(tmp_path, loads, monkeypatch) -> None:
    m, registry = models(tmp_path, local=True, redis=True)
    v1 = publish(registry, tmp_path, b"one")
    assert m.model_for("1").version == v1
    v2 = publish(registry, tmp_path, b"two")
    release = threading.Event()
    original = segmentation.SegmentationModel.load

    def slow(source: str, version: str, **kw: Any) -> Any:
        release.wait(5)
        return original(source, version, **kw)

    monkeypatch.setattr(segmentation.SegmentationModel, "load", slow)
    switching = threading.Thread(target=m.observe, args=("1", v2))
    switching.start()
    try:
        assert m.model_for("1").version == v1 and m.version_for("1") == v1
    finally:
        release.set()
        switching.join(5)
    assert m.model_for("1").version == v2


def test_a_replica_that_starts_later_serves_the_current_version_from_its_first_request(
    tmp_path, loads
) -> None:
    first, registry = models(tmp_path, local=False, redis=True)
    v1 = publish(registry, tmp_path, b"one")
    later, _ = models(tmp_path, local=False, redis=True)
    assert later.version_for("1") == v1
    assert later.model_for("1").version == v1
    assert first.model_for("1").version == v1
