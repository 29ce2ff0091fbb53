"""The one way the `labelstack model` and `labelstack prelabel` commands call a backend."""

from __future__ import annotations

import argparse
import base64
import http.server
import json
import threading
from collections.abc import Iterator

import pytest

from labelstack_tools.cli.common import CommandError, add_backend_options, call_backend
from labelstack_tools.localstack.ports import free_port


class _Backend(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str | None, bytes]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.seen.append(
            (self.command, self.path, self.headers.get("Authorization"), self.rfile.read(length))
        )
        if self.path.startswith("/broken"):
            self.send_response(502)
            self.end_headers()
            self.wfile.write(b"<html>bad gateway</html>")
            return
        status, body = (404, {"error": "no project 7"}) if "project=7" in self.path else (200, {"ok": True})
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def backend() -> Iterator[str]:
    _Backend.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def options(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_backend_options(parser)
    return parser.parse_args(list(argv))


def test_a_get_sends_its_body_as_the_query_and_a_post_as_json_with_basic_auth(backend: str) -> None:
    args = options("--backend", backend + "/", "--user", "ann", "--password", "s3cret")
    assert call_backend(args, "GET", "/versions", body={"project": "3"}) == {"ok": True}
    assert call_backend(args, "POST", "/versions/promote", body={"project": "3", "version": "v2"}) == {
        "ok": True
    }
    (get, post) = _Backend.seen
    token = "Basic " + base64.b64encode(b"ann:s3cret").decode()
    assert get[:3] == ("GET", "/versions?project=3", token)
    assert post[:3] == ("POST", "/versions/promote", token)
    assert json.loads(post[3]) == {"project": "3", "version": "v2"}


def test_without_a_user_no_credentials_are_sent(backend: str) -> None:
    call_backend(options("--backend", backend), "GET", "/versions", body={"project": "3"})
    assert _Backend.seen[0][2] is None


def test_the_backends_refusal_is_one_line_with_its_reason(backend: str) -> None:
    with pytest.raises(CommandError, match=r"^the backend answered 404: no project 7$"):
        call_backend(options("--backend", backend), "GET", "/versions", body={"project": "7"})
    with pytest.raises(CommandError, match=r"^the backend answered 502: <html>bad gateway</html>$"):
        call_backend(options("--backend", backend), "POST", "/broken")


def test_an_unreachable_backend_says_where_it_looked_and_what_to_pass() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(
        CommandError, match=rf"^the backend does not answer at {url}: ConnectionError \(pass --backend\)$"
    ):
        call_backend(options("--backend", url), "GET", "/versions")


def test_the_options_default_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELSTACK_BACKEND_URL", "http://seg:9090")
    monkeypatch.setenv("BASIC_AUTH_USER", "ann")
    monkeypatch.setenv("BASIC_AUTH_PASS", "pw")
    args = options()
    assert (args.backend, args.user, args.password) == ("http://seg:9090", "ann", "pw")
