"""The embedded database's password: generated once into ``<stack>-postgres``, never overwritten."""

from __future__ import annotations

import base64
import binascii

from labelstack_operator import admin
from labelstack_operator.kube import Kube
from labelstack_operator.render import Manifest, Stack
from labelstack_operator.render.context import POSTGRES
from labelstack_operator.render.postgres import SECRET_POSTGRES_PASSWORD
from labelstack_operator.render.secret import new_password, secret


def build_postgres_secret(stack: Stack, *, password: str) -> Manifest:
    return secret(stack, stack.postgres_name, POSTGRES, {SECRET_POSTGRES_PASSWORD: password})


def ensure_postgres_password(kube: Kube, stack: Stack) -> bool:
    """Make sure the password Secret exists (embedded database only); True when this call created it."""
    if stack.spec.label_studio.database.type != "embedded":
        return False
    name = stack.postgres_name
    secret, generated = admin.ensure_secret(
        kube, stack, name, lambda: build_postgres_secret(stack, password=new_password())
    )
    value = str((secret.get("data") or {}).get(SECRET_POSTGRES_PASSWORD) or "")
    try:
        usable = bool(base64.b64decode(value, validate=True).decode())
    except (binascii.Error, UnicodeDecodeError):
        usable = False
    if not usable:
        message = f"Secret {name} key {SECRET_POSTGRES_PASSWORD!r} is missing, empty or not base64 text"
        raise admin.SecretInvalid("DatabaseSecretInvalid", message)
    return generated
