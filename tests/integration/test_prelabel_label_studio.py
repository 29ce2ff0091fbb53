"""Bulk pre-labeling against a real Label Studio 1.23: a project of 40 synthetic tasks, through
the backend's route, its webhook action and the CLI; a second run writes nothing; a run killed
midway (SIGKILL, right after a bulk write) is resumed by the next start and leaves no duplicates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from labelstack_tools.cli.main import main as labelstack
from tests.support.backend import run_backend
from tests.support.projects import DEMO_SHAPES_CONFIG, shapes_project
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

VERSION = "yolov8n-seg-random"
SIZES = [(96 + 8 * (i % 4), 64 + 8 * (i % 3)) for i in range(40)]


def backend_env(label_studio: Any, model_dir: Path) -> dict[str, str]:
    return {
        "LABELSTACK_DEMO_MODEL": "1",
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.token,
        "LABELSTACK_SCORE_THRESHOLD": "0.0",
        "LABELSTACK_MAX_DETECTIONS": "3",
        "LABELSTACK_IMGSZ": "96",
        "LABELSTACK_RUNTIME": "torch",  # no background export thread (the process is killed and exits)
        "MODEL_DIR": str(model_dir),
        "LABELSTACK_LOCAL_ROOTS": str(label_studio.files_root),
    }


def versions_per_task(label_studio: Any, project: int) -> dict[int, Counter[str]]:
    """Every task's predictions, counted by model version (Label Studio's own listing)."""
    out: dict[int, Counter[str]] = {}
    for page in label_studio.client.task_pages(project):
        for task in page.tasks:
            preds = label_studio.client.json("GET", f"/api/predictions/?task={task.id}")
            out[task.id] = Counter(p["model_version"] for p in preds)
    return out


def prelabel_done(url: str, project: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        run = requests.get(f"{url}/versions?project={project}", timeout=10).json()["prelabel"]
        return run if run["status"] in ("done", "failed") and not run["pending"] else None

    return wait_for("pre-labeling to end", done, 300, interval=0.3)


def test_a_project_is_pre_labeled_once_by_route_webhook_and_cli(label_studio, tmp_path, capsys):
    made = shapes_project(label_studio, SIZES, DEMO_SHAPES_CONFIG)
    project = made.project.id
    with run_backend(tmp_path, backend_env(label_studio, tmp_path / "models")) as backend:
        answer = requests.post(f"{backend.url}/prelabel?project={project}", timeout=10)
        assert answer.status_code == 202 and answer.json()["status"] == "started"
        run = prelabel_done(backend.url, project)
        assert (run["status"], run["total"], run["done"], run["written"], run["failed"]) == (
            "done",
            40,
            40,
            40,
            0,
        )
        assert run["version"] == VERSION and run["rate"] > 0 and run["eta_s"] == 0
        per_task = versions_per_task(label_studio, project)
        assert len(per_task) == 40 and all(c == Counter({VERSION: 1}) for c in per_task.values()), per_task
        metrics = requests.get(f"{backend.url}/metrics", timeout=10).text
        assert f'labelstack_prelabel_tasks{{project="{project}",state="done"}} 40.0' in metrics

        # A second run, through the webhook action, writes nothing.
        hook = requests.post(
            f"{backend.url}/webhook", json={"action": "PRELABEL", "project": project}, timeout=10
        )
        assert hook.status_code in (200, 202), hook.text
        again = prelabel_done(backend.url, project)
        assert (again["done"], again["written"]) == (40, 0)

        # And a third, through the CLI with its progress bar.
        assert labelstack(["prelabel", "--project", str(project), "--backend", backend.url]) == 0
        said = "".join(capsys.readouterr())
        assert "40/40" in said and "0 written" in said, said
        assert versions_per_task(label_studio, project) == per_task
        assert "Traceback" not in backend.log()


def test_a_run_killed_midway_resumes_on_restart_without_duplicates(label_studio, tmp_path):
    made = shapes_project(label_studio, SIZES, DEMO_SHAPES_CONFIG, seed=11)
    project = made.project.id
    env = {**os.environ, **backend_env(label_studio, tmp_path / "models"), "LABELSTACK_BATCH_SIZE": "1"}
    cmd = [sys.executable, "-m", "tests.support.prelabel_proc", str(project)]
    root = Path(__file__).resolve().parents[2]
    killed = subprocess.run(
        [*cmd, "--kill-after", "3"], env=env, cwd=root, capture_output=True, timeout=300, check=False
    )
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    written = versions_per_task(label_studio, project)
    # Three writes of four (four batches of one) landed before the kill...
    assert sum(c[VERSION] for c in written.values()) == 12, killed.stderr.decode()[-3000:]
    state = json.loads((tmp_path / "models" / "prelabel" / f"{project}.json").read_text())
    # ...which came before the third was recorded.
    assert state["status"] == "running" and state["written"] == 8, state

    resumed = subprocess.run(cmd, env=env, cwd=root, capture_output=True, timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    run = json.loads(resumed.stdout.decode().strip().splitlines()[-1])
    assert (run["status"], run["done"], run["written"]) == ("done", 40, 28), resumed.stderr.decode()[-3000:]
    per_task = versions_per_task(label_studio, project)
    assert len(per_task) == 40 and all(c == Counter({VERSION: 1}) for c in per_task.values()), per_task
