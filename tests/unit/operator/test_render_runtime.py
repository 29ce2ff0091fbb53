"""A backend's ``runtime`` becomes LABELSTACK_RUNTIME; left at auto, the backend's own default serves."""

from __future__ import annotations

import copy

import pytest

from labelstack_operator.spec import SpecError, parse_spec
from tests.support import stacks
from tests.unit.operator.test_render import container, env, rendered


@pytest.mark.parametrize("runtime", ["torch", "onnx", "openvino", "tensorrt"])
def test_a_backend_runtime_is_rendered_into_its_environment(runtime: str) -> None:
    spec = copy.deepcopy(stacks.FULL)
    spec["backends"][0]["runtime"] = runtime
    objs = rendered(spec)
    assert env(container(objs, "garments-seg"))["LABELSTACK_RUNTIME"] == runtime
    assert "LABELSTACK_RUNTIME" not in env(container(objs, "garments-sam"))


def test_auto_is_the_default_and_renders_nothing() -> None:
    objs = rendered(stacks.FULL)
    assert "LABELSTACK_RUNTIME" not in env(container(objs, "garments-seg"))


def test_an_unknown_runtime_is_refused() -> None:
    spec = copy.deepcopy(stacks.FULL)
    spec["backends"][0]["runtime"] = "tflite"
    with pytest.raises(SpecError, match="runtime"):
        parse_spec(spec)
