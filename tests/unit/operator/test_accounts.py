"""The backends' own Label Studio account and the team's, kept by the operator (one pass at a time).

Label Studio itself is faked here (``accounts``, see conftest); the real sign-up, log-in and token
calls are tested in tests/integration/test_team_access.py.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from labelstack_operator import reconcile
from labelstack_operator.render.accounts import USER_ANNOTATION, token_digest, user_secret_name
from labelstack_operator.render.backends import TOKEN_ANNOTATION
from tests.support.operator import Namespace
from tests.unit.operator.test_render import make_stack

TEAM: dict[str, Any] = {
    "labelStudio": {
        "users": ["ann@team.example", "Ann@team.example"],
        "usersSecret": {"name": "team"},
    },
    "backends": [{"name": "seg", "type": "segmentation", "weights": {"demo": True}}],
}


def _data(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def _mark_ready(ns: Namespace, name: str) -> None:
    dep = ns.get("apps/v1", "deployments", name)
    status = {"replicas": 1, "readyReplicas": 1, "observedGeneration": dep["metadata"]["generation"]}
    ns.server.patch("apps/v1", "deployments", ns.name, name, {"status": status}, sub="status")


def _pod_annotations(ns: Namespace) -> dict[str, str]:
    template = ns.get("apps/v1", "deployments", "garments-seg")["spec"]["template"]
    return dict(template["metadata"].get("annotations") or {})


def test_accounts_are_made_once_label_studio_answers_and_a_token_rotates(server, ctx, accounts, caplog):
    caplog.set_level(logging.DEBUG)
    ns = Namespace(server, "team")
    team = "bob@team.example\ncarl@team.example, ann@team.example"
    server.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "team", "namespace": ns.name},
            "data": {"emails": base64.b64encode(team.encode()).decode()},
        },
        "secrets",
    )
    ns.create_stack(TEAM)
    reconcile.reconcile(ctx, ns.stack())

    # Before Label Studio answers: no account, and the backends wait for their own token.
    assert accounts.made == []
    container = ns.get("apps/v1", "deployments", "garments-seg")["spec"]["template"]["spec"]["containers"][0]
    key = next(e for e in container["env"] if e["name"] == "LABEL_STUDIO_API_KEY")
    assert key["valueFrom"]["secretKeyRef"] == {"name": "garments-label-studio-backends", "key": "token"}

    _mark_ready(ns, "garments-label-studio")
    reconcile.reconcile(ctx, ns.stack())
    backend = _data(ns.get("v1", "secrets", "garments-label-studio-backends"))
    assert backend["username"] == "backends-garments@labelstack.local"
    assert backend["token"] == accounts.tokens[backend["username"]]
    admin = _data(ns.get("v1", "secrets", "garments-label-studio-admin"))
    assert backend["token"] != admin["token"]
    assert sorted(accounts.made) == sorted(
        ["backends-garments@labelstack.local", "ann@team.example", "bob@team.example", "carl@team.example"]
    )
    stack = make_stack(TEAM)
    for email in ("ann@team.example", "bob@team.example", "carl@team.example"):
        secret = ns.get("v1", "secrets", user_secret_name(stack, email))
        assert secret["metadata"]["annotations"][USER_ANNOTATION] == email
        assert _data(secret)["username"] == email and len(_data(secret)["password"]) >= 24

    # A first token rolls nothing (the pods wait for the Secret); no account is made twice.
    reconcile.reconcile(ctx, ns.stack())
    assert TOKEN_ANNOTATION not in _pod_annotations(ns)
    assert len(accounts.made) == 4

    # Emptying the token asks for a new one: issued (the old one revoked), written back, rolled out.
    server.patch("v1", "secrets", ns.name, "garments-label-studio-backends", {"data": {"token": ""}})
    reconcile.reconcile(ctx, ns.stack())
    rotated = _data(ns.get("v1", "secrets", "garments-label-studio-backends"))["token"]
    assert rotated not in ("", backend["token"]) and rotated == accounts.tokens[backend["username"]]
    reconcile.reconcile(ctx, ns.stack())
    assert _pod_annotations(ns)[TOKEN_ANNOTATION] == token_digest(rotated)
    messages = [e["message"] for e in server.list("v1", "events", ns.name)]
    assert any("old one is revoked" in m for m in messages)

    # Passwords and tokens never reach a log or an Event.
    said = caplog.text + "\n".join(messages)
    for secret in server.list("v1", "secrets", ns.name):
        for key, value in _data(secret).items():
            if key in ("password", "token"):
                assert value not in said


def test_a_missing_users_secret_is_named(server, ctx):
    ns = Namespace(server, "no-team")
    ns.create_stack({"labelStudio": {"usersSecret": {"name": "team", "key": "list"}}})
    reconcile.reconcile(ctx, ns.stack())
    ready = ns.condition("Ready")
    assert ready["reason"] == "SecretMissing" and "labelStudio.usersSecret" in ready["message"]
