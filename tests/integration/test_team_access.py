"""A real Label Studio as LabelStack starts it: closed sign-up, the backends' own user, declared users."""

from __future__ import annotations

import uuid

import pytest
import requests

from labelstack_common.labelstudio import LabelStudioClient, LabelStudioError, UserSession
from labelstack_common.wiring import ensure_user
from tests.support.projects import shapes_project

pytestmark = pytest.mark.integration


def _email(who: str) -> str:
    return f"{who}-{uuid.uuid4().hex[:6]}@labelstack.test"


def test_a_stranger_cannot_sign_up_without_the_invite_link_and_sees_no_project(label_studio):
    shapes_project(label_studio, [(64, 48)])
    stranger = UserSession(label_studio.url, _email("stranger"), "a-Long-enough-pw-1")
    with pytest.raises(LabelStudioError) as refused:
        stranger.sign_up(None)
    assert refused.value.status == 403
    assert not stranger.log_in()
    with pytest.raises(LabelStudioError):
        stranger.project_titles()
    assert requests.get(f"{label_studio.url}/api/projects", timeout=10).status_code == 401


def test_the_backends_token_is_its_own_fetches_images_and_posts_predictions(label_studio):
    shapes = shapes_project(label_studio, [(64, 48)])
    email, password = _email("backends"), "a-Long-enough-pw-2"
    first = ensure_user(label_studio.client, email, password, want_token=True)
    assert first.created and first.token and first.token != label_studio.token

    backend = LabelStudioClient(label_studio.url, first.token)
    task = shapes.tasks[0]
    image = backend.request("GET", task["data"]["image"])
    assert image.content[:2] == b"\xff\xd8"  # a JPEG
    backend.call(
        "post a prediction",
        backend.sdk.predictions.create,
        task=task["id"],
        result=[],
        score=0.5,
        model_version="backend-user-test",
    )
    preds = label_studio.client.json("GET", f"/api/predictions?task={task['id']}")
    assert [p["model_version"] for p in preds] == ["backend-user-test"]

    again = ensure_user(label_studio.client, email, password, want_token=True, token=first.token)
    assert (again.created, again.rotated, again.token) == (False, False, first.token)

    # The Secret's token was emptied (or edited): a new one is issued and the old one revoked.
    rotated = ensure_user(label_studio.client, email, password, want_token=True, token="")
    assert rotated.rotated and rotated.token not in (None, first.token)
    with pytest.raises(LabelStudioError) as revoked:
        backend.json("GET", "/api/current-user/whoami")
    assert revoked.value.status == 401
    me = LabelStudioClient(label_studio.url, rotated.token).json("GET", "/api/current-user/whoami")
    assert me["email"] == email


def test_declared_users_are_created_once_log_in_and_see_the_project(label_studio):
    shapes = shapes_project(label_studio, [(64, 48)])
    users = {_email("ann"): "a-Long-enough-pw-3", _email("bob"): "a-Long-enough-pw-4"}
    assert all(ensure_user(label_studio.client, e, p).created for e, p in users.items())
    assert not any(ensure_user(label_studio.client, e, p).created for e, p in users.items())
    for email, password in users.items():
        session = UserSession(label_studio.url, email, password)
        assert session.log_in()
        assert shapes.project.title in session.project_titles()
        session.close()


def test_ssrf_protection_stays_on_for_all_but_the_backends_addresses(label_studio):
    project = shapes_project(label_studio, [(64, 48)]).project

    def webhook(url: str) -> int:
        body = {"project": project.id, "url": url, "send_payload": True}
        resp = requests.post(
            f"{label_studio.url}/api/webhooks/",
            json=body,
            headers={"Authorization": f"Token {label_studio.token}"},
            timeout=10,
        )
        return resp.status_code

    # Cloud metadata and the rest of Label Studio's reserved ranges are still refused by it...
    assert webhook("http://169.254.169.254/latest/meta-data/") == 403  # SsrfBlockedUrlError
    assert webhook("http://0.0.0.0:9090/webhook") == 403
    # ...while the backends' own range (loopback here, the private ranges on Kubernetes) is let in.
    assert webhook("http://127.0.0.1:9/webhook") == 201
