"""SAM 2.1 through HTTP: gunicorn, a randomly initialised SAM 2.1 (t) built from its config."""

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

SAM2_ENV = {
    "LABELSTACK_PREDICTOR": "sam",
    "LABELSTACK_SAM_MODEL_TYPE": "sam2.1_t",
    "LABELSTACK_DEMO_MODEL": "1",
}
SIZE = (160, 120)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendServer]:
    with run_backend(tmp_path_factory.mktemp("sam2-server"), SAM2_ENV, ready_timeout=180) as backend:
        yield backend


def predict(server: BackendServer, image: Path, context: Any) -> requests.Response:
    body = {
        "tasks": [{"id": 1, "data": {"image": str(image)}}],
        "project": "1.1700000000",
        "label_config": CONFIG,
        "params": {"login": None, "password": None, "context": context},
    }
    return requests.post(f"{server.url}/predict", json=body, timeout=120)


def encoder_calls(server: BackendServer) -> float:
    return metric(
        requests.get(f"{server.url}/metrics", timeout=10).text, "labelstack_sam_encoder_calls_total"
    )


def brush(answer: requests.Response, label: str) -> Any:
    assert answer.status_code == 200, answer.text
    (prediction,) = answer.json()["results"]
    assert prediction["model_version"] == "sam-sam2.1_t-random"
    (region,) = prediction["result"]
    assert region["type"] == "brushlabels" and region["value"]["brushlabels"] == [label]
    return rle.decode(region["value"]["rle"], region["original_height"], region["original_width"])


def test_sam2_1_answers_clicks_and_boxes_and_encodes_each_image_once(
    server: BackendServer, tmp_path: Path
) -> None:
    width, height = SIZE
    image = write_image(tmp_path / "a.jpg", SIZE)
    before = encoder_calls(server)
    click = brush(predict(server, image, {"result": [keypoint(40, 45, width, height)]}), "Shirt")
    assert click.shape == (height, width)
    assert encoder_calls(server) == before + 1
    negative = keypoint(80, 20, width, height, positive=False)
    refined = brush(predict(server, image, {"result": [keypoint(40, 45, width, height), negative]}), "Shirt")
    box = brush(
        predict(server, image, {"result": [rectangle(10, 10, 40, 40, width, height, label="Trousers")]}),
        "Trousers",
    )
    assert refined.shape == box.shape == (height, width)
    assert encoder_calls(server) == before + 1  # the second and third prompts reuse the embedding
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    assert metric(text, "labelstack_sam_cache_bytes") >= 16 * 2**20  # SAM 2's three feature maps
