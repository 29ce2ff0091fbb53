"""Online, ``up`` fetches the default weights once into the user's cache, checked against pinned
sha256s; a file that is not the pinned one, or no network, leaves the demo's random weights with
the reason in one line. The files come from a loopback server through LABELSTACK_WEIGHTS_URL."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from labelstack_tools.localstack import weights
from labelstack_tools.localstack.plan import Layout, StackOptions, backend_spec
from labelstack_tools.localstack.up import wanted_weights, with_default_weights

YOLO_BYTES = b"yolo weights " * 250_000  # 3 MB: several chunks, so the bar moves
SAM_BYTES = b"mobile sam weights " * 1_000


def pinned(file: weights.WeightFile, data: bytes) -> weights.WeightFile:
    return weights.WeightFile(
        file.name, file.title, "https://example.invalid/", hashlib.sha256(data).hexdigest(), len(data)
    )


class Mirror:
    """A loopback HTTP server: file name -> bytes; counts what it serves."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.served = files, []
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.rsplit("/", 1)[-1]
                body = mirror.files.get(name)
                if body is None:
                    self.send_error(404)
                    return
                mirror.served.append(name)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/weights"


@pytest.fixture
def mirror(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Mirror]:
    served = Mirror({"yolov8n-seg.pt": YOLO_BYTES, "mobile_sam.pt": SAM_BYTES})
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(weights, "YOLO_SEG", pinned(weights.YOLO_SEG, YOLO_BYTES))
    monkeypatch.setattr(weights, "MOBILE_SAM", pinned(weights.MOBILE_SAM, SAM_BYTES))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv(weights.BASE_URL_ENV, served.url)
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()


class Recorder:
    """up's Reporter, as far as the weights use it."""

    def __init__(self) -> None:
        self.done_lines: list[str] = []
        self.warnings: list[str] = []
        self.progress: dict[str, list[tuple[int, int]]] = {}

    def done(self, text: str) -> None:
        self.done_lines.append(text)

    def warn(self, text: str) -> None:
        self.warnings.append(text)

    @contextmanager
    def downloading(self) -> Iterator[weights.Progress]:
        def progress(file: weights.WeightFile, done: int, total: int) -> None:
            self.progress.setdefault(file.name, []).append((done, total))

        yield progress


def up_weights(tmp_path: Path, **opts: object) -> tuple[StackOptions, Recorder]:
    out = Recorder()
    return with_default_weights(StackOptions(data_dir=tmp_path, **opts), out), out  # type: ignore[arg-type]


def test_online_the_default_weights_are_fetched_once_verified_and_used(mirror, tmp_path):
    opts, out = up_weights(tmp_path)
    cache = tmp_path / "cache" / "labelstack" / "weights"
    assert opts.seg_weights == cache / "yolov8n-seg.pt" and opts.seg_weights.read_bytes() == YOLO_BYTES
    assert opts.sam_checkpoint == cache / "mobile_sam.pt" and opts.sam_checkpoint.read_bytes() == SAM_BYTES
    assert not opts.seg_demo and not opts.sam_demo and out.warnings == []
    assert out.progress["yolov8n-seg.pt"][-1] == (len(YOLO_BYTES), len(YOLO_BYTES))
    assert len(out.progress["yolov8n-seg.pt"]) > 1, "a bar that moves, not one jump"
    assert all("downloaded and sha256 verified" in line for line in out.done_lines)
    sam = backend_spec("sam", opts, Layout(tmp_path), label_studio_url="", token="", redis_url=None)
    assert sam.env["LABELSTACK_SAM_MODEL_TYPE"] == "mobile_sam" and sam.env["LABELSTACK_DEMO_MODEL"] == "0"

    again, out = up_weights(tmp_path)
    assert again == opts and mirror.served == ["yolov8n-seg.pt", "mobile_sam.pt"], "the cache serves"
    assert all("in the cache" in line for line in out.done_lines)


def test_a_file_that_is_not_the_pinned_one_is_refused_and_the_demo_runs(mirror, tmp_path):
    mirror.files["yolov8n-seg.pt"] = b"something else"
    opts, out = up_weights(tmp_path)
    assert opts.seg_demo and opts.sam_demo
    (line,) = out.warnings
    assert line.startswith("demo mode: yolov8n-seg.pt") and "sha256" in line and "not used" in line
    assert list((tmp_path / "cache" / "labelstack" / "weights").iterdir()) == []


def test_offline_the_demo_runs_and_says_why_in_one_line(mirror, tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv(weights.BASE_URL_ENV, f"http://127.0.0.1:{closed}")
    opts, out = up_weights(tmp_path)
    assert opts.seg_demo and opts.sam_demo
    (line,) = out.warnings
    assert "could not download yolov8n-seg.pt" in line and "offline" in line and "\n" not in line


def test_given_weights_and_demo_download_nothing(tmp_path):
    mine = tmp_path / "mine.pt"
    assert wanted_weights(StackOptions(data_dir=tmp_path, demo=True)) == []
    assert wanted_weights(StackOptions(data_dir=tmp_path, seg_weights=mine, sam=False)) == []
    assert wanted_weights(StackOptions(data_dir=tmp_path, seg_weights=mine)) == [weights.MOBILE_SAM]


def test_the_official_files_are_pinned_by_sha256():
    for file in (weights.YOLO_SEG, weights.MOBILE_SAM):
        assert len(file.sha256) == 64 and int(file.sha256, 16) and file.url.startswith("https://")
        assert file.url.endswith(file.name)
