"""`labelstack up --postgres`: Label Studio on a local PostgreSQL, started with the command a user runs.

The demo project is served from PostgreSQL (its row is in the database), `status` lists the
server, `down` stops it, and a second `up --postgres` reuses the cluster and the project.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from labelstack_common.labelstudio import LabelStudioClient
from labelstack_tools.localstack import credentials, postgres
from labelstack_tools.localstack.plan import Ports
from tests.e2e.test_local_stack import Up, stop, wait_ready
from tests.support.localstack import free_ports, labelstack, processes_of, up_command

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """Under the system temp dir, reachable by the ``postgres`` user as root (pytest's are not)."""
    if postgres.bin_dir() is None:
        pytest.skip("PostgreSQL's binaries are not installed: scripts/bootstrap.sh system")
    root = Path(tempfile.mkdtemp(prefix="labelstack-up-pg-"))
    root.chmod(0o711)
    try:
        yield root / "data"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def start(data_dir: Path, ports: Ports, log: Path) -> Up:
    with log.open("ab") as out:
        argv = up_command(data_dir, ports, "--postgres", "--no-sam", "--no-redis", "--cpu")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Up(proc, log)


def down(data_dir: Path) -> str:
    argv = [labelstack(), "down", "--data-dir", str(data_dir)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, check=True).stdout


def test_up_postgres_serves_the_project_from_postgres_and_down_stops_it(
    data_dir: Path, artifacts_dir: Path
) -> None:
    ports = free_ports()
    log = artifacts_dir / "local-stack-postgres-up.log"
    log.unlink(missing_ok=True)
    up = start(data_dir, ports, log)
    try:
        ready = wait_ready(up, data_dir)
        login, _ = credentials.load_or_create(data_dir)
        assert login.postgres_password, "the generated password is kept in credentials.json"
        client = LabelStudioClient(ready.label_studio_url, login.token, timeout=60)
        title = client.json("GET", f"/api/projects/{ready.project_id}")["title"]
        binaries = postgres.bin_dir()
        assert binaries is not None
        row = postgres.query(
            binaries,
            ports.postgres,
            login.postgres_password,
            f"SELECT title FROM project WHERE id = {ready.project_id}",
        )
        assert row.strip() == title
        status = subprocess.run(
            [labelstack(), "status", "--data-dir", str(data_dir)],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        assert "postgres" in status and str(ports.postgres) in status

        down(data_dir)
        up.proc.wait(60)
        assert not postgres.ready(binaries, ports.postgres)
        assert processes_of(data_dir) == []

        up = start(data_dir, ports, log)
        again = wait_ready(up, data_dir)
        assert again.project_id == ready.project_id
        assert "reusing the PostgreSQL cluster" in up.text()
    finally:
        stop(up, data_dir)
    assert processes_of(data_dir) == []
