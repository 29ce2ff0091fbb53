"""A real PostgreSQL (Debian's, installed by scripts/bootstrap.sh system) on loopback, for the tests.

PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user (runuser), in a
data directory of its own under the system temp dir (pytest's are private to root).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from labelstack_tools.localstack.ports import free_port

USER = "postgres"


def postgres_bin() -> Path | None:
    """The newest Debian PostgreSQL's bin directory, or one on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class PostgresServer:
    bin_dir: Path
    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="labelstack-pg-")))

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, *args: str) -> str:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", USER, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stdout}{done.stderr}")
        return done.stdout

    def start(self) -> PostgresServer:
        if os.geteuid() == 0:
            shutil.chown(self.root, USER, USER)
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8")
        options = f"-k {self.root} -p {self.port} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")
        return self

    def stop(self) -> None:
        if self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str) -> None:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name)

    def env(self, name: str) -> dict[str, str]:
        """Label Studio on this server's database ``name``."""
        return {
            "DJANGO_DB": "default",
            "POSTGRE_NAME": name,
            "POSTGRE_USER": USER,
            "POSTGRE_PASSWORD": "unused-with-trust",
            "POSTGRE_HOST": "127.0.0.1",
            "POSTGRE_PORT": str(self.port),
        }


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL for the session; each test makes its own database."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL's binaries (initdb, pg_ctl) are not installed: scripts/bootstrap.sh system")
    server = PostgresServer(bin_dir).start()
    try:
        yield server
    finally:
        server.stop()
