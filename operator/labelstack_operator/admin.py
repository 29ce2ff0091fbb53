"""Secrets the operator reads or creates: Label Studio's admin, Redis's password, GCS credentials."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass

from labelstack_operator.kube import SECRET, Kube, KubeError, Obj
from labelstack_operator.plans import SecretError
from labelstack_operator.render import Manifest, Stack, build_admin_secret, build_redis_secret, own
from labelstack_operator.render.labelstudio import SECRET_PASSWORD, SECRET_TOKEN, SECRET_USERNAME
from labelstack_operator.render.redis import SECRET_REDIS_PASSWORD
from labelstack_operator.render.secret import new_password, new_token


class SecretInvalid(SecretError):
    """A Secret the operator generates exists but cannot be used; ``reason`` is the condition's."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Admin:
    username: str
    token: str
    generated: bool  # created by this call


def _value(secret: Obj, name: str, key: str) -> str:
    data = secret.get("data") or {}
    if not isinstance(data, dict) or key not in data:
        raise SecretError(f"Secret {name} has no key {key!r}")
    try:
        return base64.b64decode(str(data[key])).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise SecretError(f"Secret {name} key {key!r} is not valid base64 text") from None


def read_secret(kube: Kube, namespace: str, name: str, key: str) -> str:
    secret = kube.get(SECRET, namespace, name)
    if secret is None:
        raise SecretError(f"Secret {name} does not exist in {namespace}")
    return _value(secret, name, key)


def ensure_secret(kube: Kube, stack: Stack, name: str, build: Callable[[], Manifest]) -> tuple[Obj, bool]:
    """(the Secret, whether this call created it): created from ``build()`` when absent, and
    never changed once there (its values are random, and a user may have supplied their own)."""
    secret = kube.get(SECRET, stack.namespace, name)
    if secret is not None:
        return secret, False
    try:
        return kube.create(own(stack, build())), True
    except KubeError as err:
        if not err.already_exists:  # else: created meanwhile (by a user, say); use theirs
            raise
        secret = kube.get(SECRET, stack.namespace, name)
        if secret is None:
            raise
        return secret, False


def ensure_admin(kube: Kube, stack: Stack) -> Admin:
    """Read the admin Secret, generating it first when absent."""
    name = stack.admin_secret_name
    secret, generated = ensure_secret(
        kube, stack, name, lambda: build_admin_secret(stack, password=new_password(), token=new_token())
    )
    try:
        username, _, token = (
            _value(secret, name, k) for k in (SECRET_USERNAME, SECRET_PASSWORD, SECRET_TOKEN)
        )
    except SecretError as err:
        raise SecretInvalid("AdminSecretInvalid", str(err)) from None
    if len(token) < 20:
        raise SecretInvalid(
            "AdminSecretInvalid", f"Secret {name} key {SECRET_TOKEN!r} is too short for a Label Studio token"
        )
    return Admin(username=username, token=token, generated=generated)


def ensure_redis_password(kube: Kube, stack: Stack) -> bool:
    """Make sure the Redis password Secret exists (when Redis runs); True when this call created it."""
    if not stack.spec.redis.enabled:
        return False
    name = stack.redis_secret_name
    secret, generated = ensure_secret(
        kube, stack, name, lambda: build_redis_secret(stack, password=new_password())
    )
    try:
        if not _value(secret, name, SECRET_REDIS_PASSWORD):
            raise SecretError(f"Secret {name} key {SECRET_REDIS_PASSWORD!r} is empty")
    except SecretError as err:
        raise SecretInvalid("RedisSecretInvalid", str(err)) from None
    return generated
