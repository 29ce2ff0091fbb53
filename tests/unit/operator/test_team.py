"""A stack fit for a team: closed sign-up by default, visible in the spec."""

from __future__ import annotations

import pytest

from labelstack_operator.spec import SpecError, parse_spec
from tests.support import stacks
from tests.unit.operator.test_render import container, env, rendered


def test_sign_up_is_closed_by_default_with_label_studios_own_setting():
    values = env(container(rendered(stacks.MINIMAL), "garments-label-studio"))
    assert values["LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK"] == "true"
    assert parse_spec({}).label_studio.signup == "invite"


def test_open_sign_up_is_asked_for_in_the_spec():
    values = env(container(rendered({"labelStudio": {"signup": "open"}}), "garments-label-studio"))
    assert values["LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK"] == "false"


def test_an_unknown_sign_up_mode_is_refused():
    with pytest.raises(SpecError, match="signup"):
        parse_spec({"labelStudio": {"signup": "anyone"}})


def test_the_local_stack_closes_sign_up_too(tmp_path):
    from labelstack_tools.localstack.labelstudio import LabelStudioProcess

    ls = LabelStudioProcess(tmp_path, 8080, "admin@labelstack.local", "pw", "t" * 40)
    assert ls.env()["LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK"] == "true"
