"""Bad input against the real gunicorn server: clear errors, and the same worker keeps answering."""

from __future__ import annotations

import io

import pytest
import requests
from PIL import Image

from labelstack_tools.localstack.ports import free_port
from tests.support.backend import run_backend

pytestmark = pytest.mark.integration

CONFIG = (
    '<View><Image name="image" value="$image"/><PolygonLabels name="p" toName="image">'
    '<Label value="person"/></PolygonLabels></View>'
)


def worker_pids(url: str) -> set[str]:
    text = requests.get(f"{url}/metrics", timeout=5).text
    return {line.split('pid="')[1].split('"')[0] for line in text.splitlines() if 'pid="' in line}


def test_bad_input_gets_reasons_and_never_kills_the_worker(tmp_path, file_server):
    Image.new("RGB", (64, 48)).save(file_server.root / "ok.jpg")
    (file_server.root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    buf = io.BytesIO()
    Image.new("1", (30_000, 30_000)).save(buf, format="PNG", optimize=True)
    (file_server.root / "bomb.png").write_bytes(buf.getvalue())
    env = {
        "LABELSTACK_DEMO_MODEL": "1",
        "LABELSTACK_IMAGE_MAX_PIXELS": "50000000",
        "LABELSTACK_IMAGE_TIMEOUT": "3",
    }
    with run_backend(tmp_path, env) as backend:
        url = backend.url
        tasks = [
            {"id": 1, "data": {"image": f"{file_server.url}/ok.jpg"}},
            {"id": 2, "data": {"image": f"{file_server.url}/corrupt.jpg"}},
            {"id": 3, "data": {"image": f"{file_server.url}/bomb.png"}},
            {"id": 4, "data": {"image": f"http://127.0.0.1:{free_port()}/gone.jpg"}},
            {"id": 5, "data": {"image": "s3://bucket/key.jpg"}},
            {"id": 6, "data": {"other": "no image key"}},
        ]
        resp = requests.post(f"{url}/predict", json={"tasks": tasks, "label_config": CONFIG}, timeout=60)
        assert resp.status_code == 200
        results = resp.json()["results"]
        assert "result" in results[0]
        reasons = [r.get("error", "") for r in results[1:]]
        assert "corrupt" in reasons[0] or "not an image" in reasons[0]
        assert "pixels, above the limit" in reasons[1]
        assert "could not fetch" in reasons[2]
        assert "unsupported image URL scheme" in reasons[3]
        assert "has no 'image'" in reasons[4]

        bad = [
            ("/predict", b"{oops", 400),
            ("/predict", b'{"tasks": "all"}', 400),
            ("/setup", b'{"schema": "<View><Text name=\\"t\\" value=\\"$t\\"/></View>"}', 422),
            ("/setup", b'{"schema": "<View"}', 422),
            ("/webhook", b'{"no_action": 1}', 400),
        ]
        before = worker_pids(url)
        assert before, "the metrics name the worker pid"
        for path, body, status in bad:
            r = requests.post(
                f"{url}{path}", data=body, headers={"Content-Type": "application/json"}, timeout=10
            )
            assert r.status_code == status, (path, r.text)
            assert r.json()["error"] and "Traceback" not in r.text
        too_big = requests.post(f"{url}/predict", data=b"x" * (65 * 1024 * 1024), timeout=30)
        assert too_big.status_code == 413
        assert requests.get(f"{url}/health", timeout=5).status_code == 200
        assert worker_pids(url) == before and backend.alive()
        assert "Traceback" not in backend.log()
