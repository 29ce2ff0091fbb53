"""One request of many tasks gives every image the regions it gets alone (issue 21):
ultralytics pads a batch of mixed sizes to a square, where one image alone stays a
rectangle, so the backend groups a request's images by the size they are scaled to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from labelstack_backend import rle
from labelstack_backend.geometry import iou
from labelstack_backend.settings import Settings
from tests.support.busy_model import busy_model

CONFIG = (
    '<View><Image name="image" value="$image"/>'
    '<BrushLabels name="mask" toName="image"><Label value="person"/></BrushLabels></View>'
)
# Two 4:3 sizes that scale to the same rectangle, their portrait, a square and a wide strip.
SIZES = [(640, 480), (480, 640), (320, 320), (200, 150), (640, 480), (1000, 300)]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from labelstack_backend.server.app import create_app
    from labelstack_backend.server.wsgi import build_service

    work = tmp_path_factory.mktemp("batching")
    weights = busy_model(work / "busy.pt", 8, imgsz=160)
    settings = Settings.from_env(
        {
            "LABELSTACK_SEG_WEIGHTS": str(weights),
            "LABELSTACK_IMGSZ": "160",
            "LABELSTACK_BATCH_SIZE": "4",
            "MODEL_DIR": str(work / "models"),
            "LABELSTACK_LOCAL_ROOTS": str(work),
        }
    )
    service = build_service(settings)
    service.start_loading().join(120)
    return create_app(service).test_client(), work


def masks(result: dict[str, Any]) -> list[np.ndarray]:
    return [
        rle.decode(r["value"]["rle"], r["original_height"], r["original_width"]) > 0 for r in result["result"]
    ]


def test_a_mixed_size_request_gives_each_image_its_single_answer(client):
    app, work = client
    rng = np.random.default_rng(3)
    tasks = []
    for i, (w, h) in enumerate(SIZES):
        path = work / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        tasks.append({"id": i, "data": {"image": str(path)}})

    def predict(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        resp = app.post("/predict", json={"tasks": batch, "label_config": CONFIG})
        assert resp.status_code == 200, resp.json
        return list(resp.json["results"])

    together = predict(tasks)
    alone = [predict([task])[0] for task in tasks]
    assert sum(len(r["result"]) for r in alone) >= 3 * len(tasks), "the model finds objects"
    for task, batched, single in zip(tasks, together, alone, strict=True):
        got, want = masks(batched), masks(single)
        assert len(got) == len(want), task
        # Each region alone has its counterpart in the batch, one to one (objects overlap, so
        # the best match is taken among those not matched yet).
        free = list(range(len(got)))
        for m in want:
            best = max(free, key=lambda j, m=m: iou(m, got[j]))
            assert iou(m, got[best]) >= 0.99, task
            free.remove(best)


def test_the_model_file_is_made_the_same_way_twice(tmp_path: Path):
    a = busy_model(tmp_path / "a.pt", 8, imgsz=160)
    b = busy_model(tmp_path / "b.pt", 8, imgsz=160)
    import torch

    sa = torch.load(a, weights_only=False)["model"].state_dict()
    sb = torch.load(b, weights_only=False)["model"].state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
