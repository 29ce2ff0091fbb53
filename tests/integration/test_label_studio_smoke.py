"""The Label Studio fixture itself: it starts, and both token kinds authenticate."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_label_studio_answers_with_legacy_token(label_studio):
    me = label_studio.client.json("GET", "/api/current-user/whoami")
    assert me["email"] == label_studio.username
