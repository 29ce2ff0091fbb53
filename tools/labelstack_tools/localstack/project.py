"""The Label Studio side of ``labelstack up``: the demo project wired to the backends with the
operator's own wiring, the sample images imported, and predictions retrieved. Every step is
idempotent, so a second ``up`` changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from labelstack_common.labelstudio import LabelStudioClient
from labelstack_common.wiring import wire
from labelstack_tools.datasets.importer import import_images
from labelstack_tools.localstack import demo

# Label Studio asks the backend for every task in one request and waits up to 100 s for it.
PREDICT_TIMEOUT_S = 300


@dataclass
class ProjectReport:
    id: int
    changes: list[str] = field(default_factory=list)
    new_tasks: int = 0
    tasks: int = 0
    predicted: int = 0

    def lines(self) -> list[str]:
        wiring = ", ".join(self.changes) if self.changes else "already wired, nothing changed"
        return [
            f"project {self.id}: {wiring}",
            f"{self.tasks} tasks ({self.new_tasks} new), {self.predicted} with predictions",
        ]


def retrieve_predictions(ls: LabelStudioClient, project: int) -> None:
    """Label Studio's "Retrieve Predictions" on every task; it skips tasks that already have
    a prediction from the backend's current model version."""
    ls.json(
        "POST",
        f"/api/dm/actions?id=retrieve_tasks_predictions&project={project}",
        json={"selectedItems": {"all": True, "excluded": []}},
        timeout=PREDICT_TIMEOUT_S,
    )


def prepare(
    ls: LabelStudioClient, samples: Path, segmentation_url: str, sam_url: str | None
) -> ProjectReport:
    result = wire(ls, [demo.project_plan(segmentation_url, sam_url)]).projects[0]
    report = ProjectReport(id=result.id, changes=list(result.changes))
    report.new_tasks = import_images(ls, result.id, str(samples)).created
    retrieve_predictions(ls, result.id)
    project = ls.call("get project", ls.sdk.projects.get, id=result.id)
    report.tasks = int(project.task_number or 0)
    tasks = ls.json("GET", f"/api/tasks/?project={result.id}&page_size=1000&fields=all")["tasks"]
    report.predicted = sum(1 for t in tasks if t.get("total_predictions", 0) > 0)
    return report
