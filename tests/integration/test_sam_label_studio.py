"""The SAM backend behind a real Label Studio 1.23: registered as interactive, called through
Label Studio's interactive-annotating API exactly as the editor calls it, with the task
images served by Label Studio (local files, token-protected)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from labelstack_backend import rle
from tests.support.backend import BackendServer, run_backend
from tests.support.fixtures import LabelStudio
from tests.support.sam import CONFIG, keypoint, metric, write_image

pytestmark = pytest.mark.integration

SIZE = (96, 64)


@dataclass
class SamProject:
    ls: LabelStudio
    backend: BackendServer
    project: int
    ml_backend: int
    tasks: list[int]

    def interactive(self, task: int, context: Any) -> dict[str, Any]:
        """What the editor gets back from Label Studio for a smart-tool prompt."""
        body = {"task": task, "context": context}
        out: dict[str, Any] = self.ls.client.json(
            "POST", f"/api/ml/{self.ml_backend}/interactive-annotating", json=body
        )
        return out

    def metrics(self) -> str:
        return requests.get(f"{self.backend.url}/metrics", timeout=10).text


@pytest.fixture(scope="module")
def sam_project(label_studio: LabelStudio, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SamProject]:
    sdk = label_studio.client.sdk
    folder = label_studio.files_root / f"sam-{time.time_ns()}"
    for i in range(3):
        write_image(folder / f"{i}.jpg", SIZE, seed=i)
    project = sdk.projects.create(title="SAM interactive", label_config=CONFIG)
    sdk.import_storage.local.create(project=project.id, path=str(folder), title="images")
    sdk.projects.import_tasks(
        project.id,
        request=[{"image": f"/data/local-files/?d={folder.name}/{i}.jpg"} for i in range(3)],
    )
    tasks = sorted(t.id for t in sdk.tasks.list(project=project.id, fields="task_only"))
    env = {
        "LABELSTACK_PREDICTOR": "sam",
        "LABELSTACK_SAM_MODEL_TYPE": "tiny",
        "LABELSTACK_DEMO_MODEL": "1",
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.token,
    }
    with run_backend(tmp_path_factory.mktemp("sam-ls"), env) as backend:
        ml = sdk.ml.create(project=project.id, url=backend.url, title="SAM", is_interactive=True)
        yield SamProject(label_studio, backend, project.id, ml.id, tasks)


def test_a_smart_keypoint_through_label_studio_returns_a_brush_mask(sam_project: SamProject) -> None:
    answer = sam_project.interactive(sam_project.tasks[0], {"result": [keypoint(40, 45, *SIZE)]})
    assert "errors" not in answer, answer
    (region,) = answer["data"]["result"]
    assert region["type"] == "brushlabels"
    assert (region["from_name"], region["to_name"]) == ("mask", "image")
    assert region["value"]["brushlabels"] == ["Shirt"]
    mask = rle.decode(region["value"]["rle"], region["original_height"], region["original_width"])
    assert mask.shape == (SIZE[1], SIZE[0]) and mask.any()


def test_label_studio_accepts_the_empty_prediction_of_a_call_without_prompts(
    sam_project: SamProject,
) -> None:
    answer = sam_project.interactive(sam_project.tasks[1], None)
    assert "errors" not in answer, answer
    assert answer["data"]["result"] == []
    assert answer["data"]["model_version"] == "sam-tiny-random"


def test_a_bad_prompt_reaches_the_editor_as_an_error_and_the_backend_keeps_serving(
    sam_project: SamProject,
) -> None:
    answer = sam_project.interactive(sam_project.tasks[0], {"result": [keypoint(40, 45, *SIZE, label="Hat")]})
    assert "'Hat' is not a label" in " ".join(answer["errors"])
    answer = sam_project.interactive(sam_project.tasks[0], {"result": [keypoint(10, 10, *SIZE)]})
    assert "errors" not in answer, answer


def test_precomputing_the_project_makes_every_first_click_warm(sam_project: SamProject) -> None:
    project = str(sam_project.project)
    started = requests.post(
        f"{sam_project.backend.url}/webhook",
        json={"action": "SAM_PRECOMPUTE", "project": sam_project.project},
        timeout=10,
    )
    assert started.status_code in (200, 202), started.text
    deadline = time.monotonic() + 60
    while metric(sam_project.metrics(), "labelstack_sam_precompute_running", project=project) > 0:
        assert time.monotonic() < deadline, "precompute did not finish"
        time.sleep(0.2)
    text = sam_project.metrics()
    total = metric(text, "labelstack_sam_precompute_tasks", project=project, state="total")
    assert total == len(sam_project.tasks)
    assert metric(text, "labelstack_sam_precompute_tasks", project=project, state="done") == total
    assert metric(text, "labelstack_sam_precompute_tasks", project=project, state="failed") == 0
    before = metric(text, "labelstack_sam_encoder_calls_total")
    for task in sam_project.tasks:
        answer = sam_project.interactive(task, {"result": [keypoint(40, 45, *SIZE)]})
        assert "errors" not in answer, answer
    assert metric(sam_project.metrics(), "labelstack_sam_encoder_calls_total") == before
