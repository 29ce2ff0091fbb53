"""``labelstack up --postgres``: Label Studio on a local PostgreSQL, the machine's own binaries.

The cluster lives in the stack's data dir (``postgres/``), made once with initdb. It listens on
loopback TCP only, with a password (no Unix socket: no folder of ours need be shared).

PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user, which owns the
cluster, through setpriv: it execs, so the postmaster is our child and gets our signals (runuser
stays in between and SIGKILLs it 2 s after a SIGTERM, mid-shutdown).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from labelstack_common.errors import LabelStackError
from labelstack_tools.localstack.plan import HOST, Layout, ServiceSpec

USER = "postgres"  # the database superuser; also the OS user as root
DATABASE = "labelstack"  # also in ensure_database's query
INSTALL_HINT = "PostgreSQL is not installed: install Debian's `postgresql` (apt-get install postgresql)"


class PostgresError(LabelStackError, RuntimeError):
    """The local PostgreSQL cannot be made or reached; the message says why."""


def bin_dir() -> Path | None:
    """The newest Debian PostgreSQL's bin directory, or the one on PATH."""
    debian = Path("/usr/lib/postgresql")
    versions = [p for p in debian.glob("*/bin/postgres") if p.parent.parent.name.isdigit()]
    if versions:
        return max(versions, key=lambda p: int(p.parent.parent.name)).parent
    binary = shutil.which("postgres")
    return Path(binary).parent if binary else None


def as_user(argv: list[str], root: bool) -> list[str]:
    """``argv`` as the unprivileged ``postgres`` user when we are root. Pure."""
    return ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--init-groups", "--", *argv] if root else argv


def server_spec(layout: Layout, binaries: Path, port: int, root: bool) -> ServiceSpec:
    """The postmaster in the foreground, our child, stopped by PID like the others. Pure."""
    argv = [
        str(binaries / "postgres"), "-D", str(layout.postgres), "-p", str(port),
        "-c", f"listen_addresses={HOST}", "-c", "unix_socket_directories=",
    ]  # fmt: skip
    return ServiceSpec(
        name="postgres",
        title="PostgreSQL",
        argv=tuple(as_user(argv, root)),
        port=port,
        log=layout.logs / "postgres.log",
        url=f"postgresql://{USER}@{HOST}:{port}/{DATABASE}",
    )


def label_studio_env(port: int, password: str) -> dict[str, str]:
    """Label Studio's settings for this database (DJANGO_DB=default is its PostgreSQL). Pure."""
    return {
        "DJANGO_DB": "default",
        "POSTGRE_NAME": DATABASE,
        "POSTGRE_USER": USER,
        "POSTGRE_PASSWORD": password,
        "POSTGRE_HOST": HOST,
        "POSTGRE_PORT": str(port),
    }


def _run(argv: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, env=env)
    if done.returncode != 0:
        program = argv[argv.index("--") + 1] if "--" in argv else argv[0]
        raise PostgresError(f"{Path(program).name} failed: {(done.stdout + done.stderr).strip()}")
    return done.stdout


def ensure_cluster(layout: Layout, binaries: Path, password: str, root: bool) -> bool:
    """initdb once, with ``password`` for the superuser; True when made now."""
    data = layout.postgres
    if (data / "PG_VERSION").exists():
        return False
    shutil.rmtree(data, ignore_errors=True)  # a half-made cluster from an interrupted first run
    data.mkdir(mode=0o700)
    pwfile = layout.root / ".postgres-password"
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o600)
    try:
        if root:
            shutil.chown(data, USER, USER)
            shutil.chown(pwfile, USER, USER)
            # The postgres user must reach its folder: let it through ours, without listing it.
            layout.root.chmod(0o711)
            try:
                _run(as_user(["test", "-w", str(data)], root))
            except PostgresError:
                raise PostgresError(
                    f"the postgres user cannot reach {data}: a folder above it is private "
                    "(chmod o+x it, or pass a --data-dir it can reach)"
                ) from None
        _run(as_user([
            str(binaries / "initdb"), "-D", str(data), "-U", USER, "--auth=scram-sha-256",
            f"--pwfile={pwfile}", "-E", "UTF8",
        ], root))  # fmt: skip
    finally:
        pwfile.unlink(missing_ok=True)
    return True


def _client_env(password: str) -> dict[str, str]:
    return {**os.environ, "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "5"}


def ensure_database(binaries: Path, port: int, password: str) -> bool:
    """Create Label Studio's database unless it exists; True when made now."""
    env = _client_env(password)
    where = ["-h", HOST, "-p", str(port), "-U", USER]
    query = "SELECT 1 FROM pg_database WHERE datname = 'labelstack'"  # DATABASE
    found = _run([str(binaries / "psql"), *where, "-tAc", query, "postgres"], env).strip()
    if found == "1":
        return False
    _run([str(binaries / "createdb"), *where, DATABASE], env)
    return True


def ready(binaries: Path, port: int) -> bool:
    """The server accepts connections."""
    argv = [str(binaries / "pg_isready"), "-q", "-h", HOST, "-p", str(port)]
    return subprocess.run(argv, timeout=10, check=False).returncode == 0


def query(binaries: Path, port: int, password: str, sql: str) -> str:
    """One query's rows (tab-separated) in Label Studio's database; for checks."""
    argv = [str(binaries / "psql"), "-h", HOST, "-p", str(port), "-U", USER, "-tAc", sql, DATABASE]
    return _run(argv, _client_env(password))
