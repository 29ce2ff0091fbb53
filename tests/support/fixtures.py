"""Fixtures that start real services: Label Studio, HTTP file servers."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from labelstack_common.labelstudio import LabelStudioClient
from labelstack_tools.localstack.labelstudio import LabelStudioProcess, label_studio_bin, new_token
from labelstack_tools.localstack.ports import free_port
from tests.support.gcs_emulator import GcsEmulator


@dataclass
class LabelStudio:
    """A running Label Studio with an admin, a legacy token, and local-file serving."""

    process: LabelStudioProcess
    client: LabelStudioClient
    files_root: Path  # LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def token(self) -> str:
        return self.process.token

    @property
    def username(self) -> str:
        return self.process.username

    @property
    def password(self) -> str:
        return self.process.password


@contextmanager
def running_label_studio(base: Path, extra_env: Mapping[str, str] | None = None) -> Iterator[LabelStudio]:
    """A real Label Studio 1.23 in ``base``, stopped on exit (the first start migrates for ~40 s)."""
    if not label_studio_bin().exists():
        pytest.fail(
            f"Label Studio is not installed at {label_studio_bin()}; run scripts/bootstrap.sh label-studio"
        )
    files_root = base / "files"
    files_root.mkdir()
    proc = LabelStudioProcess(
        data_dir=base / "data",
        port=free_port(),
        username="admin@labelstack.test",
        password="labelstack-test-pw",
        token=new_token(),
        local_files_root=files_root,
        extra_env=dict(extra_env or {}),
    )
    proc.start()
    try:
        proc.wait_ready(timeout=240)
        client = LabelStudioClient(proc.url, proc.token)
        yield LabelStudio(process=proc, client=client, files_root=files_root)
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def label_studio(
    tmp_path_factory: pytest.TempPathFactory, gcs_emulator: GcsEmulator
) -> Iterator[LabelStudio]:
    """One real Label Studio 1.23 for the session; its GCS storages talk to the session's emulator."""
    env = {
        "STORAGE_EMULATOR_HOST": gcs_emulator.url,
        # Label Studio proxies GCS downloads; signed URLs do not work against the emulator.
        "LABEL_STUDIO_RESOLVER_PROXY_GCS_DOWNLOAD_URL": gcs_emulator.download_url_template,
    }
    with running_label_studio(tmp_path_factory.mktemp("label-studio"), env) as ls:
        yield ls


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class FileServer:
    root: Path
    url: str


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[FileServer]:
    """A plain HTTP server over a temporary folder, for http(s) image URLs."""
    root = tmp_path / "http"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FileServer(root=root, url=f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
