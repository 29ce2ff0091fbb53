"""The generated Label Studio admin Secret (created once, never overwritten)."""

from __future__ import annotations

import base64
import secrets

from labelstack_operator.render.context import LABEL_STUDIO, Manifest, Stack, metadata
from labelstack_operator.render.labelstudio import SECRET_PASSWORD, SECRET_TOKEN, SECRET_USERNAME


def new_password() -> str:
    return secrets.token_urlsafe(24)


def new_token() -> str:
    """40 characters: the form of Label Studio's legacy token (LABEL_STUDIO_USER_TOKEN)."""
    return secrets.token_hex(20)


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def build_admin_secret(stack: Stack, *, password: str, token: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata(stack, stack.admin_secret_name, LABEL_STUDIO),
        "data": {
            SECRET_USERNAME: _b64(stack.spec.label_studio.admin_secret.username),
            SECRET_PASSWORD: _b64(password),
            SECRET_TOKEN: _b64(token),
        },
    }
