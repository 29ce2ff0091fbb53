"""A segmentation backend's ``promote`` becomes LABELSTACK_PROMOTE; left empty, the backend's
own default (if-better) decides."""

from __future__ import annotations

import copy

import pytest

from labelstack_operator.spec import SpecError, parse_spec
from tests.support import stacks
from tests.unit.operator.test_render import container, env, rendered


@pytest.mark.parametrize("policy", ["if-better", "always", "manual"])
def test_a_promotion_policy_is_rendered_into_the_segmentation_backend(policy: str) -> None:
    spec = copy.deepcopy(stacks.FULL)
    spec["backends"][0]["promote"] = policy
    objs = rendered(spec)
    assert env(container(objs, "garments-seg"))["LABELSTACK_PROMOTE"] == policy
    assert "LABELSTACK_PROMOTE" not in env(container(objs, "garments-sam"))


def test_left_empty_it_renders_nothing() -> None:
    assert "LABELSTACK_PROMOTE" not in env(container(rendered(stacks.FULL), "garments-seg"))


def test_an_unknown_policy_is_refused() -> None:
    spec = copy.deepcopy(stacks.FULL)
    spec["backends"][0]["promote"] = "sometimes"
    with pytest.raises(SpecError, match="promote"):
        parse_spec(spec)


def test_a_sam_backend_does_not_train_so_it_cannot_promote() -> None:
    spec = copy.deepcopy(stacks.FULL)
    spec["backends"][1]["promote"] = "always"
    with pytest.raises(SpecError, match="promote applies to segmentation backends"):
        parse_spec(spec)
