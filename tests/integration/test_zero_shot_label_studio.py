"""Zero-shot pre-labels against a real Label Studio 1.23: a fresh project whose labels are not
COCO classes gets predictions labelled with its own labels, before anyone has annotated."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.backend import run_backend
from tests.support.fixtures import LabelStudio
from tests.support.projects import shapes_project

pytestmark = pytest.mark.integration

GARMENTS = """
<View>
  <Image name="image" value="$image"/>
  <PolygonLabels name="garment" toName="image">
    <Label value="Dress"/><Label value="Handbag" predicted_values="purse"/><Label value="Coat"/>
  </PolygonLabels>
</View>
"""


def test_a_fresh_project_gets_predictions_with_its_own_labels(
    label_studio: LabelStudio, tmp_path: Path
) -> None:
    made = shapes_project(label_studio, [(192, 128), (160, 160)], GARMENTS)
    env = {
        "LABELSTACK_SEG_MODEL": "yoloe",
        "LABELSTACK_DEMO_MODEL": "1",  # a random YOLOE-seg and random text features
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.token,
        "LABELSTACK_SCORE_THRESHOLD": "0.0",
        "LABELSTACK_MAX_DETECTIONS": "3",
        "LABELSTACK_IMGSZ": "160",
    }
    with run_backend(tmp_path, env, ready_timeout=180) as backend:
        sdk = label_studio.client.sdk
        ml = sdk.ml.create(project=made.project.id, url=backend.url, title="zero-shot")
        ml = sdk.ml.get(id=ml.id)
        assert ml.state == "CO", f"backend not connected: {ml.state} {ml.error_message}"
        label_studio.client.json(
            "POST",
            f"/api/dm/actions?id=retrieve_tasks_predictions&project={made.project.id}",
            json={"selectedItems": {"all": True, "excluded": []}},
            timeout=120,
        )
        for task in made.tasks:
            (pred,) = label_studio.client.json("GET", f"/api/predictions/?task={task['id']}")
            assert pred["model_version"].startswith("yoloe-11s-seg-random-labels-")
            labels = {label for region in pred["result"] for label in region["value"]["polygonlabels"]}
            assert labels, "threshold 0: the random model finds something"
            assert labels <= {"Dress", "Handbag", "Coat"}
        assert "Traceback" not in backend.log()
