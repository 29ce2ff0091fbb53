from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace

from labelstack_backend.registry import ModelRegistry
from labelstack_backend.training.job import Heartbeat
from labelstack_backend.training.manager import STALE_AFTER, TrainingManager, is_stale
from labelstack_backend.training.state import FileJobStore, JobState, JobStatus


def test_registry_publishes_atomically_and_lists_versions(tmp_path):
    reg = ModelRegistry(tmp_path)
    assert reg.current("3") is None
    w1 = tmp_path / "a.pt"
    w1.write_bytes(b"one")
    v1 = reg.publish("3", w1, base="yolov8n-seg", meta={"images": 4})
    w1.write_bytes(b"two")
    v2 = reg.publish("3", w1, base="yolov8n-seg", meta={})
    assert v1.name != v2.name and v2.name.startswith("yolov8n-seg-p3-v2-")
    assert reg.current("3").name == v2.name  # type: ignore[union-attr]
    assert [v.name for v in reg.versions("3")] == [v1.name, v2.name]
    assert reg.get("3", v1.name).meta["images"] == 4  # type: ignore[union-attr]
    # A fresh registry (a restarted process) serves the same version.
    assert ModelRegistry(tmp_path).current_name("3") == v2.name
    assert reg.projects() == ["3"]


def test_job_store_round_trip(tmp_path):
    store = FileJobStore(tmp_path)
    assert store.get("1").status is JobStatus.IDLE
    store.update("1", lambda s: JobState(project="1", status=JobStatus.RUNNING, epoch=2, epochs=5, loss=1.5))
    got = store.get("1")
    assert (got.status, got.epoch, got.loss) == (JobStatus.RUNNING, 2, 1.5)
    assert [s.project for s in store.all()] == ["1"]


def test_training_lock_is_exclusive_and_freed_when_its_process_dies(tmp_path):
    store = FileJobStore(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys,time; from pathlib import Path; from labelstack_backend.training.state import FileJobStore;"
         f"l=FileJobStore(Path({str(tmp_path)!r})).try_lock('1', 'child', 60); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
    # One lock per MODEL_DIR: another project waits too (trainings take turns on one machine).
    assert store.try_lock("1", "me", 60) is None
    assert store.try_lock("2", "me", 60) is None
    holder.kill()
    holder.wait()
    lease = store.try_lock("1", "me", 60)
    assert lease is not None
    lease.release()


class FakeChild:
    pid = 4242

    def __init__(self):
        self.returncode = None

    def wait(self):
        while self.returncode is None:
            time.sleep(0.01)
        return self.returncode

    def poll(self):
        return self.returncode


def test_a_request_while_queued_is_folded_in_and_one_while_running_runs_once_more(tmp_path):
    store = FileJobStore(tmp_path)
    spawned = []

    def spawn(project, env):
        spawned.append((project, dict(env)))
        return FakeChild()

    mgr = TrainingManager(store, spawn=spawn)
    first = mgr.request("7", "button", ("http://ls", "tok"))
    second = mgr.request("7", "button again")
    assert first.started and not second.started and second.status == "already_running"
    assert len(spawned) == 1 and spawned[0][1]["LABELSTACK_JOB_LS_URL"] == "http://ls"
    # Still queued: the job has not read the annotations yet, so it covers this request.
    assert store.get("7").status is JobStatus.QUEUED and not store.get("7").pending
    # Running: the annotations were read already, so one more run is owed.
    store.update("7", lambda s: replace(s, status=JobStatus.RUNNING))
    third = mgr.request("7", "button once more")
    assert not third.started and len(spawned) == 1
    assert store.get("7").pending


def test_every_n_annotations_starts_a_training(tmp_path):
    store = FileJobStore(tmp_path)
    mgr = TrainingManager(store, train_every=3, spawn=lambda p, e: FakeChild())
    assert mgr.on_annotations("2", 1) is None
    assert mgr.on_annotations("2", 1) is None
    decision = mgr.on_annotations("2", 1)
    assert decision is not None and decision.started
    assert store.get("2").new_annotations == 0


def test_a_dead_job_is_reported_failed_and_does_not_block(tmp_path):
    store = FileJobStore(tmp_path)
    child = FakeChild()
    mgr = TrainingManager(store, spawn=lambda p, e: child)
    mgr.request("1", "x")
    child.returncode = -9  # killed, e.g. out of memory
    for _ in range(200):
        if store.get("1").status is JobStatus.FAILED:
            break
        time.sleep(0.01)
    state = store.get("1")
    assert state.status is JobStatus.FAILED and "code -9" in state.reason
    assert mgr.request("1", "again").started
    # The second start reaps the same dead child: let it log inside this test, not after it.
    assert mgr.join(10)


def test_stale_states_are_detected():
    now = time.time()
    assert is_stale(JobState("1", status=JobStatus.RUNNING, updated_at=now - STALE_AFTER - 1), now)
    assert not is_stale(JobState("1", status=JobStatus.RUNNING, updated_at=now), now)
    assert not is_stale(JobState("1", status=JobStatus.DONE, updated_at=0), now)


def test_a_heartbeat_restores_a_lost_state_but_never_reopens_a_finished_job(tmp_path):
    store = FileJobStore(tmp_path)
    store.update("1", lambda s: replace(s, status=JobStatus.DONE, version="v1"))
    Heartbeat(store, "1", JobStatus.RUNNING).beat()
    assert store.get("1").status is JobStatus.DONE
    (tmp_path / "projects" / "1" / "job.json").unlink()  # what a Redis restarted empty leaves
    Heartbeat(store, "1", JobStatus.RUNNING).beat()
    assert store.get("1").status is JobStatus.RUNNING


def test_a_training_past_its_timeout_is_stopped_and_reported(tmp_path):
    """A real child process that would run for a minute, in its own session as jobs are."""
    store = FileJobStore(tmp_path)
    children = []

    def spawn(project, env):
        child = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
        )
        children.append(child)
        return child

    mgr = TrainingManager(store, spawn=spawn, timeout=0.5)
    began = time.monotonic()
    assert mgr.request("5", "button").started
    for _ in range(500):
        if store.get("5").status is JobStatus.FAILED and children[0].poll() is not None:
            break
        time.sleep(0.02)
    state = store.get("5")
    assert state.status is JobStatus.FAILED
    assert "LABELSTACK_TRAIN_TIMEOUT=0.5 s" in state.reason, state.reason
    assert children[0].returncode is not None, "the overdue job is stopped, not only reported"
    assert time.monotonic() - began < 15
    assert mgr.request("5", "again").started  # the project is free to train again
    for child in children[1:]:
        child.kill()
        child.wait()
    # Its reaper logs the kill: let it do so inside this test, not into a later test's output.
    assert mgr.join(10)
