"""The segmentation backend against a real Label Studio 1.23.

Register the backend, import image tasks from a local-files storage, retrieve
predictions for all tasks in one go and read them back, then annotate, press
"train" through Label Studio's API and see a new model version predict.
"""

from __future__ import annotations

import json

import pytest
import requests

from tests.support.backend import run_backend, serving, training_ended, versions
from tests.support.projects import DEMO_SHAPES_CONFIG, shapes_project

pytestmark = pytest.mark.integration

SIZES = [(192, 128), (128, 192), (160, 160), (224, 128)]
CONFIG = DEMO_SHAPES_CONFIG


def retrieve_predictions(ls, project_id: int) -> None:
    ls.client.json(
        "POST",
        f"/api/dm/actions?id=retrieve_tasks_predictions&project={project_id}",
        json={"selectedItems": {"all": True, "excluded": []}},
        timeout=120,
    )


def predictions_of(ls, task_id: int) -> list[dict]:
    return ls.client.json("GET", f"/api/predictions/?task={task_id}")


def backend_metric(url: str, name: str, **labels: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=5).text
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    total = 0.0
    for line in text.splitlines():
        if line.startswith(want + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
def shapes(label_studio):
    made = shapes_project(label_studio, SIZES, CONFIG)
    assert "/data/local-files/?d=" in made.tasks[0]["data"]["image"]
    return made.project, made.tasks, made.scenes


def test_predict_annotate_train_and_predict_again(label_studio, shapes, tmp_path):
    project, tasks, scenes = shapes
    env = {
        "LABELSTACK_DEMO_MODEL": "1",
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.token,
        "LABELSTACK_SCORE_THRESHOLD": "0.0",
        "LABELSTACK_IMGSZ": "160",
        "LABELSTACK_TRAIN_EPOCHS": "2",
        "LABELSTACK_TRAIN_IMGSZ": "96",
        "LABELSTACK_TRAIN_BATCH": "4",
        "LABELSTACK_TRAIN_EXTRA": json.dumps({"mosaic": 0.0, "warmup_epochs": 0}),
        "WORKERS": "2",
    }
    with run_backend(tmp_path, env) as backend:
        ml = label_studio.client.sdk.ml.create(project=project.id, url=backend.url, title="segmentation")
        ml = label_studio.client.sdk.ml.get(id=ml.id)
        assert ml.state == "CO", f"backend not connected: {ml.state} {ml.error_message}"
        base_version = versions(backend.url, project.id)["model_version"]
        assert base_version == "yolov8n-seg-random"

        # All tasks in one request, answered in order and stored against the right task.
        retrieve_predictions(label_studio, project.id)
        assert backend_metric(backend.url, "labelstack_predict_tasks_total", outcome="ok") == len(tasks)
        assert backend_metric(backend.url, "labelstack_requests_total", route="/predict", status="200") == 1
        for task, sc in zip(tasks, scenes, strict=True):
            preds = predictions_of(label_studio, task["id"])
            assert len(preds) == 1 and preds[0]["model_version"] == base_version
            regions = preds[0]["result"]
            assert regions, "threshold 0: the random model finds something"
            assert {(r["original_width"], r["original_height"]) for r in regions} == {(sc.width, sc.height)}

        # Annotate every task (one skipped), then press "train" through Label Studio.
        for task, sc in zip(tasks, scenes, strict=True):
            label_studio.client.sdk.annotations.create(
                id=task["id"], result=sc.polygon_regions(), was_cancelled=False
            )
        label_studio.client.sdk.annotations.create(id=tasks[0]["id"], result=[], was_cancelled=True)
        label_studio.client.sdk.ml.train(id=ml.id)

        job = training_ended(backend.url, project.id, timeout=240)
        assert job["status"] == "done", job
        new_version = job["version"]
        assert new_version != base_version and new_version.startswith("yolov8n-seg-random-p")
        info = serving(backend.url, project.id, new_version)
        assert info["versions"] == [base_version, new_version]
        assert info["training"]["epochs"] == 2 and info["training"]["loss"] is not None

        # Label Studio sees the new version and stores fresh predictions from it.
        listed = label_studio.client.json("GET", f"/api/ml/{ml.id}/versions")
        assert new_version in listed["versions"]
        label_studio.client.sdk.ml.get(id=ml.id)
        retrieve_predictions(label_studio, project.id)
        for task in tasks:
            assert new_version in {p["model_version"] for p in predictions_of(label_studio, task["id"])}

        # Both workers serve the new version.
        seen = {requests.post(f"{backend.url}/setup", json={"project": f"{project.id}.1", "schema": CONFIG},
                              timeout=5).json()["model_version"] for _ in range(12)}  # fmt: skip
        assert seen == {new_version}
        assert "Traceback" not in backend.log()


def test_personal_access_token_downloads_label_studio_files(label_studio, shapes, tmp_path):
    project, tasks, _ = shapes
    sdk = label_studio.client.sdk
    try:
        pat = sdk.tokens.create().token
    except Exception as exc:  # pragma: no cover - depends on the organisation's token settings
        pytest.fail(f"could not create a personal access token: {exc}")
    assert pat.count(".") == 2, "a personal access token is a JWT"
    env = {
        "LABELSTACK_DEMO_MODEL": "1",
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": pat,
        "LABELSTACK_SCORE_THRESHOLD": "0.0",
        "LABELSTACK_IMGSZ": "128",
    }
    with run_backend(tmp_path, env) as backend:
        body = {"tasks": tasks[:2], "project": f"{project.id}.1", "label_config": CONFIG}
        results = requests.post(f"{backend.url}/predict", json=body, timeout=60).json()["results"]
        assert all("result" in r for r in results), results
