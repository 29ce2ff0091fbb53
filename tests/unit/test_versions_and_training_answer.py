"""What a user reads back about training: GET /versions without a project lists every project's
versions and training, and the answer to START_TRAINING names a job Label Studio can keep."""

from __future__ import annotations

from dataclasses import replace

import pytest

from labelstack_backend.server.app import create_app
from labelstack_backend.server.service import training_answer
from labelstack_backend.server.wsgi import build_service
from labelstack_backend.settings import Settings
from labelstack_backend.training.state import JobState, JobStatus


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("versions")
    env = {"LABELSTACK_DEMO_MODEL": "1", "MODEL_DIR": str(tmp / "models")}
    service = build_service(Settings.from_env(env))
    service.start_loading().join(120)
    assert service.trainer is not None
    service.trainer.store.update(
        "3", lambda s: replace(s, status=JobStatus.RUNNING, runs=1, epoch=2, epochs=10)
    )
    return create_app(service).test_client()


def test_versions_without_a_project_lists_every_projects_training(client):
    everything = client.get("/versions").json
    assert everything["model_version"] == "yolov8n-seg-random"
    three = everything["projects"]["3"]
    assert three["training"]["status"] == "running" and three["training"]["epoch"] == 2
    assert three == client.get("/versions?project=3").json


def test_the_training_answer_is_a_short_job_id_and_the_state():
    queued = JobState(project="12", status=JobStatus.QUEUED, runs=4, reason="x" * 500)
    answer = training_answer("queued", queued)
    assert answer["job"] == "project-12-run-5" and len(answer["job"]) <= 128  # Label Studio's column
    assert answer["training"]["status"] == "queued" and "/versions?project=12" in answer["message"]
