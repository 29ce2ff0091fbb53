"""Label Studio accounts the operator keeps: the backends' own user, and the team the spec declares.

Each account is made once, through the organisation's invite link (sign-up stays closed), once
Label Studio answers. Passwords and tokens go to Secrets only: never to a log, an Event or the
status.

* The backends' user: ``<stack>-label-studio-backends`` holds its e-mail, password and token.
  Emptying or editing the ``token`` key has the operator issue a new token (which revokes the
  old one) and write it back with its digest, which goes into the backends' pod template and
  so rolls them.
* The team: one Secret per e-mail, ``<stack>-user-<digest>``, written when the account is made.
  An e-mail that already has an account (someone who joined by the invite link) is left alone.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace

from labelstack_common import wiring
from labelstack_common.labelstudio import LabelStudioClient, LabelStudioError
from labelstack_operator import admin
from labelstack_operator.kube import SECRET, Kube, KubeError
from labelstack_operator.plans import SecretError
from labelstack_operator.render import Stack, own
from labelstack_operator.render.accounts import (
    backend_user_email,
    build_backend_user_secret,
    build_user_secret,
    user_secret_name,
)
from labelstack_operator.render.backends import TOKEN_ANNOTATION
from labelstack_operator.render.labelstudio import SECRET_PASSWORD, SECRET_TOKEN, SECRET_USERNAME
from labelstack_operator.render.secret import new_password
from labelstack_operator.status import Check

log = logging.getLogger(__name__)


@dataclass
class Accounts:
    """What one pass did about accounts."""

    failure: Check | None = None
    generated: list[str] = field(default_factory=list)
    """Secrets written for new accounts."""
    rotated: bool = False


def _read(kube: Kube, stack: Stack, name: str, key: str) -> str:
    try:
        return admin.read_secret(kube, stack.namespace, name, key)
    except SecretError:
        return ""


def with_backend_token(kube: Kube, stack: Stack) -> Stack:
    """The stack with the digest of its backends' current token, for their pod template."""
    if not stack.spec.backends:
        return stack
    secret = kube.get(SECRET, stack.namespace, stack.backend_user_secret_name) or {}
    digest = ((secret.get("metadata") or {}).get("annotations") or {}).get(TOKEN_ANNOTATION, "")
    return replace(stack, backend_token_digest=str(digest))


def declared_emails(kube: Kube, stack: Stack) -> list[str]:
    """spec.labelStudio.users, then the users Secret's (a missing one is reported as SecretMissing)."""
    ls = stack.spec.label_studio
    emails = list(ls.users)
    if ls.users_secret is not None:
        text = _read(kube, stack, ls.users_secret.name, ls.users_secret.key)
        emails += [e for e in re.split(r"[\s,;]+", text) if "@" in e]
    unique: dict[str, str] = {}
    for email in emails:
        unique.setdefault(email.lower(), email)
    return list(unique.values())


def _backend_user(kube: Kube, stack: Stack, client: LabelStudioClient, out: Accounts) -> None:
    name = stack.backend_user_secret_name
    secret = kube.get(SECRET, stack.namespace, name)
    if secret is None:
        password = new_password()
        made = wiring.ensure_user(client, backend_user_email(stack), password, want_token=True)
        kube.create(own(stack, build_backend_user_secret(stack, password=password, token=made.token or "")))
        out.generated.append(name)
        return
    username, password, token = (
        _read(kube, stack, name, k) for k in (SECRET_USERNAME, SECRET_PASSWORD, SECRET_TOKEN)
    )
    kept = wiring.ensure_user(client, username, password, want_token=True, token=token)
    if kept.rotated:
        rotated = build_backend_user_secret(stack, password=password, token=kept.token or "", rotated=True)
        kube.apply(own(stack, rotated))
        out.rotated = True


def _team(kube: Kube, stack: Stack, client: LabelStudioClient, out: Accounts) -> None:
    for email in declared_emails(kube, stack):
        name = user_secret_name(stack, email)
        if kube.get(SECRET, stack.namespace, name) is not None:
            continue  # made once; the password is theirs to change
        password = new_password()
        if wiring.ensure_user(client, email, password).created:
            kube.create(own(stack, build_user_secret(stack, email, password=password)))
            out.generated.append(name)


def ensure_accounts(kube: Kube, stack: Stack, client: LabelStudioClient) -> Accounts:
    """Make the backends' account and the team's; a failure is a condition, not an exception."""
    out = Accounts()
    try:
        if stack.spec.backends:
            _backend_user(kube, stack, client, out)
        _team(kube, stack, client, out)
    except LabelStudioError as err:
        out.failure = Check("False", "AccountsFailed", str(err))
    except KubeError as err:
        out.failure = Check("False", "AccountsFailed", str(err))
    return out
