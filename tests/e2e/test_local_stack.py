"""The whole loop on the local stack, brought up with the command a user runs.

`labelstack up` (a subprocess of the entry point, a temporary --data-dir, free ports) starts
Label Studio, both backends and Redis, and wires the demo project. Then, through Label Studio:
the imported tasks hold the segmentation backend's predictions; a keypoint gets a brush mask
from SAM; the editor in a real browser draws the predicted regions; annotations train a new
model version that predicts. Last, Ctrl-C stops everything and keeps the data, a second `up`
reuses it and wires nothing twice, and `labelstack down` stops that one.

The tests run in this order on one stack (the last one stops it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from labelstack_backend import rle
from labelstack_common.labelstudio import LabelStudioClient
from labelstack_tools.localstack import credentials, demo, procs, state
from labelstack_tools.localstack.plan import Ports
from labelstack_tools.localstack.project import retrieve_predictions
from tests.support.backend import serving, training_ended
from tests.support.browser import label_studio_page, log_in
from tests.support.localstack import free_ports, labelstack, processes_of, up_command
from tests.support.sam import keypoint

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

READY_TIMEOUT_S = 900
# Fine-tuning small enough for a CI CPU; `up` passes the environment on to the backends.
TRAINING_ENV = {
    "LABELSTACK_TRAIN_EPOCHS": "2",
    "LABELSTACK_TRAIN_IMGSZ": "96",
    "LABELSTACK_TRAIN_BATCH": "4",
    "LABELSTACK_TRAIN_EXTRA": json.dumps({"mosaic": 0.0, "warmup_epochs": 0}),
}
SAMPLES = 4


@dataclass
class Up:
    """One running `labelstack up`."""

    proc: subprocess.Popen[bytes]
    output: Path

    def text(self) -> str:
        return self.output.read_text(errors="replace")


@dataclass
class Stack:
    data_dir: Path
    ports: Ports
    up: Up
    client: LabelStudioClient
    project: int
    login: credentials.Credentials

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports.label_studio}"

    def tasks(self) -> list[dict[str, Any]]:
        body = self.client.json("GET", f"/api/tasks/?project={self.project}&page_size=100")
        return sorted(body["tasks"], key=lambda t: t["id"])

    def predictions(self, task: int) -> list[dict[str, Any]]:
        return list(self.client.json("GET", f"/api/predictions/?task={task}"))

    def ml_backend(self, interactive: bool) -> Any:
        backends = self.client.sdk.ml.list(project=self.project)
        (match,) = [b for b in backends if bool(b.is_interactive) == interactive]
        return match

    def image_size(self, task: dict[str, Any]) -> tuple[int, int]:
        name = task["data"]["image"].rsplit("/", 1)[-1]
        with Image.open(self.data_dir / "files" / "samples" / name) as img:
            return img.size


def start_up(data_dir: Path, ports: Ports, log: Path) -> Up:
    env = {**os.environ, **TRAINING_ENV}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            up_command(data_dir, ports, "--cpu"), env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    return Up(proc, log)


def wait_ready(up: Up, data_dir: Path) -> state.StackState:
    """Until `up` writes a ready state; fail with its output if it exits first."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if up.proc.poll() is not None:
            pytest.fail(f"labelstack up exited with {up.proc.returncode}:\n{up.text()}")
        current = state.read(data_dir)
        if current is not None and current.status == state.READY:
            return current
        if time.monotonic() > deadline:
            pytest.fail(f"labelstack up not ready after {READY_TIMEOUT_S} s:\n{up.text()}")
        time.sleep(1)


def stop(up: Up, data_dir: Path) -> None:
    """Teardown whatever happened: Ctrl-C, then `labelstack down`, then kill."""
    if up.proc.poll() is None:
        up.proc.send_signal(signal.SIGINT)
        try:
            up.proc.wait(120)
        except subprocess.TimeoutExpired:
            subprocess.run([labelstack(), "down", "--data-dir", str(data_dir)], check=False, timeout=120)
            up.proc.kill()
            up.proc.wait(10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("local-stack") / "data"
    ports = free_ports()
    up = start_up(data_dir, ports, artifacts_dir / "local-stack-up.log")
    try:
        ready = wait_ready(up, data_dir)
        login, generated = credentials.load_or_create(data_dir)
        assert not generated, "up stored the admin before starting Label Studio"
        assert ready.project_id is not None
        client = LabelStudioClient(ready.label_studio_url, login.token, timeout=120)
        yield Stack(data_dir, ports, up, client, ready.project_id, login)
    finally:
        stop(up, data_dir)


def test_up_says_it_runs_demo_weights_and_how_to_use_real_ones(stack: Stack) -> None:
    out = stack.up.text()
    assert "demo mode" in out and "--seg-weights" in out and "--sam-checkpoint" in out
    assert f"{stack.url}/projects/{stack.project}" in out and stack.login.password in out


def test_the_imported_tasks_hold_the_segmentation_backends_predictions(stack: Stack) -> None:
    tasks = stack.tasks()
    assert len(tasks) == SAMPLES
    seg = stack.ml_backend(interactive=False)
    for task in tasks:
        (pred,) = stack.predictions(task["id"])
        assert pred["model_version"] == "yolov8n-seg-random" == seg.model_version
        regions = pred["result"]
        assert 1 <= len(regions) <= 5, "the demo keeps a random model's five best objects"
        assert {r["type"] for r in regions} == {"polygonlabels"}
        assert {r["value"]["polygonlabels"][0] for r in regions} == {"Person"}  # COCO "person"
        assert {(r["original_width"], r["original_height"]) for r in regions} == {stack.image_size(task)}


def test_a_keypoint_through_label_studio_gets_a_brush_mask_from_sam(stack: Stack) -> None:
    task = stack.tasks()[0]
    width, height = stack.image_size(task)
    sam = stack.ml_backend(interactive=True)
    answer = stack.client.json(
        "POST",
        f"/api/ml/{sam.id}/interactive-annotating",
        json={"task": task["id"], "context": {"result": [keypoint(50, 60, width, height, label="Dress")]}},
    )
    assert "errors" not in answer, answer
    (region,) = answer["data"]["result"]
    assert region["type"] == "brushlabels" and region["from_name"] == "mask"
    assert region["value"]["brushlabels"] == ["Dress"]
    mask = rle.decode(region["value"]["rle"], region["original_height"], region["original_width"])
    assert mask.shape == (height, width) and mask.any()


def test_the_editor_draws_the_predicted_regions(stack: Stack, artifacts_dir: Path) -> None:
    task = stack.tasks()[0]
    with label_studio_page(stack.url) as page:
        log_in(page, stack.url, stack.login.username, stack.login.password)
        page.goto(f"{stack.url}/projects/{stack.project}/data?task={task['id']}")
        page.wait_for_selector('[data-testid="bottombar-submit-button"]', timeout=120_000)
        if not predicted_regions_drawn(page, timeout_ms=60_000):
            # Seen in CI: Label Studio's task JSON held the prediction, but the editor opened (on
            # the project's first data-manager view) with none. Keep what it showed, then open
            # the task once more, as a labeller would.
            page.screenshot(path=str(artifacts_dir / "local-stack-editor-first-load.png"))
            warnings.warn(f"the editor drew no predicted region at first: {editor_state(page)}", stacklevel=1)
            page.reload()
            page.wait_for_selector('[data-testid="bottombar-submit-button"]', timeout=120_000)
            assert predicted_regions_drawn(page, timeout_ms=90_000), editor_state(page)
        rows = page.locator(".lsf-outliner-item").count()
        editor = page.evaluate(
            "() => { const s = window.Htx.annotationStore;"
            " return {predictions: s.predictions.length, regions: s.selected.regions.length}; }"
        )
        shot = artifacts_dir / "local-stack-editor.png"
        page.screenshot(path=str(shot))
    expected = len(stack.predictions(task["id"])[0]["result"])
    assert rows == expected and editor == {"predictions": 1, "regions": expected}
    assert shot.stat().st_size > 10_000


def test_a_click_in_the_editor_gets_a_sam_mask(stack: Stack, artifacts_dir: Path) -> None:
    """The README's SAM steps, through the UI only: Auto-Annotation and Auto-Accept Suggestions
    on, the Auto-Detect keypoint tool, a label under "Segment Anything: click", a click on the
    image; then a brush region from SAM is in the editor."""
    task = stack.tasks()[-1]
    with label_studio_page(stack.url, height=1100) as page:
        log_in(page, stack.url, stack.login.username, stack.login.password)
        page.goto(f"{stack.url}/projects/{stack.project}/data?task={task['id']}")
        page.wait_for_selector('[data-testid="bottombar-submit-button"]', timeout=120_000)
        before = brush_regions(page)
        page.get_by_text("Auto-Annotation", exact=True).click()
        page.get_by_text("Auto-Accept Suggestions", exact=True).click()
        page.locator(".lsf-tool_smart").first.hover()  # Auto-Detect: opens the smart tools
        page.locator('.lsf-tool_smart[aria-label="key-point-tool"]').click()
        click_row = page.locator(".lsf-labels").nth(2)  # the third row: "Segment Anything: click"
        assert demo.CLICK_CAPTION in page.locator("h4").nth(2).inner_text()
        click_row.get_by_text("Dress", exact=True).click()
        image = page.locator(".lsf-image-view, [class*=ImageView], canvas").first.bounding_box()
        assert image is not None
        with page.expect_response(lambda r: "/interactive-annotating" in r.url, timeout=60_000) as sent:
            page.mouse.click(image["x"] + image["width"] * 0.6, image["y"] + image["height"] * 0.7)
        assert sent.value.status == 200
        page.wait_for_function(
            "n => window.Htx.annotationStore.selected.regions"
            ".filter(r => r.type === 'brushregion').length > n",
            arg=before,
            timeout=60_000,
        )
        labels = page.evaluate(
            "() => window.Htx.annotationStore.selected.regions"
            ".filter(r => r.type === 'brushregion').map(r => r.labels)"
        )
        shot = artifacts_dir / "local-stack-sam-editor.png"
        page.screenshot(path=str(shot))
    assert ["Dress"] in labels
    assert shot.stat().st_size > 10_000


def brush_regions(page: Any) -> int:
    return int(
        page.evaluate(
            "() => window.Htx.annotationStore.selected.regions.filter(r => r.type === 'brushregion').length"
        )
    )


def predicted_regions_drawn(page: Any, timeout_ms: int) -> bool:
    try:
        page.wait_for_selector(
            ".lsf-outliner-item__control_type_predict svg", state="attached", timeout=timeout_ms
        )
    except Exception:  # playwright's TimeoutError
        return False
    return True


def editor_state(page: Any) -> Any:
    return page.evaluate(
        "() => { const s = window.Htx && window.Htx.annotationStore; if (!s) return 'no editor';"
        " return {predictions: s.predictions.length, annotations: s.annotations.length,"
        " regions: s.selected ? s.selected.regions.length : null}; }"
    )


def _polygon(label: str, box: tuple[float, float, float, float], size: tuple[int, int]) -> dict[str, Any]:
    x0, y0, x1, y1 = box
    return {
        "type": "polygonlabels", "from_name": "garment", "to_name": "image",
        "original_width": size[0], "original_height": size[1],
        "value": {"points": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]], "polygonlabels": [label]},
    }  # fmt: skip


def test_annotations_train_a_new_model_version_that_predicts(stack: Stack) -> None:
    seg = stack.ml_backend(interactive=False)
    base = seg.model_version
    for task in stack.tasks():
        size = stack.image_size(task)
        result = [_polygon("Dress", (20, 30, 45, 90), size), _polygon("Top", (55, 25, 80, 55), size)]
        stack.client.sdk.annotations.create(id=task["id"], result=result, was_cancelled=False)
    stack.client.sdk.ml.train(id=seg.id)  # what "Start Training" in the model settings sends
    url = f"http://127.0.0.1:{stack.ports.segmentation}"
    job = training_ended(url, stack.project, timeout=600)
    assert job["status"] == "done", job
    new = job["version"]
    assert new != base and new.startswith(base)
    serving(url, stack.project, new)

    stack.client.sdk.ml.get(id=seg.id)  # Label Studio reads the backend's version again
    retrieve_predictions(stack.client, stack.project)
    for task in stack.tasks():
        assert new in {p["model_version"] for p in stack.predictions(task["id"])}


def test_ctrl_c_and_down_stop_everything_and_a_second_up_reuses_the_data(
    stack: Stack, artifacts_dir: Path
) -> None:
    running = state.read(stack.data_dir)
    assert running is not None
    assert {r.name for r in running.processes} == {"redis", "label-studio", "segmentation", "sam"}
    assert all(procs.alive(r) for r in running.processes) and processes_of(stack.data_dir)
    status = subprocess.run(
        [labelstack(), "status", "--data-dir", str(stack.data_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert status.returncode == 0 and status.stdout.count(" up ") == 4, status.stdout

    # Ctrl-C: everything stops, the data stays.
    stack.up.proc.send_signal(signal.SIGINT)
    assert stack.up.proc.wait(120) == 0
    assert not any(procs.alive(r) for r in running.processes)
    assert processes_of(stack.data_dir) == [], "no process the stack started is left"
    assert state.read(stack.data_dir) is None
    assert (stack.data_dir / "label-studio" / "label_studio.sqlite3").is_file()

    # A second `up`: the same admin and token, the same project, nothing wired or imported twice.
    again = start_up(stack.data_dir, stack.ports, artifacts_dir / "local-stack-up-again.log")
    try:
        ready = wait_ready(again, stack.data_dir)
        assert ready.project_id == stack.project
        assert credentials.load_or_create(stack.data_dir) == (stack.login, False)
        out = again.text()
        assert "reusing the admin login" in out and "already wired, nothing changed" in out
        assert f"{SAMPLES} tasks (0 new)" in out
        assert len(stack.tasks()) == SAMPLES  # the old token still works
        assert len(stack.client.sdk.ml.list(project=stack.project)) == 2
        second = state.read(stack.data_dir)
        assert second is not None

        down = subprocess.run(
            [labelstack(), "down", "--data-dir", str(stack.data_dir)],
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        assert down.returncode == 0, down.stderr
        assert "the local stack is down" in down.stderr
        assert again.proc.wait(60) == 0
        assert not any(procs.alive(r) for r in [second.supervisor, *second.processes])
        assert processes_of(stack.data_dir) == []
        status = subprocess.run(
            [labelstack(), "status", "--data-dir", str(stack.data_dir)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert status.returncode == 1 and "not running" in status.stdout
    finally:
        stop(again, stack.data_dir)
