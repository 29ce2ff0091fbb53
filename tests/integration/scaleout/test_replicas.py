"""Several backend replicas (gunicorn processes on their own ports) behave as one through a
real Redis: one training, one model version everywhere, warm clicks on any replica, and
serving on through a Redis outage."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from labelstack_backend import rle
from tests.support.backend import BackendServer, run_replicas, trainers, training_ended, versions
from tests.support.gcs_emulator import GcsEmulator, make_bucket
from tests.support.projects import DEMO_SHAPES_CONFIG, ShapesProject, shapes_project
from tests.support.redis_server import RedisServer
from tests.support.sam import CONFIG as SAM_CONFIG
from tests.support.sam import keypoint, metric, write_image
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SIZES = [(160, 128), (128, 160), (160, 160)]


def seg_env(ls: Any, redis: RedisServer, **extra: str) -> dict[str, str]:
    return {
        "LABELSTACK_DEMO_MODEL": "1",
        "LABEL_STUDIO_URL": ls.url,
        "LABEL_STUDIO_API_KEY": ls.token,
        "LABELSTACK_SCORE_THRESHOLD": "0.0",
        "LABELSTACK_IMGSZ": "128",
        "LABELSTACK_TRAIN_EPOCHS": "2",
        "LABELSTACK_TRAIN_IMGSZ": "96",
        "LABELSTACK_TRAIN_BATCH": "4",
        "LABELSTACK_TRAIN_EXTRA": json.dumps({"mosaic": 0.0, "warmup_epochs": 0}),
        "LABELSTACK_REDIS_PREFIX": f"labelstack:test:{uuid.uuid4().hex[:8]}",
        # Long polls: a switch within seconds can only come from an announcement.
        "LABELSTACK_VERSION_POLL_SECONDS": "60",
        **redis.env,
        **extra,
    }


def annotated_project(ls: Any) -> ShapesProject:
    made = shapes_project(ls, SIZES, DEMO_SHAPES_CONFIG)
    for task, sc in zip(made.tasks, made.scenes, strict=True):
        ls.client.sdk.annotations.create(id=task["id"], result=sc.polygon_regions(), was_cancelled=False)
    return made


def setup_version(server: BackendServer, project: int) -> str:
    body = {"project": f"{project}.1700000000", "schema": DEMO_SHAPES_CONFIG}
    return str(requests.post(f"{server.url}/setup", json=body, timeout=5).json()["model_version"])


def predict(server: BackendServer, made: ShapesProject) -> dict[str, Any]:
    body = {
        "tasks": made.tasks,
        "project": f"{made.project.id}.1700000000",
        "label_config": DEMO_SHAPES_CONFIG,
    }
    resp = requests.post(f"{server.url}/predict", json=body, timeout=120)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def training(server: BackendServer, project: int) -> dict[str, Any]:
    return dict(versions(server.url, project)["training"])


def start_training(server: BackendServer, project: int) -> requests.Response:
    return requests.post(
        f"{server.url}/webhook", json={"action": "START_TRAINING", "project": {"id": project}}, timeout=10
    )


def metrics_of(server: BackendServer) -> str:
    return requests.get(f"{server.url}/metrics", timeout=10).text


def test_training_started_through_a_is_served_by_a_and_b_from_a_bucket(
    label_studio: Any, redis_server: RedisServer, gcs_emulator: GcsEmulator, tmp_path: Path
) -> None:
    """No shared disk: A and B each have their own MODEL_DIR; the versions live in gs://."""
    made = annotated_project(label_studio)
    make_bucket("labelstack-replicas")
    env = seg_env(
        label_studio, redis_server, LABELSTACK_MODEL_STORE=f"gs://labelstack-replicas/{uuid.uuid4().hex}"
    )
    with run_replicas([tmp_path / "a", tmp_path / "b"], env) as (a, b):
        ml = label_studio.client.sdk.ml.create(project=made.project.id, url=a.url, title="segmentation")
        base = setup_version(a, made.project.id)
        assert setup_version(b, made.project.id) == base
        assert predict(b, made)["model_version"] == base  # B serves the project before the training
        label_studio.client.sdk.ml.train(id=ml.id)

        done = training_ended(b.url, made.project.id)  # the job ran on A; B reads its state from Redis
        assert done["status"] == "done", done
        new = done["version"]
        published = time.monotonic()
        wait_for(
            "both replicas to switch",
            lambda: {setup_version(s, made.project.id) for s in (a, b)} == {new},
            15,
        )
        assert time.monotonic() - published < 15
        answer = predict(b, made)
        assert answer["model_version"] == new
        assert all(r.get("model_version") == new and "result" in r for r in answer["results"])
        # B got the weights from the bucket into its own MODEL_DIR.
        assert list((tmp_path / "b" / "models").rglob(f"{new}/model.pt"))
        assert (
            metric(metrics_of(b), "labelstack_training_status", project=str(made.project.id), status="done")
            == 1
        )
        assert metric(metrics_of(b), "labelstack_model_switch_seconds_count") >= 1
        for server in (a, b):
            assert "Traceback" not in server.log()


def test_start_training_on_a_and_b_at_once_trains_once(
    label_studio: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    """A shared MODEL_DIR stands for a ReadWriteMany volume."""
    made = annotated_project(label_studio)
    env = seg_env(label_studio, redis_server, MODEL_DIR=str(tmp_path / "shared-models"))
    with run_replicas([tmp_path / "a", tmp_path / "b"], env) as replicas:
        barrier = threading.Barrier(len(replicas))
        answers: list[requests.Response] = []

        def press(server: BackendServer) -> None:
            barrier.wait()
            answers.append(start_training(server, made.project.id))

        threads = [threading.Thread(target=press, args=(s,)) for s in replicas]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.status_code for r in answers) == [200, 201], [r.text for r in answers]
        assert sorted(r.json()["status"] for r in answers) == ["already_running", "started"]
        done = training_ended(replicas[0].url, made.project.id)
        assert done["status"] == "done" and done["runs"] == 1, done
        listed = versions(replicas[1].url, made.project.id)["versions"]
        assert len(listed) == 2, "the base model and exactly one trained version"
        wait_for("the job process to exit", lambda: sum(len(trainers(s)) for s in replicas) == 0, 30)


def test_an_embedding_computed_on_a_makes_the_first_click_on_b_warm(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    env = {
        "LABELSTACK_PREDICTOR": "sam",
        "LABELSTACK_SAM_MODEL_TYPE": "tiny",
        "LABELSTACK_DEMO_MODEL": "1",
        "LABELSTACK_REDIS_PREFIX": f"labelstack:test:{uuid.uuid4().hex[:8]}",
        **redis_server.env,
    }
    image = write_image(tmp_path / "shared.jpg", (96, 64))
    with run_replicas([tmp_path / "a", tmp_path / "b"], env) as (a, b):
        answers = [click(s, image) for s in (a, b)]
        ma, mb = (metrics_of(s) for s in (a, b))
        assert metric(ma, "labelstack_sam_encoder_calls_total") == 1
        assert metric(mb, "labelstack_sam_encoder_calls_total") == 0, "B never ran its encoder"
        assert metric(mb, "labelstack_sam_cache_lookups_total", source="second_level") == 1
        assert metric(mb, "labelstack_sam_shared_cache_entries") == 1
        assert (
            0
            < metric(mb, "labelstack_sam_shared_cache_bytes")
            <= metric(mb, "labelstack_sam_shared_cache_max_bytes")
        )
        masks = [mask_of(answer) for answer in answers]
        overlap = (masks[0] & masks[1]).sum() / max(1, (masks[0] | masks[1]).sum())
        assert overlap >= 0.95, "B's mask from the fp16 shared embedding matches A's"
        click(b, image)
        assert metric(metrics_of(b), "labelstack_sam_cache_lookups_total", source="memory") == 1


def click(server: BackendServer, image: Path) -> dict[str, Any]:
    body = {
        "tasks": [{"id": 1, "data": {"image": str(image)}}],
        "project": "1.1700000000",
        "label_config": SAM_CONFIG,
        "params": {"context": {"result": [keypoint(40, 45, 96, 64)]}},
    }
    resp = requests.post(f"{server.url}/predict", json=body, timeout=60)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def degraded(server: BackendServer) -> dict[str, Any] | None:
    """The /health body when it answers 200 and says degraded, else None."""
    health = requests.get(f"{server.url}/health", timeout=5)
    body = dict(health.json())
    return body if health.status_code == 200 and body["degraded"] else None


def mask_of(answer: dict[str, Any]) -> Any:
    region = answer["results"][0]["result"][0]
    return rle.decode(region["value"]["rle"], region["original_height"], region["original_width"]).astype(
        bool
    )


def test_a_redis_outage_degrades_coordination_only_and_coordination_resumes(
    label_studio: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    made = annotated_project(label_studio)
    seg = seg_env(label_studio, redis_server, MODEL_DIR=str(tmp_path / "shared-models"))
    sam = {
        "LABELSTACK_PREDICTOR": "sam",
        "LABELSTACK_SAM_MODEL_TYPE": "tiny",
        "LABELSTACK_DEMO_MODEL": "1",
        "LABELSTACK_REDIS_PREFIX": f"labelstack:test:{uuid.uuid4().hex[:8]}",
        **redis_server.env,
    }
    with (
        run_replicas([tmp_path / "a", tmp_path / "b"], seg) as (a, b),
        run_replicas([tmp_path / "sam"], sam) as (sam_a,),
    ):
        base = predict(b, made)["model_version"]
        redis_server.stop()

        # Serving goes on: predictions and clicks on images never seen before.
        assert all("result" in r for r in predict(a, made)["results"])
        assert mask_of(click(sam_a, write_image(tmp_path / "outage.jpg", (96, 64), seed=5))).any()
        for server in (a, b, sam_a):  # each notices within its monitor's interval (2 s), traffic or not
            body = wait_for("health to say degraded", lambda s=server: degraded(s), 10)
            assert body["status"] == "UP" and body["redis"]["status"] == "down" and body["redis"]["reason"]
            assert metric(metrics_of(server), "labelstack_redis_up") == 0
        refused = start_training(a, made.project.id)
        assert refused.status_code == 503 and "Redis" in refused.json()["error"], refused.text
        assert "twice" in refused.reason, "Label Studio shows the HTTP reason phrase"
        assert training(b, made.project.id)["status"] == "unknown"

        redis_server.start()
        for server in (a, b, sam_a):
            wait_for("health to recover", lambda s=server: degraded(s) is None, 20)
            assert metric(metrics_of(server), "labelstack_redis_up") == 1
        # Coordination resumes: a training through A, its state seen by B, and both switch.
        assert start_training(a, made.project.id).status_code == 201
        done = training_ended(b.url, made.project.id)
        assert done["status"] == "done", done
        assert done["version"] != base
        wait_for(
            "both replicas to switch after the outage",
            lambda: {setup_version(s, made.project.id) for s in (a, b)} == {done["version"]},
            15,
        )


def test_the_lock_of_a_killed_trainer_expires_and_the_next_training_runs(
    label_studio: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    made = annotated_project(label_studio)
    env = seg_env(
        label_studio,
        redis_server,
        MODEL_DIR=str(tmp_path / "shared-models"),
        LABELSTACK_TRAIN_LOCK_TTL="3",
        LABELSTACK_TRAIN_EPOCHS="200",  # long enough to be killed while it runs
    )
    with run_replicas([tmp_path / "a", tmp_path / "b"], env) as (a, b):
        assert start_training(a, made.project.id).status_code == 201
        wait_for("the training to run", lambda: training(b, made.project.id)["status"] == "running", 120)
        (job,) = trainers(a)
        lock_key = f"{env['LABELSTACK_REDIS_PREFIX']}:train-lock:{made.project.id}"
        holder = redis_server.client().get(lock_key)
        assert holder is not None and holder.decode().endswith(f":{job.pid}")
        job.kill()  # as a node failure would: no cleanup, no release
        job.wait(10)
        killed = time.monotonic()
        wait_for("the lock to expire", lambda: redis_server.client().get(lock_key) is None, 10)
        assert time.monotonic() - killed <= 3 + 2
        failed = training(b, made.project.id)
        assert failed["status"] == "failed" and "code -9" in failed["reason"], failed

        assert start_training(b, made.project.id).status_code == 201
        wait_for(
            "the next training to take the lock",
            lambda: training(a, made.project.id)["status"] == "running",
            120,
        )
        (second,) = trainers(b)
        assert redis_server.client().get(lock_key).decode().endswith(f":{second.pid}")
        second.kill()
        assert not psutil.pid_exists(job.pid) or psutil.Process(job.pid).status() == psutil.STATUS_ZOMBIE
