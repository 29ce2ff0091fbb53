"""Bulk pre-labeling without servers: planning, the pass, the lock and resuming, the gate."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from labelstack_backend.prelabel.job import JobParts, run_pass
from labelstack_backend.prelabel.progress import Progress, RunStatus, import_payload, to_predict
from labelstack_backend.prelabel.runner import Prelabeler
from labelstack_backend.prelabel.store import FileProgressStore
from labelstack_backend.priority import PriorityGate
from labelstack_common.labelstudio import TaskPage, TaskRow, _versions


class FakeLabelStudio:
    """Tasks and predictions in memory, with Label Studio's paging and bulk import."""

    def __init__(self, n: int) -> None:
        self.versions: dict[int, list[str]] = {i: [] for i in range(1, n + 1)}
        self.imports: list[int] = []  # size of each bulk write

    def task_pages(self, project: int, page_size: int = 100) -> Iterator[TaskPage]:
        ids = sorted(self.versions)
        for start in range(0, len(ids), page_size):
            rows = [
                TaskRow(i, {"image": f"/x/{i}.png"}, frozenset(self.versions[i]))
                for i in ids[start : start + page_size]
            ]
            yield TaskPage(len(ids), rows)

    def import_predictions(self, project: int, predictions: Sequence[dict[str, Any]]) -> int:
        self.imports.append(len(predictions))
        for p in predictions:
            self.versions[p["task"]].append(p["model_version"])
        return len(predictions)


def parts(
    ls: FakeLabelStudio, version: str = "v1", fail: frozenset[int] = frozenset(), **kw: Any
) -> JobParts:
    def predict(tasks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {"task": t["id"], "error": "broken"}
            if t["id"] in fail
            else {"result": [], "score": 0.5, "model_version": version}
            for t in tasks
        ]

    size = {"batch_size": 4, "page_size": 7, "batches_per_write": 1, **kw}
    return JobParts(ls, 1, lambda: version, predict, **size)  # type: ignore[arg-type]


def test_a_pass_predicts_every_task_in_batches_and_a_second_writes_nothing() -> None:
    ls = FakeLabelStudio(10)
    saved: list[int] = []
    first = run_pass(parts(ls), Progress("1"), lambda p: saved.append(p.written))
    assert (first.total, first.done, first.written, first.failed) == (10, 10, 10, 0)
    assert ls.imports == [4, 4, 2], "one bulk write per batch, pages notwithstanding"
    assert all(v == ["v1"] for v in ls.versions.values())
    second = run_pass(parts(ls), Progress("1"), lambda p: None)
    assert (second.done, second.written, ls.imports[3:]) == (10, 0, [])


def test_several_batches_go_to_the_predictor_and_to_label_studio_at_once() -> None:
    ls = FakeLabelStudio(10)
    calls: list[int] = []
    base = parts(ls, batch_size=2, batches_per_write=2)

    def predict(tasks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        calls.append(len(tasks))
        return base.predict(tasks)

    counting = JobParts(ls, 1, base.version, predict, 2, 7, 2)  # type: ignore[arg-type]
    run_pass(counting, Progress("1"), lambda p: None)
    assert calls == [4, 4, 2] and ls.imports == [4, 4, 2]


def test_failed_tasks_are_not_written_and_are_tried_by_the_next_pass() -> None:
    ls = FakeLabelStudio(5)
    got = run_pass(parts(ls, fail=frozenset({2})), Progress("1"), lambda p: None)
    assert (got.written, got.failed, ls.versions[2]) == (4, 1, [])
    assert run_pass(parts(ls), Progress("1"), lambda p: None).written == 1


def test_a_new_serving_version_is_predicted_again() -> None:
    ls = FakeLabelStudio(3)
    run_pass(parts(ls, "v1"), Progress("1"), lambda p: None)
    assert run_pass(parts(ls, "v2"), Progress("1"), lambda p: None).written == 3
    assert all(v == ["v1", "v2"] for v in ls.versions.values())


def test_planning_and_payload() -> None:
    rows = [TaskRow(1, {}, frozenset({"v1"})), TaskRow(2, {}, frozenset({"v0", "v1x"}))]
    missing, holding = to_predict(rows, "v1")
    assert [t.id for t in missing] == [2] and holding == 1
    assert _versions(" x,v2,v1") == {"x", "v2", "v1"} and _versions(None) == frozenset()
    assert import_payload(3, {"task": 3, "error": "no"}) is None
    assert import_payload(3, {"result": [1], "score": 0.2, "model_version": "v"}) == {
        "task": 3, "result": [1], "score": 0.2, "model_version": "v"}  # fmt: skip


def test_progress_rate_and_eta() -> None:
    p = Progress("1", status=RunStatus.RUNNING, total=100, done=40, written=30, started_at=1000.0)
    assert p.rate(now=1010.0) == 3.0 and p.eta_s(now=1010.0) == 20.0
    assert Progress.from_json(p.to_json(now=1010.0)) == p
    assert Progress("1", status=RunStatus.RUNNING, started_at=1.0).eta_s(now=2.0) is None


def test_one_run_per_project_a_request_meanwhile_makes_one_more_pass(tmp_path: Path) -> None:
    ls = FakeLabelStudio(6)
    release = threading.Event()
    entered = threading.Event()
    base = parts(ls)

    def slow(tasks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        entered.set()
        release.wait(10)
        return base.predict(tasks)

    store = FileProgressStore(tmp_path / "prelabel")
    slow_parts = JobParts(ls, 1, base.version, slow, 4, batches_per_write=1)  # type: ignore[arg-type]
    runner = Prelabeler(store, lambda project: slow_parts, lock_ttl=5)
    other = Prelabeler(store, lambda project: base)  # another worker or replica
    assert runner.start("1", "test")[0]
    entered.wait(10)
    started, progress = other.start("1", "test")
    assert not started and progress.pending and progress.active
    release.set()
    final = runner.wait("1", 20)
    assert (final.status, final.pending, final.written, final.done) == (RunStatus.DONE, False, 0, 6), (
        "the second pass found everything written"
    )
    assert ls.imports == [4, 2]


def test_a_run_whose_process_died_is_resumed(tmp_path: Path) -> None:
    ls = FakeLabelStudio(5)
    store = FileProgressStore(tmp_path / "prelabel")
    store.update("1", lambda p: Progress("1", status=RunStatus.RUNNING, owner="gone:1", done=2))
    runner = Prelabeler(store, lambda project: parts(ls))
    assert runner.resume_interrupted() == ["1"]
    assert runner.wait("1", 20).status is RunStatus.DONE and ls.imports == [4, 1]
    assert runner.resume_interrupted() == [], "a finished run is not resumed"


def test_a_second_worker_resuming_the_same_run_asks_no_extra_pass(tmp_path: Path) -> None:
    store = FileProgressStore(tmp_path / "prelabel")
    store.update("1", lambda p: Progress("1", status=RunStatus.RUNNING, owner="gone:1"))
    held = store.try_lock("1", "first-worker", 60)  # the first worker resumed it
    assert held is not None
    late = Prelabeler(store, lambda project: parts(FakeLabelStudio(1)))
    assert late.resume_interrupted() == [] and not store.get("1").pending
    held.release()


def test_the_gate_lets_interactive_calls_go_first() -> None:
    gate = PriorityGate(exclusive=False)
    order: list[str] = []
    inside = threading.Event()
    leave = threading.Event()

    def interactive(name: str) -> None:
        with gate.hold():
            order.append(name)
            inside.set()
            leave.wait(10)

    first = threading.Thread(target=interactive, args=("i1",))
    first.start()
    inside.wait(10)
    second = threading.Thread(target=interactive, args=("i2",))
    second.start()  # shares the gate with i1: not exclusive

    def background() -> None:
        with gate.hold(background=True):
            order.append("bulk")

    bulk = threading.Thread(target=background)
    bulk.start()
    deadline = time.monotonic() + 10
    while "i2" not in order and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "bulk" not in order, "the background caller waits while interactive ones hold the gate"
    leave.set()
    for t in (first, second, bulk):
        t.join(10)
    assert order == ["i1", "i2", "bulk"]


def test_the_exclusive_gate_still_serialises_interactive_calls() -> None:
    gate = PriorityGate(exclusive=True)
    with gate.hold():
        blocked = threading.Thread(target=lambda: gate.hold().__enter__())
        blocked.start()
        blocked.join(0.2)
        assert blocked.is_alive()
    blocked.join(5)
    assert not blocked.is_alive()


def test_bulk_calls_reach_the_model_at_background_priority(tmp_path: Path) -> None:
    from contextlib import contextmanager

    from PIL import Image

    from labelstack_backend.images import ImageLoader
    from labelstack_backend.labelconfig import parse_label_config
    from labelstack_backend.predictors.base import PredictCall
    from labelstack_backend.predictors.segmentation import SegmentationPredictor
    from labelstack_backend.registry import open_registry
    from labelstack_backend.settings import Settings

    env = {"LABELSTACK_DEMO_MODEL": "1", "LABELSTACK_IMGSZ": "64", "MODEL_DIR": str(tmp_path / "m"),
           "LABELSTACK_LOCAL_ROOTS": str(tmp_path), "LABELSTACK_RUNTIME": "torch"}  # fmt: skip
    settings = Settings.from_env(env)
    predictor: Any = SegmentationPredictor(
        settings, open_registry(settings), ImageLoader.from_settings(settings)
    )
    predictor.models.load_base()  # not load(): no version-follower thread left at exit
    seen: list[bool] = []

    @contextmanager
    def hold(background: bool = False) -> Iterator[None]:
        seen.append(background)
        yield

    predictor.gate.hold = hold
    Image.new("RGB", (32, 24)).save(tmp_path / "a.png")
    config = parse_label_config(
        '<View><Image name="image" value="$image"/><PolygonLabels name="p" toName="image">'
        '<Label value="person"/></PolygonLabels></View>'
    )
    tasks = [{"id": 1, "data": {"image": str(tmp_path / "a.png")}}]
    for background in (True, False):
        (answer,) = predictor.predict(PredictCall(tasks, None, config, None, None, background=background))
        assert "result" in answer, answer
    assert seen == [True, False]
