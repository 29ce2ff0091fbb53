"""LABELSTACK_MAX_DETECTIONS: at most that many objects per image, the highest-scoring ones."""

from __future__ import annotations

import pytest
from PIL import Image

from labelstack_backend.settings import Settings, SettingsError
from labelstack_backend.yolo.model import SegmentationModel


@pytest.fixture(scope="module")
def model() -> SegmentationModel:
    return SegmentationModel.load("yolov8n-seg.yaml", "random", device="cpu", half=False, imgsz=160)


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return Image.effect_noise((200, 160), 60).convert("RGB")


def test_max_det_keeps_the_highest_scoring_detections(model, image):
    everything = model.detect([image], conf=0.0)[0]
    assert len(everything) > 3, "a random model at threshold 0 finds many objects"
    kept = model.detect([image], conf=0.0, max_det=3)[0]
    assert len(kept) == 3
    best = sorted((d.score for d in everything), reverse=True)[:3]
    assert sorted((d.score for d in kept), reverse=True) == pytest.approx(best)


CONFIG = (
    '<View><Image name="image" value="$image"/>'
    '<RectangleLabels name="box" toName="image"><Label value="person"/></RectangleLabels></View>'
)


def regions(tmp_path, image, **env: str) -> list:
    """The regions the backend predicts for ``image`` (one rectangle per detection)."""
    from labelstack_backend.server.app import create_app
    from labelstack_backend.server.wsgi import build_service

    base = {
        "LABELSTACK_DEMO_MODEL": "1",
        "MODEL_DIR": str(tmp_path),
        "LABELSTACK_SCORE_THRESHOLD": "0",
        "LABELSTACK_LOCAL_ROOTS": str(tmp_path),
    }
    service = build_service(Settings.from_env({**base, **env}))
    service.start_loading().join(120)
    path = tmp_path / "a.jpg"
    image.save(path)
    body = {"tasks": [{"id": 1, "data": {"image": str(path)}}], "label_config": CONFIG}
    resp = create_app(service).test_client().post("/predict", json=body)
    assert resp.status_code == 200, resp.json
    return list(resp.json["results"][0]["result"])


def test_the_setting_caps_the_regions_of_a_prediction(tmp_path, image):
    assert len(regions(tmp_path / "all", image)) > 2
    assert len(regions(tmp_path / "two", image, LABELSTACK_MAX_DETECTIONS="2")) == 2


def test_the_setting_must_be_positive():
    assert Settings.from_env({}).max_detections == 300
    with pytest.raises(SettingsError, match="LABELSTACK_MAX_DETECTIONS"):
        Settings.from_env({"LABELSTACK_MAX_DETECTIONS": "0"})
