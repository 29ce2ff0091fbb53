"""The SAM backend for real: gunicorn, HTTP, the tiny demo model, images on disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from labelstack_backend import rle
from tests.support.backend import BackendServer, run_backend
from tests.support.sam import CONFIG, keypoint, metric, rectangle, write_image

pytestmark = pytest.mark.integration

SAM_ENV = {
    "LABELSTACK_PREDICTOR": "sam",
    "LABELSTACK_SAM_MODEL_TYPE": "tiny",
    "LABELSTACK_DEMO_MODEL": "1",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendServer]:
    with run_backend(tmp_path_factory.mktemp("sam-server"), SAM_ENV) as backend:
        yield backend


def predict(server: BackendServer, image: Path, context: Any, tasks: int = 1) -> requests.Response:
    body = {
        "tasks": [{"id": i + 1, "data": {"image": str(image)}} for i in range(tasks)],
        "project": "1.1700000000",
        "label_config": CONFIG,
        "params": {"login": None, "password": None, "context": context},
    }
    return requests.post(f"{server.url}/predict", json=body, timeout=60)


def encoder_calls(server: BackendServer) -> float:
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    return metric(text, "labelstack_sam_encoder_calls_total")


def test_health_and_setup_speak_the_protocol(server: BackendServer) -> None:
    health = requests.get(f"{server.url}/health", timeout=5).json()
    assert health["status"] == "UP" and health["model_class"] == "sam"
    setup = requests.post(
        f"{server.url}/setup", json={"project": "1.1700000000", "schema": CONFIG}, timeout=5
    ).json()
    assert setup["model_version"] == "sam-tiny-random"


def test_a_click_through_http_returns_a_brush_and_the_second_click_is_warm(
    server: BackendServer, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "a.jpg", (96, 64))
    before = encoder_calls(server)
    answer = predict(server, image, {"result": [keypoint(40, 45, 96, 64)]})
    assert answer.status_code == 200, answer.text
    (prediction,) = answer.json()["results"]
    (region,) = prediction["result"]
    assert region["type"] == "brushlabels" and region["value"]["brushlabels"] == ["Shirt"]
    mask = rle.decode(region["value"]["rle"], region["original_height"], region["original_width"])
    assert mask.shape == (64, 96) and mask.any()
    assert encoder_calls(server) == before + 1
    again = predict(server, image, {"result": [rectangle(10, 10, 40, 40, 96, 64, label="Trousers")]})
    assert again.status_code == 200
    assert again.json()["results"][0]["result"][0]["value"]["brushlabels"] == ["Trousers"]
    assert encoder_calls(server) == before + 1
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    assert metric(text, "labelstack_sam_cache_bytes") > 0
    assert metric(text, "labelstack_sam_cache_lookups_total", source="memory") >= 1


def test_without_a_context_the_task_image_is_warmed(server: BackendServer, tmp_path: Path) -> None:
    image = write_image(tmp_path / "b.jpg", seed=3)
    before = encoder_calls(server)
    answer = predict(server, image, None)
    assert answer.status_code == 200
    (prediction,) = answer.json()["results"]
    assert prediction["result"] == [] and prediction["model_version"] == "sam-tiny-random"
    assert encoder_calls(server) == before + 1
    assert predict(server, image, {"result": [keypoint(40, 45, 96, 64)]}).status_code == 200
    assert encoder_calls(server) == before + 1


@pytest.mark.parametrize(
    ("context", "tasks", "status", "words"),
    [
        ({"result": []}, 1, 400, "no keypointlabels or rectanglelabels"),
        ({"result": [keypoint(40, 45, 96, 64, label="Hat")]}, 1, 422, "'Hat' is not a label"),
        ({"result": [keypoint(140, 45, 96, 64)]}, 1, 400, "outside the image"),
        ({"result": [{**keypoint(40, 45, 96, 64), "value": {"x": "a", "y": 1}}]}, 1, 400, "number"),
        ({"result": [keypoint(40, 45, 96, 64)]}, 2, 400, "one task"),
        ({"result": [keypoint(40, 45, 64, 96)]}, 1, 422, "EXIF orientation"),
    ],
)
def test_bad_input_gets_a_clear_error_and_the_server_keeps_answering(
    server: BackendServer, tmp_path: Path, context: Any, tasks: int, status: int, words: str
) -> None:
    image = write_image(tmp_path / "c.jpg")
    answer = predict(server, image, context, tasks=tasks)
    assert answer.status_code == status
    assert words in answer.json()["error"]
    assert predict(server, image, {"result": [keypoint(40, 45, 96, 64)]}).status_code == 200
    assert server.alive()


def test_no_weights_offline_fails_at_start_with_the_reason(tmp_path: Path) -> None:
    env = {**SAM_ENV, "LABELSTACK_DEMO_MODEL": "0"}
    with pytest.raises(RuntimeError, match="no SAM weights"), run_backend(tmp_path, env, ready_timeout=60):
        pass


def test_a_missing_checkpoint_fails_at_start_with_the_reason(tmp_path: Path) -> None:
    env = {**SAM_ENV, "LABELSTACK_SAM_CHECKPOINT": str(tmp_path / "sam_vit_b.pth")}
    with pytest.raises(RuntimeError, match="does not exist"), run_backend(tmp_path, env, ready_timeout=60):
        pass
