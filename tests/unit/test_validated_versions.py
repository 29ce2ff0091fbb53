"""Validated versions without training: the held-out split, the promotion policy, promote and
roll back, retention, and trainings re-queued after their process died."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from labelstack_backend.registry import ModelRegistry
from labelstack_backend.server.app import create_app
from labelstack_backend.server.wsgi import build_service
from labelstack_backend.settings import Settings, SettingsError
from labelstack_backend.training.manager import TrainingManager
from labelstack_backend.training.promotion import PromotePolicy, decide, expired, rollback_target
from labelstack_backend.training.serving import NothingToRollBack, ServingControl, UnknownVersion
from labelstack_backend.training.state import FileJobStore, JobStatus
from labelstack_backend.training.validation import Evaluation, Scores, split_tasks


def scores(mask: float, box: float = 0.5) -> Evaluation:
    return Evaluation(Scores(mask * 1.5, mask, box * 1.5, box, images=6))


# -- the split -------------------------------------------------------------------------------------
def test_the_split_is_decided_by_task_id_alone() -> None:
    ids = list(range(1, 201))
    split = split_tasks(ids, 0.2, 5)
    assert split == split_tasks(reversed(ids), 0.2, 5), "any order, same split"
    assert set(split.train) | set(split.val) == set(ids) and not set(split.train) & set(split.val)
    assert 25 <= len(split.val) <= 55, "about a fifth"
    grown = split_tasks(range(1, 401), 0.2, 5)
    assert set(split.val) <= set(grown.val), "a validation task stays held out as the project grows"


def test_the_split_holds_out_a_minimum_but_never_more_than_half() -> None:
    assert len(split_tasks(range(1, 21), 0.0, 6).val) == 6
    assert len(split_tasks(range(1, 7), 0.2, 6).val) == 3
    assert split_tasks([5], 0.5, 2).val == (), "one task: nothing to hold out"


# -- the policy ------------------------------------------------------------------------------------
def test_if_better_serves_only_what_scores_better_than_the_serving_version() -> None:
    better = decide(PromotePolicy.IF_BETTER, scores(0.4), scores(0.3), "v1")
    assert better.promote and "0.400 vs 0.300" in better.reason
    worse = decide(PromotePolicy.IF_BETTER, scores(0.2), scores(0.3), "v1")
    assert not worse.promote and worse.reason.startswith("not better on validation")
    tie = decide(PromotePolicy.IF_BETTER, scores(0.3), scores(0.3), "v1")
    assert not tie.promote, "a tie keeps what serves"
    first = decide(PromotePolicy.IF_BETTER, scores(0.1), Evaluation(None, "no fine-tuned version"), None)
    assert first.promote and "nothing comparable serves" in first.reason
    unvalidated = Evaluation(None, "too few finished annotations")
    assert decide(PromotePolicy.IF_BETTER, unvalidated, unvalidated, None).promote
    assert not decide(PromotePolicy.IF_BETTER, unvalidated, scores(0.3), "v1").promote


def test_always_and_manual_ignore_the_scores() -> None:
    assert decide(PromotePolicy.ALWAYS, scores(0.1), scores(0.9), "v1").promote
    manual = decide(PromotePolicy.MANUAL, scores(0.9), scores(0.1), "v1")
    assert not manual.promote and "POST /versions/promote" in manual.reason
    assert manual.to_json() == {"policy": "manual", "promoted": False, "reason": manual.reason}


def test_the_policy_is_a_setting_with_if_better_by_default() -> None:
    assert Settings.from_env({}).promote is PromotePolicy.IF_BETTER
    assert Settings.from_env({"LABELSTACK_PROMOTE": "manual"}).promote is PromotePolicy.MANUAL
    with pytest.raises(SettingsError, match="LABELSTACK_PROMOTE"):
        Settings.from_env({"LABELSTACK_PROMOTE": "sometimes"})


def test_rollback_goes_to_what_served_before_and_retention_spares_the_serving_one() -> None:
    history = [{"version": "v1"}, {"version": "v2"}, {"version": "v3"}]
    assert rollback_target(history, "v3", {"v1", "v2", "v3"}) == "v2"
    assert rollback_target(history, "v3", {"v1", "v3"}) == "v1", "a pruned version is skipped"
    assert rollback_target([*history, {"version": "v2"}], "v2", {"v1", "v2", "v3"}) == "v3"
    assert rollback_target([{"version": "v1"}], "v1", {"v1"}) is None
    assert expired(["v1", "v2", "v3", "v4"], "v1", 2) == ["v2"]
    assert expired(["v1", "v2", "v3"], "v3", 5) == []


# -- switching and retention on a real registry ----------------------------------------------------
def publish(registry: ModelRegistry, tmp_path: Path, n: int, serve: bool = True) -> str:
    weights = tmp_path / f"w{n}.pt"
    weights.write_bytes(f"weights {n}".encode())
    meta = {"promotion": {"policy": "if-better", "promoted": serve, "reason": f"run {n}"}}
    return registry.publish("7", weights, base="yolov8n-seg", meta=meta, serve=serve).name


def test_promote_and_rollback_switch_the_pointer_and_announce_it(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    told: list[tuple[str, str]] = []
    control = ServingControl(registry, keep=5, announce=lambda p, v: told.append((p, v)))
    v1 = publish(registry, tmp_path, 1)
    v2 = publish(registry, tmp_path, 2, serve=False)
    assert registry.current_name("7") == v1, "kept, not served"
    with pytest.raises(UnknownVersion, match="no version 'v9'"):
        control.promote("7", "v9")
    assert control.promote("7", v2)["serving"] == v2 and registry.current_name("7") == v2
    assert control.rollback("7")["serving"] == v1 and registry.current_name("7") == v1
    assert told == [("7", v2), ("7", v1)]
    described = control.describe("7")
    assert described["serving"] == v1
    assert [(d["version"], d["serving"]) for d in described["details"]] == [(v1, True), (v2, False)]
    assert [h["action"] for h in described["history"]] == ["published", "promote", "rollback"]


def test_rollback_with_nothing_before_is_refused(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    publish(registry, tmp_path, 1)
    with pytest.raises(NothingToRollBack) as err:
        ServingControl(registry, keep=5).rollback("7")
    assert err.value.status == 409


def test_retention_keeps_the_last_k_and_never_the_serving_one(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    control = ServingControl(registry, keep=2)
    v1 = publish(registry, tmp_path, 1)
    later = [publish(registry, tmp_path, n, serve=False) for n in range(2, 6)]
    gone = control.prune("7")
    assert gone == later[:2]
    assert [v.name for v in registry.versions("7")] == [v1, *later[2:]], "the serving v1 stays"
    assert registry.current_name("7") == v1
    v6 = publish(registry, tmp_path, 6, serve=False)
    assert "-v6-" in v6, "numbers never repeat after a deletion"


# -- re-queued trainings ---------------------------------------------------------------------------
def spawned(into: list[str]):
    def spawn(project: str, env):
        into.append(project)
        return subprocess.Popen([sys.executable, "-c", "pass"])

    return spawn


def test_a_training_whose_process_died_is_requeued_and_says_so(tmp_path: Path) -> None:
    store = FileJobStore(tmp_path)
    store.update("4", lambda s: replace(s, status=JobStatus.RUNNING, runs=1, extra={"owner": "pod-a:17"}))
    started: list[str] = []
    manager = TrainingManager(store, spawn=spawned(started))
    held = store.try_lock("4", "a live job", 60)
    assert held is not None
    assert manager.requeue_dead(lambda p: None) == [], "a job holding the lock is alive"
    held.release()
    (state,) = manager.requeue_dead(lambda p: None)
    assert started == ["4"]
    assert state.status is JobStatus.QUEUED and "pod-a:17" in state.requeued
    assert manager.requeue_dead(lambda p: None) == [], "queued now, with a fresh heartbeat"
    assert manager.join(10)


def test_a_queued_training_is_requeued_once_its_heartbeat_stopped(tmp_path: Path) -> None:
    store = FileJobStore(tmp_path)
    store.update("5", lambda s: replace(s, status=JobStatus.QUEUED))
    started: list[str] = []
    manager = TrainingManager(store, spawn=spawned(started))
    assert manager.requeue_dead(lambda p: None) == [], "waiting for the lock, alive"
    old = store.get("5")
    # The heartbeat stopped ten minutes ago (update() would stamp it fresh).
    store._path("5").write_text(json.dumps(replace(old, updated_at=time.time() - 600).to_json()))
    assert [s.project for s in manager.requeue_dead(lambda p: None)] == ["5"] and started == ["5"]
    assert manager.join(10)


# -- the routes ------------------------------------------------------------------------------------
@pytest.fixture
def app_and_registry(tmp_path: Path):
    settings = Settings.from_env({"LABELSTACK_DEMO_MODEL": "1", "MODEL_DIR": str(tmp_path / "models")})
    service = build_service(settings)  # the routes below need no loaded model
    return create_app(service).test_client(), ModelRegistry(settings.model_dir_resolved), service


def test_promote_and_rollback_routes_and_what_versions_and_metrics_show(app_and_registry, tmp_path) -> None:
    client, registry, service = app_and_registry
    v1 = publish(registry, tmp_path, 1)
    v2 = publish(registry, tmp_path, 2, serve=False)
    assert client.post("/versions/promote", json={"version": v2}).status_code == 400
    missing = client.post("/versions/promote?project=7&version=nope")
    assert missing.status_code == 404 and "no version 'nope'" in missing.json["error"]
    assert client.post("/versions/promote", json={"project": 7, "version": v2}).json["serving"] == v2
    info = client.get("/versions?project=7").json
    assert info["serving"] == v2 and info["model_version"] == v2
    assert [d["promotion"]["reason"] for d in info["details"]] == ["run 1", "run 2"]
    assert client.post("/versions/rollback?project=7").json["serving"] == v1
    assert client.get("/versions?project=7").json["model_version"] == v1
    assert client.post("/versions/rollback?project=7").json["serving"] == v2, "undoes the rollback"
    metrics = client.get("/metrics").text
    assert f'labelstack_version_serving{{project="7",version="{v2}"}} 1.0' in metrics
    assert f'labelstack_version_promoted{{project="7",version="{v2}"}} 0.0' in metrics


def test_versions_says_a_training_was_requeued(app_and_registry) -> None:
    client, _, service = app_and_registry
    why = "re-queued: the training that was running in pod-a:17 stopped with it"
    service.trainer.store.update("8", lambda s: replace(s, status=JobStatus.QUEUED, requeued=why, runs=1))
    assert client.get("/versions?project=8").json["training"]["requeued"] == why


def test_a_version_a_training_promoted_is_prelabeled_once(tmp_path: Path, monkeypatch) -> None:
    env = {"LABELSTACK_DEMO_MODEL": "1", "MODEL_DIR": str(tmp_path), "LABELSTACK_PRELABEL_ON_PROMOTE": "1"}
    service = build_service(Settings.from_env(env))
    asked: list[tuple[str, str]] = []
    monkeypatch.setattr(
        service, "prelabel", lambda project, why="": asked.append((project, why)) or (201, {})
    )
    store = service.trainer.store

    def done(version: str, promoted: bool) -> None:
        store.update(
            "9",
            lambda s: replace(
                s, status=JobStatus.DONE, version=version, extra={**s.extra, "promoted": promoted}
            ),
        )

    done("v1", True)
    service.sweep_trainings()
    service.sweep_trainings()
    assert asked == [("9", "a version was promoted")], "once per promoted version"
    done("v2", False)
    service.sweep_trainings()
    assert len(asked) == 1, "a version kept unserved is not pre-labeled"
    done("v3", True)
    service.sweep_trainings()
    assert len(asked) == 2
