"""Operator integration tests: an in-memory Kubernetes API (kmock) and real Label Studio / GCS."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Read when labelstack_operator.handlers is imported (kopf registers the timer with its interval).
os.environ.setdefault("LABELSTACK_RESYNC_SECONDS", "1")

from tests.support.kube import KubeServer


@pytest.fixture(scope="module")
def kube_server() -> Iterator[KubeServer]:
    server = KubeServer().start()
    try:
        yield server
    finally:
        server.stop()
