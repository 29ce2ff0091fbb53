"""The backend image's HEALTHCHECK command: healthy only when /health answers 200."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from labelstack_backend.server import healthcheck


class Health(BaseHTTPRequestHandler):
    status = 200
    body = b'{"status": "UP"}'

    def do_GET(self):
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    httpd = HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    Health.status, Health.body = 200, b'{"status": "UP"}'


def port_of(httpd: HTTPServer) -> str:
    return str(httpd.server_address[1])


def test_url_follows_the_port_gunicorn_binds():
    assert healthcheck.health_url({"PORT": "9191"}) == "http://127.0.0.1:9191/health"
    assert healthcheck.health_url({}) == "http://127.0.0.1:9090/health"


def test_healthy_when_the_model_is_loaded(server, monkeypatch, capsys):
    monkeypatch.setenv("PORT", port_of(server))
    assert healthcheck.main() == 0
    assert capsys.readouterr().err == ""


def test_unhealthy_while_loading_says_why(server, monkeypatch, capsys):
    Health.status, Health.body = 503, b'{"status": "LOADING"}'
    monkeypatch.setenv("PORT", port_of(server))
    assert healthcheck.main() == 1
    assert "503" in capsys.readouterr().err


def test_unhealthy_when_nothing_listens(monkeypatch, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = str(sock.getsockname()[1])
    monkeypatch.setenv("PORT", free)
    assert healthcheck.main() == 1
    err = capsys.readouterr().err
    assert err.startswith("unhealthy:") and "Traceback" not in err
