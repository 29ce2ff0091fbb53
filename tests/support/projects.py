"""Label Studio projects filled with synthetic images, for integration tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from labelstack_backend.yolo.model import coco_names
from tests.support.fixtures import LabelStudio
from tests.support.synthetic import SHAPES_CONFIG, Scene, scene, write_scenes

# The demo model predicts COCO classes at random; aliases map them onto the shapes' labels.
_COCO = list(coco_names().values())
DEMO_SHAPES_CONFIG = SHAPES_CONFIG.replace(
    '<Label value="circle"/>', f'<Label value="circle" predicted_values="{",".join(_COCO[:40])}"/>', 1
).replace('<Label value="square"/>', f'<Label value="square" predicted_values="{",".join(_COCO[40:])}"/>', 1)


@dataclass
class ShapesProject:
    project: Any
    tasks: list[dict]  # sorted by image name, aligned with ``scenes``
    scenes: list[Scene]


def shapes_project(
    ls: LabelStudio, sizes: list[tuple[int, int]], config: str = SHAPES_CONFIG, seed: int = 7
) -> ShapesProject:
    """A project whose tasks come from a local-files storage over freshly drawn scenes."""
    rng = np.random.default_rng(seed)
    scenes = [scene(rng, width=w, height=h) for w, h in sizes]
    folder = ls.files_root / f"shapes-{uuid.uuid4().hex[:8]}"
    write_scenes(folder, scenes)
    sdk = ls.client.sdk
    project = sdk.projects.create(title=f"shapes {folder.name}", label_config=config)
    storage = sdk.import_storage.local.create(
        project=project.id, path=str(folder), regex_filter=r".*\.jpg", use_blob_urls=True, title="shapes"
    )
    sdk.import_storage.local.sync(id=storage.id)
    tasks = ls.client.json("GET", f"/api/tasks/?project={project.id}&page_size=1000")["tasks"]
    tasks.sort(key=lambda t: t["data"]["image"])
    assert len(tasks) == len(scenes)
    return ShapesProject(project, tasks, scenes)
