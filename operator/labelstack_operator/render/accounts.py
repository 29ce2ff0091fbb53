"""Secrets holding Label Studio accounts the operator made: the backends' user, the team's users.

Unlike the admin Secret they are written after Label Studio has the account (the password and
token must be the ones it holds), by :mod:`labelstack_operator.users`.
"""

from __future__ import annotations

import hashlib

from labelstack_operator.render.backends import TOKEN_ANNOTATION
from labelstack_operator.render.context import BACKEND, LABEL_STUDIO, Manifest, Stack
from labelstack_operator.render.labelstudio import SECRET_PASSWORD, SECRET_TOKEN, SECRET_USERNAME
from labelstack_operator.render.secret import secret

# The e-mail a per-user Secret belongs to (names cannot hold an e-mail).
USER_ANNOTATION = "labelstack.dev/user"


def backend_user_email(stack: Stack) -> str:
    return f"backends-{stack.name}@labelstack.local"


def user_secret_name(stack: Stack, email: str) -> str:
    return f"{stack.name}-user-{hashlib.sha256(email.lower().encode()).hexdigest()[:10]}"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16] if token else ""


def build_backend_user_secret(stack: Stack, *, password: str, token: str, rotated: bool = False) -> Manifest:
    """``rotated``: the token replaces one the backends run with, so its digest goes into their pod
    template (a first token needs no rollout: the pods wait for the Secret and then start)."""
    data = {SECRET_USERNAME: backend_user_email(stack), SECRET_PASSWORD: password, SECRET_TOKEN: token}
    obj = secret(stack, stack.backend_user_secret_name, BACKEND, data)
    if rotated:
        obj["metadata"]["annotations"] = {TOKEN_ANNOTATION: token_digest(token)}
    return obj


def build_user_secret(stack: Stack, email: str, *, password: str) -> Manifest:
    obj = secret(
        stack,
        user_secret_name(stack, email),
        LABEL_STUDIO,
        {SECRET_USERNAME: email, SECRET_PASSWORD: password},
    )
    obj["metadata"]["annotations"] = {USER_ANNOTATION: email}
    return obj
