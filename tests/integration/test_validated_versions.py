"""Validated versions for real: two trainings of the job on synthetic shapes, scored by
ultralytics on the same held-out split. The better one serves; the deliberately worse one (one
epoch at 32 px, a large learning rate) is kept but not promoted; promote and roll back reach both
gunicorn workers (through Redis announcements, or the pointer every request reads); and a
training its process's end interrupted is re-queued when the backend starts."""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from labelstack_backend.registry import ModelRegistry
from labelstack_backend.registry.gcs import GcsModelRegistry
from labelstack_backend.settings import Settings
from labelstack_backend.training.job import train_once
from labelstack_backend.training.serving import ServingControl
from labelstack_backend.training.state import FileJobStore, JobState, JobStatus
from labelstack_tools.cli.main import main as labelstack
from tests.support.backend import run_backend, versions
from tests.support.gcs_emulator import GcsEmulator, make_bucket
from tests.support.redis_server import RedisServer
from tests.support.synthetic import SHAPES_CONFIG, scene
from tests.support.training_source import shapes_source
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROJECT = "1"
GOOD = {
    "LABELSTACK_TRAIN_EPOCHS": "30",
    "LABELSTACK_TRAIN_IMGSZ": "128",
    "LABELSTACK_TRAIN_EXTRA": '{"lr0": 0.02}',
}
WORSE = {
    "LABELSTACK_TRAIN_EPOCHS": "1",
    "LABELSTACK_TRAIN_IMGSZ": "32",
    "LABELSTACK_TRAIN_EXTRA": '{"lr0": 0.2}',
}


@dataclass
class Trained:
    model_dir: Path
    good: str
    worse: str
    jobs: list[JobState]

    def meta(self, name: str) -> dict[str, Any]:
        version = ModelRegistry(self.model_dir).get(PROJECT, name)
        assert version is not None
        return version.meta


def settings(model_dir: Path, run: dict[str, str]) -> Settings:
    extra = json.loads(run["LABELSTACK_TRAIN_EXTRA"])
    return Settings.from_env(
        {
            "LABELSTACK_DEMO_MODEL": "1",
            "MODEL_DIR": str(model_dir),
            "LABELSTACK_DEVICE": "cpu",
            "LABELSTACK_TRAIN_DEVICE": "cpu",
            "LABELSTACK_IMGSZ": "128",  # both models are scored at the size predictions are made
            "LABELSTACK_TRAIN_BATCH": "8",
            "LABELSTACK_VAL_MIN": "6",
            **run,
            "LABELSTACK_TRAIN_EXTRA": json.dumps({**extra, "mosaic": 0.0, "warmup_epochs": 0}),
        }
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """The good run (promoted: nothing fine-tuned served), then the worse run from it."""
    model_dir = tmp_path_factory.mktemp("validated") / "models"
    rng = np.random.default_rng(0)
    source = shapes_source([scene(rng) for _ in range(40)])
    store = FileJobStore(model_dir)
    jobs = []
    for run in (GOOD, WORSE):
        state = train_once(settings(model_dir, run), PROJECT, store, source=source)
        assert state is not None and state.status is JobStatus.DONE
        jobs.append(state)
    return Trained(model_dir, jobs[0].version, jobs[1].version, jobs)


def test_the_better_model_serves_and_the_worse_run_is_kept_but_not_promoted(trained: Trained) -> None:
    registry = ModelRegistry(trained.model_dir)
    assert [v.name for v in registry.versions(PROJECT)] == [trained.good, trained.worse], "both kept"
    assert registry.current_name(PROJECT) == trained.good
    good, worse = trained.meta(trained.good), trained.meta(trained.worse)
    assert good["promotion"]["promoted"] and not worse["promotion"]["promoted"]
    assert worse["promotion"]["policy"] == "if-better"
    assert worse["promotion"]["reason"].startswith("not better on validation")
    assert trained.jobs[1].extra["promoted"] is False
    # Both were scored on the same held-out tasks, the serving one included.
    split = good["validation"]["split"]
    assert split["val"] >= 6 and split["train"] + split["val"] == 40
    assert worse["validation"]["split"] == split
    assert worse["validation"]["serving"]["version"] == trained.good
    assert worse["validation"]["serving"]["scores"] == good["validation"]["candidate"]["scores"]
    g, w = good["validation"]["candidate"]["scores"], worse["validation"]["candidate"]["scores"]
    print(
        f"held-out mask mAP50-95 / mAP50: good {g['mask']} vs worse {w['mask']}; box {g['box']} vs {w['box']}"
    )
    assert g["mask"]["map50_95"] > w["mask"]["map50_95"] and g["mask"]["map50"] > 0.3


def served_by_every_worker(url: str, want: str) -> bool:
    """/setup answers the project's version without loading anything; twelve calls reach both
    workers (gunicorn's two processes take connections in turn)."""
    body = {"project": f"{PROJECT}.1700000000", "schema": SHAPES_CONFIG}
    seen = {requests.post(f"{url}/setup", json=body, timeout=10).json()["model_version"] for _ in range(12)}
    return seen == {want}


@pytest.mark.parametrize("with_redis", [False, True], ids=["pointer", "redis"])
def test_promote_and_rollback_switch_every_worker(
    trained: Trained, tmp_path: Path, with_redis: bool, request: pytest.FixtureRequest
) -> None:
    shutil.copytree(trained.model_dir, tmp_path / "models")
    env = {"LABELSTACK_DEMO_MODEL": "1", "LABELSTACK_IMGSZ": "128", "WORKERS": "2"}
    if with_redis:
        redis: RedisServer = request.getfixturevalue("redis_server")
        env |= {**redis.env, "LABELSTACK_REDIS_PREFIX": f"labelstack:test:{uuid.uuid4().hex[:8]}"}
        env["LABELSTACK_VERSION_POLL_SECONDS"] = "600"  # a switch can only come from an announcement
    with run_backend(tmp_path, env) as backend:
        wait_for(
            "both workers on the good version", lambda: served_by_every_worker(backend.url, trained.good)
        )
        promoted = requests.post(
            f"{backend.url}/versions/promote", json={"project": PROJECT, "version": trained.worse}, timeout=10
        )
        assert promoted.status_code == 200 and promoted.json()["was"] == trained.good
        wait_for(
            "both workers on the promoted version", lambda: served_by_every_worker(backend.url, trained.worse)
        )

        assert labelstack(["model", "rollback", "--project", PROJECT, "--backend", backend.url]) == 0
        wait_for(
            "both workers back on the good version", lambda: served_by_every_worker(backend.url, trained.good)
        )
        info = versions(backend.url, int(PROJECT))
        assert info["serving"] == trained.good
        assert [h["action"] for h in info["history"]] == ["trained", "promote", "rollback"]
        assert "Traceback" not in backend.log()


def test_a_training_running_when_its_backend_stopped_is_requeued_on_start(tmp_path: Path) -> None:
    """The job state says running, but its process is gone with the backend that started it."""
    store = FileJobStore(tmp_path / "models")
    store.update(
        PROJECT,
        lambda s: replace(s, status=JobStatus.RUNNING, runs=1, epoch=3, extra={"owner": "old-pod:42"}),
    )
    with run_backend(tmp_path, {"LABELSTACK_DEMO_MODEL": "1"}) as backend:
        job = wait_for(
            "the training to be re-queued",
            lambda: (t := versions(backend.url, int(PROJECT))["training"])["requeued"] and t,
        )
        assert "old-pod:42" in job["requeued"] and job["runs"] >= 1
        # Without Label Studio the re-run fails, and says why; the note stays.
        ended = wait_for(
            "the re-queued run to end",
            lambda: (t := versions(backend.url, int(PROJECT))["training"])["status"] == "failed" and t,
        )
        assert "Label Studio" in ended["reason"] and ended["requeued"] == job["requeued"]


def test_in_a_bucket_a_switch_and_a_pruned_version_are_seen_by_another_replica(
    gcs_emulator: GcsEmulator, tmp_path: Path
) -> None:
    make_bucket("labelstack-models")
    uri = f"gs://labelstack-models/{uuid.uuid4().hex[:8]}/seg"
    a = GcsModelRegistry.from_uri(uri, ModelRegistry(tmp_path / "a"))
    b = GcsModelRegistry.from_uri(uri, ModelRegistry(tmp_path / "b"))
    weights = tmp_path / "best.pt"
    names = []
    for n in range(3):
        weights.write_bytes(f"weights {n}".encode())
        names.append(a.publish("4", weights, base="yolov8n-seg", meta={}, serve=n == 0).name)
    assert b.current_name("4") == names[0], "kept versions do not serve"
    control = ServingControl(a, keep=1)
    control.promote("4", names[2])
    assert b.current_name("4") == names[2] and b.get("4", names[2]) is not None
    assert ServingControl(b, keep=1).rollback("4")["serving"] == names[0]
    assert a.current_name("4") == names[0]
    assert control.prune("4") == [names[1]], "the newest and the serving one stay"
    assert [v.name for v in b.versions("4")] == [names[0], names[2]]
    assert [h["action"] for h in b.history("4")] == ["published", "promote", "rollback"]
