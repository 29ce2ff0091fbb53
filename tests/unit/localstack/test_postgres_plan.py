"""What `labelstack up --postgres` decides to run, from its options alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labelstack_tools.localstack import credentials, postgres
from labelstack_tools.localstack.labelstudio import LabelStudioProcess
from labelstack_tools.localstack.plan import Layout, PlanError, Ports, StackOptions, port_claims
from labelstack_tools.localstack.up import StackError, find_postgres

ROOT = Path("/data/stack")
BIN = Path("/usr/lib/postgresql/15/bin")


def test_postgres_runs_in_the_foreground_on_loopback_from_the_stacks_data_dir():
    spec = postgres.server_spec(Layout(ROOT), BIN, 5433, root=False)
    assert spec.argv[:3] == (str(BIN / "postgres"), "-D", str(ROOT / "postgres"))
    assert "listen_addresses=127.0.0.1" in spec.argv and "unix_socket_directories=" in spec.argv
    assert spec.port == 5433 and spec.log == ROOT / "logs" / "postgres.log" and spec.name == "postgres"


def test_as_root_postgres_runs_as_the_postgres_user():
    spec = postgres.server_spec(Layout(ROOT), BIN, 5433, root=True)
    assert spec.argv[:5] == ("setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--")
    assert spec.argv[5] == str(BIN / "postgres")


def test_label_studio_is_pointed_at_the_database_and_sqlite_is_overridden():
    env = postgres.label_studio_env(5433, "pw")
    assert env == {
        "DJANGO_DB": "default", "POSTGRE_NAME": "labelstack", "POSTGRE_USER": "postgres",
        "POSTGRE_PASSWORD": "pw", "POSTGRE_HOST": "127.0.0.1", "POSTGRE_PORT": "5433",
    }  # fmt: skip
    ls = LabelStudioProcess(ROOT, 8080, "a", "b", "t" * 40, binary=ROOT / "ls", extra_env=env)
    assert ls.env()["DJANGO_DB"] == "default"
    assert ls.env()["LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK"] == "true", "sign-up stays closed"


def test_the_postgres_port_is_claimed_only_with_postgres():
    assert 5433 not in [p for p, _, _ in port_claims(StackOptions(data_dir=ROOT), redis=True)]
    claims = port_claims(StackOptions(data_dir=ROOT, postgres=True), redis=True)
    assert (5433, "PostgreSQL", "--postgres-port") in claims
    with pytest.raises(PlanError, match="both given port 6380"):
        port_claims(StackOptions(data_dir=ROOT, ports=Ports(postgres=6380), postgres=True), redis=True)


def test_the_postgres_password_is_generated_once_and_kept_with_the_admin(tmp_path: Path):
    creds, _ = credentials.load_or_create(tmp_path)
    assert creds.postgres_password == ""
    first = credentials.with_postgres_password(tmp_path, creds)
    assert len(first.postgres_password) >= 16
    again, generated = credentials.load_or_create(tmp_path)
    assert not generated and again == first
    assert credentials.with_postgres_password(tmp_path, again) == first
    assert (
        json.loads((tmp_path / credentials.FILE_NAME).read_text())["postgres_password"]
        == first.postgres_password
    )


def test_without_postgres_installed_up_postgres_says_to_install_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(postgres, "bin_dir", lambda: None)
    with pytest.raises(StackError, match="install Debian's `postgresql`"):
        find_postgres(StackOptions(data_dir=ROOT, postgres=True))
    assert find_postgres(StackOptions(data_dir=ROOT)) is None
