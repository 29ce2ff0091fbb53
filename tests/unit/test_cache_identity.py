"""Cache identity includes the object's version: a replaced object is fetched (and encoded)
again, an unchanged one comes from the cache after a cheap conditional check."""

from __future__ import annotations

import http.server
import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from labelstack_backend.imagecache import DiskCache
from labelstack_backend.images import ImageLoader, Validators, content_key, resolve_ref, versioned


def png(size: tuple[int, int], colour: tuple[int, int, int] = (10, 20, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def loader(tmp_path: Path, **kw: object) -> ImageLoader:
    return ImageLoader(
        max_pixels=10**7,
        max_bytes=10**7,
        timeout=5.0,
        cache=DiskCache(tmp_path / "cache", 10**8),
        local_roots=(tmp_path,),
        **kw,  # type: ignore[arg-type]
    )


class ETagServer(http.server.BaseHTTPRequestHandler):
    """Serves one object with a strong ETag and honours If-None-Match; counts full bodies sent."""

    body = b""
    etag = ""
    bodies_sent = 0

    def do_GET(self) -> None:
        cls = type(self)
        if self.headers.get("If-None-Match") == cls.etag:
            self.send_response(304)
            self.send_header("ETag", cls.etag)
            self.end_headers()
            return
        cls.bodies_sent += 1
        self.send_response(200)
        self.send_header("ETag", cls.etag)
        self.send_header("Content-Length", str(len(cls.body)))
        self.end_headers()
        self.wfile.write(cls.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def etag_server() -> Iterator[tuple[str, type[ETagServer]]]:
    handler = type("Handler", (ETagServer,), {"body": png((30, 20)), "etag": '"v1"', "bodies_sent": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/a.png", handler
    finally:
        server.shutdown()
        server.server_close()


def test_an_unchanged_http_object_is_confirmed_by_a_304_and_a_replaced_one_is_fetched(
    tmp_path: Path, etag_server: tuple[str, type[ETagServer]]
) -> None:
    url, handler = etag_server
    ld = loader(tmp_path)
    first = ld.load(url)
    again = ld.load(url)
    assert handler.bodies_sent == 1, "the second load got a 304, not the body"
    assert (again.digest, again.version, again.key) == (first.digest, 'etag:"v1"', first.key)
    handler.body, handler.etag = png((20, 30)), '"v2"'
    replaced = ld.load(url)
    assert (replaced.width, replaced.height, replaced.version) == (20, 30, 'etag:"v2"')
    assert replaced.key != first.key and handler.bodies_sent == 2


def test_a_replaced_http_file_with_a_new_last_modified_gives_new_pixels(tmp_path: Path, file_server) -> None:  # type: ignore[no-untyped-def]
    path = file_server.root / "a.png"
    path.write_bytes(png((30, 20)))
    os.utime(path, (1_700_000_000, 1_700_000_000))
    ld = loader(tmp_path)
    first = ld.load(f"{file_server.url}/a.png")
    path.write_bytes(png((20, 30)))
    os.utime(path, (1_700_000_100, 1_700_000_100))
    second = ld.load(f"{file_server.url}/a.png")
    assert (first.width, second.width) == (30, 20) and first.version != second.version


def test_a_server_without_validators_is_always_fetched(tmp_path: Path) -> None:
    ref = resolve_ref("https://example.test/a.png")
    ld = loader(tmp_path)
    bodies = iter([png((4, 4)), png((8, 8))])

    def fetch(*_args: object) -> tuple[bytes, dict[str, str]]:
        return next(bodies), {}

    ld._get = fetch  # type: ignore[method-assign]
    assert ld.fetch_versioned(ref).version == ""
    assert Image.open(io.BytesIO(ld.fetch(ref))).size == (8, 8), "nothing to compare with: no stale copy"


def test_gcs_objects_are_cached_by_generation(tmp_path: Path) -> None:
    objects = {"g1": png((30, 20)), "g2": png((20, 30))}
    generation = ["g1"]
    downloads: list[str] = []

    def fetch(uri: str, timeout: float, gen: str) -> bytes:
        downloads.append(gen)
        return objects[gen]

    ld = loader(tmp_path, gcs_fetch=fetch, gcs_generation=lambda uri, timeout: generation[0])
    assert ld.load("gs://b/a.png").width == 30
    assert ld.load("gs://b/a.png").width == 30 and downloads == ["g1"]
    generation[0] = "g2"
    replaced = ld.load("gs://b/a.png")
    assert (replaced.width, replaced.version, downloads) == (20, "g2", ["g1", "g2"])


def test_local_files_carry_mtime_and_size(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png((30, 20)))
    first = loader(tmp_path).load(str(path))
    path.write_bytes(png((20, 30)))
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    second = loader(tmp_path).load(str(path))
    assert first.version.startswith("mtime:") and second.version != first.version
    assert second.key != first.key


def test_keys_and_validators() -> None:
    assert versioned("gs://b/a", "g7") == "gs://b/a@g7" and versioned("x", "") == "x"
    assert content_key("gs://b/a", "ab" * 32, "g7") == "gs://b/a@g7#" + "ab" * 8
    v = Validators.of({"ETag": '"x"', "Last-Modified": "Mon"})
    assert v.conditions() == {"If-None-Match": '"x"'} and Validators.from_bytes(v.to_bytes()) == v
    assert Validators.of({"Last-Modified": "Mon"}).conditions() == {"If-Modified-Since": "Mon"}
    assert Validators.from_bytes(b"garbage") == Validators() and Validators().version == ""
