"""Background precompute of a project's embeddings, against a stand-in Label Studio client.
(The real Label Studio path is in tests/integration/test_sam_label_studio.py.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from labelstack_backend.errors import BadRequest
from labelstack_backend.predictors.sam import SamPredictor
from labelstack_backend.protocol import WebhookEvent
from tests.support.sam import CONFIG, keypoint, write_image
from tests.support.sam_models import CountingModel, call

MakePredictor = Callable[..., tuple[SamPredictor, CountingModel]]


class FakeLabelStudio:
    """What Precomputer uses of LabelStudioClient: ``url``, ``call`` and ``sdk``."""

    url = "http://label-studio.invalid"

    def __init__(self, config: str, tasks: list[dict[str, Any]]) -> None:
        self.sdk = SimpleNamespace(
            projects=SimpleNamespace(get=lambda id: SimpleNamespace(id=id, label_config=config)),
            tasks=SimpleNamespace(
                list=lambda **kw: [SimpleNamespace(id=t["id"], data=t["data"]) for t in tasks]
            ),
        )

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)


def project(tmp_path: Path, n: int) -> list[dict[str, Any]]:
    return [{"id": i, "data": {"image": str(write_image(tmp_path / f"{i}.jpg", seed=i))}} for i in range(n)]


def precompute(predictor: SamPredictor, ls: Any, project_id: int = 7) -> tuple[int, dict[str, Any]]:
    answer = predictor.webhook(WebhookEvent.parse({"action": "SAM_PRECOMPUTE", "project": project_id}), ls)
    assert answer is not None
    return answer


def test_precompute_caches_every_task_image_for_the_first_clicks(
    make_predictor: MakePredictor, tmp_path: Path
) -> None:
    tasks = [*project(tmp_path, 3), {"id": 99, "data": {"image": str(tmp_path / "gone.jpg")}}]
    predictor, model = make_predictor()
    status, body = precompute(predictor, FakeLabelStudio(CONFIG, tasks))
    assert status == 202 and body["status"] == "started"
    assert predictor.precomputer is not None
    progress = predictor.precomputer.wait("7", timeout=30)
    assert progress is not None
    assert (progress.status, progress.total, progress.done, progress.computed, progress.failed) == (
        "done",
        4,
        3,
        3,
        1,
    )
    assert model.calls == 3
    for task in tasks[:3]:
        (answer,) = predictor.predict(call(task["data"]["image"], {"result": [keypoint(40, 45, 96, 64)]}))
        assert answer["result"]
    assert model.calls == 3  # every first click was warm


def test_precompute_stops_at_what_the_cache_can_hold(make_predictor: MakePredictor, tmp_path: Path) -> None:
    one = 32 * 16 * 16 * 4
    predictor, model = make_predictor(cache_bytes=2 * one)
    precompute(predictor, FakeLabelStudio(CONFIG, project(tmp_path, 5)))
    assert predictor.precomputer is not None
    progress = predictor.precomputer.wait("7", timeout=30)
    assert progress is not None
    assert (progress.status, progress.done, progress.skipped) == ("done", 2, 3)
    assert "LABELSTACK_SAM_CACHE_BYTES" in progress.reason
    assert model.calls == 2


def test_precompute_of_a_config_sam_cannot_serve_fails_with_the_reason(
    make_predictor: MakePredictor, tmp_path: Path
) -> None:
    predictor, _ = make_predictor()
    precompute(
        predictor, FakeLabelStudio("<View><Image name='i' value='$image'/></View>", project(tmp_path, 1))
    )
    assert predictor.precomputer is not None
    progress = predictor.precomputer.wait("7", timeout=30)
    assert progress is not None and progress.status == "failed"
    assert "BrushLabels" in progress.reason


def test_precompute_needs_label_studio_and_a_project(make_predictor: MakePredictor) -> None:
    predictor, _ = make_predictor()
    with pytest.raises(BadRequest, match="LABEL_STUDIO_URL"):
        precompute(predictor, None)
    with pytest.raises(BadRequest, match="needs a 'project'"):
        predictor.webhook(WebhookEvent.parse({"action": "SAM_PRECOMPUTE"}), None)


def test_other_webhook_actions_are_not_ours(make_predictor: MakePredictor) -> None:
    predictor, _ = make_predictor()
    assert predictor.webhook(WebhookEvent.parse({"action": "ANNOTATION_CREATED", "project": 1}), None) is None
