"""The Secrets the operator generates: Label Studio's admin and Redis's password.

Both are created once, when absent, and never overwritten (see :mod:`admin`): their
values are random, so rendering them again would change them.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping

from labelstack_operator.render.context import LABEL_STUDIO, REDIS, Manifest, Stack, metadata
from labelstack_operator.render.labelstudio import SECRET_PASSWORD, SECRET_TOKEN, SECRET_USERNAME
from labelstack_operator.render.redis import SECRET_REDIS_PASSWORD


def new_password() -> str:
    return secrets.token_urlsafe(24)


def new_token() -> str:
    """40 characters: the form of Label Studio's legacy token (LABEL_STUDIO_USER_TOKEN)."""
    return secrets.token_hex(20)


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def secret(stack: Stack, name: str, component: str, data: Mapping[str, str]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata(stack, name, component),
        "data": {key: _b64(value) for key, value in data.items()},
    }


def build_admin_secret(stack: Stack, *, password: str, token: str) -> Manifest:
    data = {
        SECRET_USERNAME: stack.spec.label_studio.admin_secret.username,
        SECRET_PASSWORD: password,
        SECRET_TOKEN: token,
    }
    return secret(stack, stack.admin_secret_name, LABEL_STUDIO, data)


def build_redis_secret(stack: Stack, *, password: str) -> Manifest:
    return secret(stack, stack.redis_secret_name, REDIS, {SECRET_REDIS_PASSWORD: password})
