"""The local Label Studio's admin: generated on the first ``up``, reused by every later one."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from labelstack_common.errors import LabelStackError
from labelstack_tools.localstack.files import read_json, write_private_json
from labelstack_tools.localstack.labelstudio import new_token

FILE_NAME = "credentials.json"
DEFAULT_USERNAME = "admin@labelstack.local"


class CredentialsError(LabelStackError, ValueError):
    pass


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    token: str  # Label Studio's legacy API token (40 hex characters)
    # The local PostgreSQL's superuser password (``up --postgres``); added on its first use.
    postgres_password: str = ""

    @classmethod
    def generate(cls, username: str = DEFAULT_USERNAME) -> Credentials:
        return cls(username=username, password=secrets.token_urlsafe(12), token=new_token())

    @classmethod
    def from_dict(cls, data: Any, where: str = FILE_NAME) -> Credentials:
        """Parse and check; pure."""
        if not isinstance(data, dict):
            raise CredentialsError(f"{where} is not a JSON object")
        values = {}
        for key in ("username", "password", "token"):
            value = data.get(key)
            if not isinstance(value, str) or not value:
                raise CredentialsError(f"{where} has no {key!r}")
            values[key] = value
        if len(values["token"]) != 40:
            raise CredentialsError(f"{where}: the token must be 40 characters (Label Studio's legacy form)")
        postgres = data.get("postgres_password", "")
        if not isinstance(postgres, str):
            raise CredentialsError(f"{where}: 'postgres_password' is not a string")
        return cls(**values, postgres_password=postgres)


def with_postgres_password(data_dir: Path, creds: Credentials) -> Credentials:
    """``creds`` with a PostgreSQL password, generated and stored the first time."""
    if creds.postgres_password:
        return creds
    creds = replace(creds, postgres_password=secrets.token_urlsafe(18))
    write_private_json(data_dir / FILE_NAME, asdict(creds))
    return creds


def load_or_create(data_dir: Path) -> tuple[Credentials, bool]:
    """The stored admin, or a new one written with mode 0600; True when it was generated now."""
    path = data_dir / FILE_NAME
    try:
        data = read_json(path)
    except (OSError, json.JSONDecodeError) as exc:
        raise CredentialsError(
            f"cannot read {path}: {exc}; fix or delete it (deleting it needs a new data dir too)"
        ) from None
    if data is not None:
        return Credentials.from_dict(data, str(path)), False
    creds = Credentials.generate()
    write_private_json(path, asdict(creds))
    return creds, True
