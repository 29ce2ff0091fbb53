"""Training data for the job without Label Studio: synthetic shapes as finished annotations."""

from __future__ import annotations

from collections.abc import Callable

from labelstack_backend.settings import Settings
from labelstack_backend.training.job import TrainingData
from tests.support.synthetic import SHAPES_CONFIG, Scene


def shapes_source(scenes: list[Scene]) -> Callable[[Settings, str], TrainingData]:
    """A job's source: one finished task (id ``i + 1``) per scene, its image drawn in memory."""
    tasks = [
        {
            "id": i + 1,
            "data": {"image": f"synthetic://{i}"},
            "annotations": [{"id": i + 1, "was_cancelled": False, "result": sc.polygon_regions()}],
        }
        for i, sc in enumerate(scenes)
    ]

    def fetch(value: str) -> tuple[bytes, str]:
        return scenes[int(value.split("//")[1])].jpeg(), ".jpg"

    def source(settings: Settings, project: str) -> TrainingData:
        return TrainingData(SHAPES_CONFIG, list(tasks), fetch)

    return source
