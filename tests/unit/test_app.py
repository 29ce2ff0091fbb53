"""The protocol server through Flask's test client, with a random YOLOv8n-seg built from config."""

from __future__ import annotations

import base64
import json

import pytest
from PIL import Image

from labelstack_backend.errors import ModelLoadError
from labelstack_backend.server.app import create_app
from labelstack_backend.server.workers import WorkerBoard
from labelstack_backend.server.wsgi import build_service
from labelstack_backend.settings import Settings

CONFIG = (
    '<View><Image name="image" value="$image"/>'
    '<PolygonLabels name="poly" toName="image"><Label value="person"/><Label value="Bus" predicted_values="car,truck"/>'
    "</PolygonLabels></View>"
)


def make_service(tmp_path, **overrides):
    env = {
        "LABELSTACK_DEMO_MODEL": "1",
        "MODEL_DIR": str(tmp_path / "models"),
        "LABELSTACK_SCORE_THRESHOLD": "0.0",
        "LABELSTACK_LOCAL_ROOTS": str(tmp_path),
    }
    return build_service(Settings.from_env(env, **overrides))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app")
    service = make_service(tmp)
    app = create_app(service)
    client = app.test_client()
    before = client.get("/health")
    service.start_loading().join(120)
    images = tmp / "images"
    images.mkdir()
    for name, size in (("wide.jpg", (320, 180)), ("tall.jpg", (150, 300))):
        Image.effect_noise(size, 60).convert("RGB").save(images / name)
    return service, client, before, images


def test_health_is_honest_before_and_after_loading(served):
    service, client, before, _ = served
    assert before.status_code == 503 and before.json["status"] == "LOADING"
    after = client.get("/health")
    assert after.status_code == 200
    assert after.json["status"] == "UP" and after.json["model_version"] == "yolov8n-seg-random"


def test_health_waits_for_every_worker_of_the_server(served, tmp_path, monkeypatch):
    service, client, _, _ = served
    board = WorkerBoard(tmp_path)
    board.reset(2)
    monkeypatch.setattr(service, "board", board)
    board.mark_ready(1)  # this worker's sibling; this one is ready but has not said so here
    half = client.get("/health")
    assert half.status_code == 503, "one of two workers ready: Kubernetes must not route here yet"
    assert half.json["status"] == "UP" and half.json["ready"] is False
    assert half.json["workers"] == {"ready": 1, "expected": 2}
    assert half.json["reason"] == "1 of 2 workers have loaded the model"
    board.mark_ready(2)
    full = client.get("/health")
    assert full.status_code == 200 and full.json["ready"] is True
    assert full.json["workers"] == {"ready": 2, "expected": 2} and "reason" not in full.json


def test_liveness_is_only_lost_when_the_model_failed(served, tmp_path):
    _, client, _, _ = served
    assert client.get("/livez").status_code == 200
    loading = make_service(tmp_path)
    resp = create_app(loading).test_client().get("/livez")
    assert resp.status_code == 200 and resp.json == {"status": "LOADING"}, "loading is alive"
    failed = make_service(tmp_path)
    failed._fail("CUDA out of memory")
    resp = create_app(failed).test_client().get("/livez")
    assert resp.status_code == 503 and resp.json == {"status": "FAILED", "reason": "CUDA out of memory"}


def test_setup_answers_the_model_version(served):
    _, client, _, _ = served
    resp = client.post(
        "/setup", json={"project": "7.1700000000", "schema": CONFIG, "hostname": "", "access_token": ""}
    )
    assert resp.status_code == 200 and resp.json == {"model_version": "yolov8n-seg-random"}


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"project": "7.1", "schema": "<View><Text name='t' value='$t'/></View>"}, 422, "<Image>"),
        ({"project": "7.1"}, 400, "schema"),
        ({"project": "x.y", "schema": CONFIG}, 400, "project"),
    ],
)
def test_setup_refuses_what_it_cannot_serve(served, body, status, reason):
    _, client, _, _ = served
    resp = client.post("/setup", json=body)
    assert resp.status_code == status and reason in resp.json["error"]


def test_predict_answers_every_task_in_order_and_isolates_a_bad_image(served):
    _, client, _, images = served
    tasks = [
        {"id": 11, "data": {"image": str(images / "wide.jpg")}},
        {"id": 12, "data": {"image": str(images / "missing.jpg")}},
        {"id": 13, "data": {"image": str(images / "tall.jpg")}},
    ]
    resp = client.post("/predict", json={"tasks": tasks, "project": "7.1", "label_config": CONFIG})
    assert resp.status_code == 200
    results = resp.json["results"]
    assert len(results) == 3
    assert "result" not in results[1] and "no such file" in results[1]["error"]
    for res, size in ((results[0], (320, 180)), (results[2], (150, 300))):
        assert res["model_version"] == "yolov8n-seg-random"
        assert res["result"], "a random model at threshold 0 finds something"
        for region in res["result"]:
            assert (region["original_width"], region["original_height"]) == size
            assert region["type"] == "polygonlabels" and region["value"]["polygonlabels"][0] in {
                "person",
                "Bus",
            }
            assert all(0 <= x <= 100 and 0 <= y <= 100 for x, y in region["value"]["points"])


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"", 400, "no body"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"tasks": [{"id": 1}]}', 400, "'data'"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
        (b'{"tasks": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "nested too deeply"),
        (b"\xff\xfe{", 400, "not valid JSON"),
    ],
)
def test_garbage_gets_a_4xx_with_a_reason(served, data, status, reason):
    _, client, _, _ = served
    resp = client.post("/predict", data=data, content_type="application/json")
    assert resp.status_code == status and reason in resp.json["error"]
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize("route", ["/predict", "/setup", "/webhook"])
def test_deep_json_is_a_400_on_every_route(served, route):
    _, client, _, _ = served
    resp = client.post(route, data=b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert resp.status_code == 400 and "nested too deeply" in resp.json["error"]


def test_a_lone_surrogate_fails_its_own_task_only(served):
    _, client, _, images = served
    # json.dumps writes the lone surrogate as the escape \ud800, as any JSON client may.
    tasks = [
        {"id": 1, "data": {"image": "http://x/\ud800.jpg"}},
        {"id": 2, "data": {"image": str(images / "wide.jpg")}},
    ]
    body = json.dumps({"label_config": CONFIG, "tasks": tasks})
    assert "\\ud800" in body
    resp = client.post("/predict", data=body, content_type="application/json")
    assert resp.status_code == 200, resp.json
    bad, good = resp.json["results"]
    assert "result" not in bad and "surrogate" in bad["error"]
    assert good["result"]


def test_a_lone_surrogate_in_a_label_is_a_4xx_at_setup(served):
    _, client, _, _ = served
    body = json.dumps({"project": "3.1", "schema": CONFIG.replace("person", "pers\ud800on")})
    resp = client.post("/setup", data=body, content_type="application/json")
    assert resp.status_code == 422 and "surrogate" in resp.json["error"]


def test_predict_needs_a_config_from_somewhere(served):
    _, client, _, images = served
    resp = client.post(
        "/predict", json={"tasks": [{"data": {"image": str(images / "wide.jpg")}}], "project": "99.1"}
    )
    assert resp.status_code == 400 and "label_config" in resp.json["error"]
    resp = client.post(
        "/predict", json={"tasks": [{"data": {"image": str(images / "wide.jpg")}}], "project": "7.1"}
    )
    assert resp.status_code == 200  # project 7 was set up


def test_versions_reads_the_project_from_query_or_body(served):
    _, client, _, _ = served
    by_query = client.get("/versions?project=7")
    by_body = client.get("/versions", json={"project": "7.1700000000"})
    assert by_query.json == by_body.json
    assert (
        by_query.json["versions"] == ["yolov8n-seg-random"] and by_query.json["training"]["status"] == "idle"
    )


def test_webhooks(served):
    _, client, _, _ = served
    ignored = client.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 7}})
    assert ignored.status_code == 200 and ignored.json["status"] == "ignored"
    # No LABEL_STUDIO_URL/API key and no /setup hostname: training cannot fetch data.
    refused = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 7}})
    assert refused.status_code == 404 and "never set up" in refused.json["error"]
    missing = client.post("/webhook", json={"action": "START_TRAINING"})
    assert missing.status_code == 400


def test_metrics(served):
    _, client, _, _ = served
    client.get("/health")
    text = client.get("/metrics").data.decode()
    assert 'labelstack_requests_total{route="/health",status="200"}' in text
    assert 'labelstack_model_version_info{project="default",version="yolov8n-seg-random"} 1.0' in text
    assert "labelstack_request_seconds_bucket" in text


def test_one_replica_without_redis_is_not_degraded(served):
    _, client, _, _ = served
    body = client.get("/health").json
    assert body["degraded"] is False and body["redis"] == {"status": "off"}


def test_inflight_requests_count_work_but_not_probes(served, monkeypatch):
    from labelstack_backend import metrics

    service, client, _, images = served
    seen = []
    original = service.predict

    def predict(req):
        seen.append(metrics.INFLIGHT._value.get())
        return original(req)

    monkeypatch.setattr(service, "predict", predict)
    body = {"tasks": [{"id": 1, "data": {"image": str(images / "wide.jpg")}}], "label_config": CONFIG}
    assert client.post("/predict", json=body).status_code == 200
    client.get("/health")
    client.get("/metrics")
    assert seen == [1.0], "the /predict in progress counted"
    assert metrics.INFLIGHT._value.get() == 0, "and nothing is left counted, probes and scrapes included"


def test_basic_auth_guards_everything_but_health(tmp_path):
    service = make_service(tmp_path, BASIC_AUTH_USER="u", BASIC_AUTH_PASS="p")
    client = create_app(service).test_client()
    assert client.get("/health").status_code == 503  # open, but still loading
    assert client.get("/livez").status_code == 200
    assert client.get("/").status_code == 401  # the same body as /health, but not a probe
    assert client.post("/setup", json={"schema": CONFIG}).status_code == 401
    assert client.get("/metrics").status_code == 401
    good = {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(b"u:x").decode()}
    assert client.get("/metrics", headers=good).status_code == 200
    assert client.get("/metrics", headers=bad).status_code == 401


def test_an_unexpected_error_is_a_500_without_a_traceback(served, monkeypatch):
    service, client, _, images = served

    def boom(call):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service.predictor, "predict", boom)
    resp = client.post(
        "/predict", json={"tasks": [{"data": {"image": str(images / "wide.jpg")}}], "label_config": CONFIG}
    )
    assert resp.status_code == 500
    assert "secret internals" not in resp.get_data(as_text=True) and "Traceback" not in resp.get_data(
        as_text=True
    )
    assert client.get("/health").status_code == 200


def test_missing_weights_fail_at_start_with_the_fix(tmp_path, monkeypatch):
    with pytest.raises(ModelLoadError, match="does not exist"):
        build_service(
            Settings.from_env(
                {"LABELSTACK_SEG_WEIGHTS": str(tmp_path / "nope.pt"), "MODEL_DIR": str(tmp_path)}
            )
        )
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="LABELSTACK_DEMO_MODEL"):
        build_service(Settings.from_env({"MODEL_DIR": str(tmp_path)}))


def test_a_request_above_the_task_limit_is_a_413_that_names_the_limit(served):
    service, client, _, images = served
    task = {"data": {"image": str(images / "wide.jpg")}}
    limit = service.settings.max_tasks_per_request
    assert limit == 256, "the documented default"
    resp = client.post("/predict", json={"tasks": [task] * (limit + 1), "label_config": CONFIG})
    assert resp.status_code == 413
    reason = resp.json["error"]
    assert (
        f"{limit + 1} tasks" in reason
        and str(limit) in reason
        and "LABELSTACK_MAX_TASKS_PER_REQUEST" in reason
    )
    ok = client.post("/predict", json={"tasks": [task] * 2, "label_config": CONFIG})
    assert ok.status_code == 200 and len(ok.json["results"]) == 2


def test_a_request_is_decoded_and_released_one_batch_at_a_time(tmp_path, monkeypatch):
    """Memory follows the batch size, not the task count: no more than one batch of decoded
    images is alive at once, whatever the request's length."""
    import gc
    import weakref

    service = make_service(tmp_path, batch_size=3)
    service.start_loading().join(120)
    Image.effect_noise((96, 64), 60).convert("RGB").save(tmp_path / "a.jpg")
    loader = service.predictor.loader
    real = loader.load_many
    alive: list[weakref.ref] = []
    peaks: list[int] = []

    def counting(values, *args, **kwargs):
        gc.collect()
        peaks.append(sum(1 for ref in alive if ref() is not None))
        loaded = real(values, *args, **kwargs)
        alive.extend(weakref.ref(item.image) for item in loaded)
        return loaded

    monkeypatch.setattr(loader, "load_many", counting)
    client = create_app(service).test_client()
    task = {"data": {"image": str(tmp_path / "a.jpg")}}
    resp = client.post("/predict", json={"tasks": [task] * 10, "label_config": CONFIG})
    assert resp.status_code == 200 and len(resp.json["results"]) == 10
    assert all("result" in r for r in resp.json["results"])
    assert len(peaks) == 4, "10 tasks in batches of 3"
    # The next batch is fetched while one is predicted: at most that one is alive at a fetch.
    assert max(peaks) <= 3, f"decoded images of earlier batches still alive: {peaks}"


def test_a_worker_with_every_predict_slot_taken_says_retry_and_keeps_setup_and_probes(served, monkeypatch):
    import threading

    service, _, _, images = served
    app = create_app(service, threads=3)  # one work slot: 3 threads less the two kept for probes
    inside, release = threading.Event(), threading.Event()
    real = service.predict

    def slow(req):
        inside.set()
        release.wait(30)
        return real(req)

    monkeypatch.setattr(service, "predict", slow)
    body = {"tasks": [{"data": {"image": str(images / "wide.jpg")}}], "label_config": CONFIG}
    first: list = []
    holder = threading.Thread(target=lambda: first.append(app.test_client().post("/predict", json=body)))
    holder.start()
    try:
        assert inside.wait(30)
        busy = app.test_client().post("/predict", json=body)
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "2"
        assert (
            "request slots" in busy.json["error"]
            and "LABELSTACK_MAX_CONCURRENT_REQUESTS" in busy.json["error"]
        )
        assert app.test_client().get("/health").status_code == 200
        setup = {"project": "3.1", "schema": CONFIG, "hostname": "", "access_token": ""}
        assert app.test_client().post("/setup", json=setup).status_code == 200
    finally:
        release.set()
        holder.join(60)
    assert first[0].status_code == 200
    assert app.test_client().post("/predict", json=body).status_code == 200, "the slot is free again"
