"""What /setup said about a project reaches every worker (and, with Redis, every replica).

Label Studio posts /setup once, to whichever gunicorn worker answers; the project's later
/predict calls without a label config and its webhooks land on any worker. Here: the stores
(files in the workers' shared directory, Redis, memory), and two services sharing one
directory as two workers of a server do.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from labelstack_backend.coordination.link import RedisLink
from labelstack_backend.labelconfig import LabelConfig
from labelstack_backend.predictors.base import PredictCall
from labelstack_backend.protocol import WebhookEvent
from labelstack_backend.server import projects as projects_module
from labelstack_backend.server.app import create_app
from labelstack_backend.server.projects import (
    FileProjectStore,
    InvalidProject,
    MemoryProjectStore,
    ProjectInfo,
    ProjectStore,
    RedisProjectStore,
    project_store,
)
from labelstack_backend.server.service import BackendService
from labelstack_backend.settings import Settings
from labelstack_backend.training.job import ENV_LS_TOKEN, ENV_LS_URL
from labelstack_backend.training.manager import TrainingManager
from labelstack_backend.training.state import FileJobStore
from labelstack_common.contract import Env
from labelstack_common.labelstudio import LabelStudioClient
from labelstack_tools.localstack.ports import free_port
from tests.support.backend import run_backend
from tests.support.redis_server import RedisServer

CONFIG = (
    '<View><Image name="image" value="$image"/>'
    '<PolygonLabels name="poly" toName="image"><Label value="person"/></PolygonLabels></View>'
)
OTHER_CONFIG = CONFIG.replace('"person"', '"car"')
TOKEN = "ls-token-0123456789"
INFO = ProjectInfo(CONFIG, "http://ls.example:8080", TOKEN)
TASKS = [{"id": 1, "data": {"image": "x"}}]

HOSTILE = [
    "",
    "..",
    ".",
    "../x",
    "../../etc/passwd",
    "/etc/passwd",
    "a/b",
    "7.json",
    "7\n",
    "7\x00",
    "x" * 65,
]


# -- the record ---------------------------------------------------------------------------------
def test_the_info_keeps_the_xml_parses_it_once_and_hides_the_token_from_reprs():
    assert ProjectInfo.from_json(json.loads(json.dumps(INFO.to_json()))) == INFO
    assert isinstance(INFO.config, LabelConfig) and INFO.config.controls[0].name == "poly"
    assert ProjectInfo(CONFIG).config is INFO.config, "the parsed config is cached by its XML"
    assert TOKEN not in repr(INFO)
    for bad in (None, [], {}, {"label_config": ""}, {"label_config": CONFIG, "access_token": 7}):
        with pytest.raises(ValueError):
            ProjectInfo.from_json(bad)


# -- files in the workers' shared directory -----------------------------------------------------
def test_a_file_store_round_trips_between_two_instances_on_one_directory(tmp_path: Path):
    a, b = FileProjectStore(tmp_path / "projects"), FileProjectStore(tmp_path / "projects")
    assert b.get("7") is None and b.projects() == []
    a.put("7", INFO)
    a.put("12", ProjectInfo(OTHER_CONFIG))
    assert b.get("7") == INFO
    other = b.get("12")
    assert other == ProjectInfo(OTHER_CONFIG) and other.config.controls[0].labels[0].value == "car"
    assert b.projects() == ["12", "7"]
    a.put("7", ProjectInfo(OTHER_CONFIG, "http://other", "t2"))  # a later /setup replaces it
    assert b.get("7") == ProjectInfo(OTHER_CONFIG, "http://other", "t2")


def test_the_files_are_private_to_the_backend_user(tmp_path: Path):
    store = FileProjectStore(tmp_path / "projects")
    old = os.umask(0o022)  # the usual umask would leave a plain file world-readable
    try:
        store.put("7", INFO)
    finally:
        os.umask(old)
    path = tmp_path / "projects" / "7.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "it holds a Label Studio token"
    assert stat.S_IMODE((tmp_path / "projects").stat().st_mode) == 0o700
    assert json.loads(path.read_text())["access_token"] == TOKEN


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path: Path, monkeypatch):
    store = FileProjectStore(tmp_path)
    store.put("7", INFO)

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(projects_module.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        store.put("7", ProjectInfo(OTHER_CONFIG))
    assert store.get("7") == INFO
    assert sorted(p.name for p in tmp_path.iterdir()) == ["7.json"]


def test_a_reader_never_sees_half_a_write(tmp_path: Path):
    writer, reader = FileProjectStore(tmp_path), FileProjectStore(tmp_path)
    big = [ProjectInfo(CONFIG + "<!--" + "x" * 200_000 + "-->"), ProjectInfo(OTHER_CONFIG, "h", "t")]
    writer.put("7", big[0])
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set():
            writer.put("7", big[i % 2])
            i += 1

    thread = threading.Thread(target=write)
    thread.start()
    try:
        seen = [reader.get("7") for _ in range(300)]
    finally:
        stop.set()
        thread.join()
    assert all(info in big for info in seen), "every read is one whole version or the other"


@pytest.mark.parametrize("project", HOSTILE)
def test_hostile_project_ids_are_refused_and_nothing_leaves_the_directory(tmp_path: Path, project: str):
    root = tmp_path / "state" / "projects"
    for store in (FileProjectStore(root), MemoryProjectStore()):
        with pytest.raises(InvalidProject) as refused:
            store.put(project, INFO)
        assert refused.value.status == 400
        with pytest.raises(InvalidProject):
            store.get(project)
    assert {p.relative_to(tmp_path) for p in tmp_path.rglob("*")} <= {Path("state"), Path("state/projects")}


def test_an_unreadable_file_is_unknown_rather_than_an_error(tmp_path: Path):
    store = FileProjectStore(tmp_path)
    (tmp_path / "7.json").write_text("{half a")
    (tmp_path / "8.json").write_text(json.dumps({"hostname": "h"}))
    assert store.get("7") is None and store.get("8") is None
    store.put("7", INFO)  # the next /setup repairs it
    assert store.get("7") == INFO


def test_the_store_follows_the_directory_gunicorn_gives_its_workers(tmp_path: Path):
    assert FileProjectStore.from_env({}) is None
    found = FileProjectStore.from_env({Env.WORKER_STATE_DIR: str(tmp_path)})
    assert found is not None and found.directory == tmp_path / "projects"
    assert isinstance(project_store(None, {}), MemoryProjectStore), "one process alone"
    chosen = project_store(None, {Env.WORKER_STATE_DIR: str(tmp_path)})
    assert isinstance(chosen, FileProjectStore) and chosen.directory == tmp_path / "projects"


# -- Redis, shared by replicas ------------------------------------------------------------------
@pytest.fixture
def links(redis_server: RedisServer) -> Iterator[list[RedisLink]]:
    made = [
        RedisLink.connect(redis_server.url, password=redis_server.password, prefix="test:stack:seg")
        for _ in range(2)
    ]
    yield made
    for link in made:
        link.close()


def wait_up(link: RedisLink) -> None:
    for _ in range(200):
        if link.ping():  # also what the monitor thread does; runs the reconnect listeners
            return
        threading.Event().wait(0.05)
    raise AssertionError("Redis did not come back")


def test_replicas_share_projects_through_redis(
    tmp_path: Path, links: list[RedisLink], redis_server: RedisServer
):
    a = RedisProjectStore(links[0], FileProjectStore(tmp_path / "a"))
    b = RedisProjectStore(links[1], FileProjectStore(tmp_path / "b"))
    assert b.get("7") is None
    a.put("7", INFO)
    assert b.get("7") == INFO and b.projects() == ["7"]
    assert a.local.get("7") == INFO, "written through to the server's own files"
    raw = redis_server.client().get("test:stack:seg:project:7")
    assert raw is not None and json.loads(raw)["label_config"] == CONFIG, "keys carry the prefix"
    with pytest.raises(InvalidProject):
        b.get("7:x")


def test_without_redis_a_replica_serves_what_it_was_set_up_with_and_syncs_after(
    tmp_path: Path, links: list[RedisLink], redis_server: RedisServer
):
    a = RedisProjectStore(links[0], FileProjectStore(tmp_path / "a"))
    b = RedisProjectStore(links[1], FileProjectStore(tmp_path / "b"))
    a.put("7", INFO)
    redis_server.stop()
    # No exception anywhere: /setup, /predict and webhooks keep working on what this server knows.
    a.put("8", ProjectInfo(OTHER_CONFIG, "http://ls", "t8"))
    a.put("7", ProjectInfo(OTHER_CONFIG, "http://ls", "t7"))  # newer than Redis's copy
    assert a.get("8") == ProjectInfo(OTHER_CONFIG, "http://ls", "t8")
    assert a.get("7") == ProjectInfo(OTHER_CONFIG, "http://ls", "t7")
    assert a.projects() == ["7", "8"]
    assert b.get("8") is None and b.projects() == [], "set up elsewhere during the outage: unknown here"

    redis_server.start()  # back, and empty (no persistence)
    wait_up(links[0])  # the reconnect pushes what /setup sent during the outage
    wait_up(links[1])
    assert b.get("8") == ProjectInfo(OTHER_CONFIG, "http://ls", "t8")
    assert b.get("7") == ProjectInfo(OTHER_CONFIG, "http://ls", "t7"), "the newer copy won"


def test_a_project_redis_lost_is_given_back_by_the_replica_that_knows_it(
    tmp_path: Path, links: list[RedisLink], redis_server: RedisServer
):
    a = RedisProjectStore(links[0], FileProjectStore(tmp_path / "a"))
    b = RedisProjectStore(links[1], FileProjectStore(tmp_path / "b"))
    a.put("7", INFO)
    redis_server.client().flushall()  # a Redis restarted without persistence, with no outage seen
    assert b.get("7") is None
    assert a.get("7") == INFO  # from its own files, and written back
    assert b.get("7") == INFO


# -- two workers of one server ------------------------------------------------------------------
class FakePredictor:
    """Records what each call got; answers one empty result per task."""

    name = "fake"
    interactive = False

    def __init__(self) -> None:
        self.calls: list[PredictCall] = []

    def load(self) -> None:
        pass

    def check_config(self, config: LabelConfig, project: str | None = None) -> None:
        pass

    def model_version(self, project: str | None) -> str:
        return "fake-1"

    def versions(self, project: str | None) -> list[str]:
        return ["fake-1"]

    def predict(self, call: PredictCall) -> list[dict[str, Any]]:
        self.calls.append(call)
        return [{"result": [], "model_version": "fake-1"} for _ in call.tasks]

    def webhook(self, event: WebhookEvent, ls: LabelStudioClient | None) -> tuple[int, dict[str, Any]] | None:
        return None

    def trained_projects(self) -> list[str]:
        return []

    def shared_cache_stats(self) -> None:
        return None


class FakeChild:
    pid = 4242
    returncode = 0

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def poll(self) -> int:
        return 0


def worker(
    tmp_path: Path, projects: ProjectStore, spawned: list[tuple[str, dict[str, str]]]
) -> tuple[BackendService, FakePredictor, FlaskClient]:
    """One gunicorn worker's service: its own predictor and trainer, the server's job store."""
    settings = Settings.from_env({"MODEL_DIR": str(tmp_path / "models")})

    def spawn(project: str, env: Mapping[str, str]) -> Any:
        spawned.append((project, dict(env)))
        return FakeChild()

    trainer = TrainingManager(FileJobStore(settings.model_dir_resolved), spawn=spawn)
    predictor = FakePredictor()
    service = BackendService(settings, predictor, trainer, projects=projects)
    service.start_loading().join(10)
    return service, predictor, create_app(service).test_client()


def setup_body(project: str = "7.1700000000") -> dict[str, str]:
    return {"project": project, "schema": CONFIG, "hostname": "http://ls.example:8080", "access_token": TOKEN}


def test_setup_on_one_worker_serves_predict_and_webhooks_on_another(tmp_path: Path):
    env = {Env.WORKER_STATE_DIR: str(tmp_path / "workers")}  # what gunicorn_conf.py gives both
    spawned: list[tuple[str, dict[str, str]]] = []
    _, _, first = worker(tmp_path, project_store(None, env), spawned)
    second_service, second_predictor, second = worker(tmp_path, project_store(None, env), spawned)

    assert first.post("/setup", json=setup_body()).status_code == 200

    resp = second.post("/predict", json={"project": "7.1700000000", "tasks": TASKS})
    assert resp.status_code == 200, resp.json
    call = second_predictor.calls[-1]
    assert call.config.controls[0].name == "poly", "the config /setup sent, read by the other worker"
    assert call.ls is not None and call.ls.url == "http://ls.example:8080"

    resp = second.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 7}})
    assert resp.status_code == 201, resp.json
    assert spawned[-1] == ("7", {ENV_LS_URL: "http://ls.example:8080", ENV_LS_TOKEN: TOKEN})
    annotated = {"action": "ANNOTATION_CREATED", "project": 7, "annotation": {"id": 1}}
    resp = second.post("/webhook", json=annotated)
    assert resp.status_code == 200 and resp.json["status"] == "counted"
    assert "7" in second_service.known_projects()


def test_without_a_setup_anywhere_the_reasons_are_unchanged(tmp_path: Path):
    env = {Env.WORKER_STATE_DIR: str(tmp_path / "workers")}
    _, _, client = worker(tmp_path, project_store(None, env), [])
    resp = client.post("/predict", json={"project": "9.1", "tasks": TASKS})
    assert resp.status_code == 400 and "never set up" in resp.json["error"]
    resp = client.post("/webhook", json={"action": "START_TRAINING", "project": 9})
    assert resp.status_code == 404 and "never set up" in resp.json["error"]


def test_setup_on_one_replica_serves_another_through_redis(tmp_path: Path, redis_server: RedisServer):
    spawned: list[tuple[str, dict[str, str]]] = []
    made = [RedisLink.connect(redis_server.url, password=redis_server.password, prefix="t") for _ in range(2)]
    try:
        clients = []
        for name, link in zip(("a", "b"), made, strict=True):  # each replica its own disk
            store = project_store(link, {Env.WORKER_STATE_DIR: str(tmp_path / name)})
            clients.append(worker(tmp_path / name, store, spawned)[2])
        assert clients[0].post("/setup", json=setup_body()).status_code == 200
        resp = clients[1].post("/predict", json={"project": "7.1", "tasks": TASKS})
        assert resp.status_code == 200, resp.json
        assert clients[1].post("/webhook", json={"action": "START_TRAINING", "project": 7}).status_code == 201
    finally:
        for link in made:
            link.close()


def test_the_service_defaults_to_one_process_memory(tmp_path: Path):
    service, _, _ = worker(tmp_path, MemoryProjectStore(), [])
    assert isinstance(BackendService(service.settings, FakePredictor()).projects, MemoryProjectStore)


# -- the real server: gunicorn with two workers -------------------------------------------------
@pytest.mark.integration
def test_one_setup_then_every_request_on_either_gunicorn_worker_knows_the_project(tmp_path: Path):
    env = {"LABELSTACK_DEMO_MODEL": "1", "WORKERS": "2", "LABELSTACK_IMGSZ": "160"}
    with run_backend(tmp_path, env) as backend:
        body = setup_body() | {"hostname": f"http://127.0.0.1:{free_port()}"}  # never called here
        assert requests.post(f"{backend.url}/setup", json=body, timeout=30).status_code == 200

        def predict(_: int) -> requests.Response:
            tasks = [{"id": 1, "data": {"image": str(tmp_path / "missing.jpg")}}]  # a per-task error only
            return requests.post(
                f"{backend.url}/predict", json={"project": "7.1", "tasks": tasks}, timeout=60
            )

        def annotated(_: int) -> requests.Response:
            # Needs the project's Label Studio access like START_TRAINING, without starting a training.
            event = {"action": "ANNOTATION_CREATED", "project": 7, "annotation": {"id": 1}}
            return requests.post(f"{backend.url}/webhook", json=event, timeout=30)

        # Fresh connections from several threads, so that both workers take some of them.
        with ThreadPoolExecutor(8) as pool:
            answers: Sequence[requests.Response] = [
                *pool.map(predict, range(20)),
                *pool.map(annotated, range(20)),
            ]
        failed = [(r.request.path_url, r.status_code, r.text[:200]) for r in answers if r.status_code != 200]
        assert not failed, failed
        assert all(r.json()["results"][0]["error"] for r in answers[:20])
        assert all(r.json() == {"status": "counted"} for r in answers[20:])
        assert backend.alive()
