"""A stack fit for a team: closed sign-up by default, visible in the spec."""

from __future__ import annotations

import pytest

from labelstack_operator.spec import SpecError, parse_spec
from tests.support import stacks
from tests.unit.operator.test_render import by_key, container, env, rendered


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


def test_label_studio_keeps_its_ssrf_guard_minus_the_cluster_ranges():
    values = env(container(rendered(stacks.FULL), "garments-label-studio"))
    assert values["ML_BLOCK_LOCAL_IP"] == values["SSRF_PROTECTION_ENABLED"] == "true"
    assert values["USE_DEFAULT_BANNED_SUBNETS"] == "false"
    banned = values["USER_ADDITIONAL_BANNED_SUBNETS"].split(",")
    assert {"127.0.0.0/8", "169.254.0.0/16", "0.0.0.0/8", "::1/128", "fe80::/10"} <= set(banned)
    assert not {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} & set(banned)


def test_label_studio_egress_reaches_its_backends_dns_and_public_addresses_only():
    objs = by_key(rendered(stacks.FULL))
    policy = objs[("NetworkPolicy", "garments-label-studio-egress")]["spec"]
    assert policy["policyTypes"] == ["Egress"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "label-studio"
    rules = policy["egress"]
    assert {"protocol": "UDP", "port": 53} in rules[0]["ports"]
    pods = {
        r["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]: r["ports"][0]["port"]
        for r in rules
        if "podSelector" in (r.get("to") or [{}])[0]
    }
    assert pods == {"backend": 9090, "postgres": 5432}
    public = [r["to"][0]["ipBlock"] for r in rules if "ipBlock" in (r.get("to") or [{}])[0]]
    assert public[0] == {
        "cidr": "0.0.0.0/0",
        "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"],
    }
    assert public[1] == {"cidr": "::/0", "except": ["fc00::/7"]}


def test_egress_ranges_are_configurable_and_checked():
    spec = {"labelStudio": {"egress": {"privateCidrs": ["10.0.0.0/8"], "allowCidrs": ["10.1.2.3/32"]}}}
    objs = by_key(rendered(spec))
    rules = objs[("NetworkPolicy", "garments-label-studio-egress")]["spec"]["egress"]
    assert {"to": [{"ipBlock": {"cidr": "10.1.2.3/32"}}]} in rules
    values = env(container(list(objs.values()), "garments-label-studio"))
    assert "172.16.0.0/12" in values["USER_ADDITIONAL_BANNED_SUBNETS"]
    with pytest.raises(SpecError, match="not a CIDR"):
        parse_spec({"labelStudio": {"egress": {"privateCidrs": ["10.0.0.999/8"]}}})
    assert ("NetworkPolicy", "garments-label-studio-egress") not in by_key(
        rendered({"labelStudio": {"egress": {"enabled": False}}})
    )
