"""Secrets the operator reads or creates: Label Studio's admin, GCS credentials."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from labelstack_operator.kube import SECRET, Kube, KubeError
from labelstack_operator.plans import SecretError
from labelstack_operator.render import Stack, build_admin_secret, own
from labelstack_operator.render.labelstudio import SECRET_PASSWORD, SECRET_TOKEN, SECRET_USERNAME
from labelstack_operator.render.secret import new_password, new_token


@dataclass(frozen=True)
class Admin:
    username: str
    token: str
    generated: bool  # created by this call


def _value(secret: dict[str, object], name: str, key: str) -> str:
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


def ensure_admin(kube: Kube, stack: Stack) -> Admin:
    """Read the admin Secret, generating it first when absent. An existing Secret is never changed."""
    name = stack.admin_secret_name
    secret = kube.get(SECRET, stack.namespace, name)
    generated = False
    if secret is None:
        body = own(stack, build_admin_secret(stack, password=new_password(), token=new_token()))
        try:
            secret = kube.create(body)
            generated = True
        except KubeError as err:
            if not err.already_exists:  # else: created meanwhile (by a user, say); use theirs
                raise
            secret = kube.get(SECRET, stack.namespace, name)
            if secret is None:
                raise
    for key in (SECRET_USERNAME, SECRET_PASSWORD):
        _value(secret, name, key)
    token = _value(secret, name, SECRET_TOKEN)
    if len(token) < 20:
        raise SecretError(f"Secret {name} key {SECRET_TOKEN!r} is too short for a Label Studio token")
    return Admin(username=_value(secret, name, SECRET_USERNAME), token=token, generated=generated)
