"""Upgrades: a stack stored under an older CRD, with the defaults that CRD wrote into it, follows
the new operator's images and limits.

The old CRDs are the ones of earlier commits, kept verbatim in fixtures/; the API server's
defaulting is emulated (tests/support/stacks.api_server_defaults) at create, with the old CRD,
and at read, with the new one. The next release's defaults are simulated by changing the
operator's (defaults.py) for the test.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from labelstack_operator import defaults, reconcile
from labelstack_operator.crd import OPERATOR_DEFAULT, build_crd, model_schema
from labelstack_operator.spec import LabelingStackSpec, parse_spec
from tests.support import stacks
from tests.support.operator import Namespace

FIXTURES = Path(__file__).parent / "fixtures"
OLD_CRDS = ["crd-28576e2.yaml", "crd-ddfa6d0.yaml"]
DEMO = {"weights": {"demo": True}}
# Two SAM backends: 2 x 256Mi of shared cache + 64Mi did not fit the 512Mi Redis limit of 28576e2.
TWO_SAMS: dict[str, Any] = {
    "backends": [
        {"name": "seg", "type": "segmentation", **DEMO},
        {"name": "sam-a", "type": "sam", **DEMO},
        {"name": "sam-b", "type": "sam", **DEMO},
    ]
}
NEXT = {
    "BACKEND_IMAGE": "labelstack/backend:0.2.0",
    "LABEL_STUDIO_IMAGE": "heartexlabs/label-studio:1.24.0",
    "REDIS_IMAGE": "redis:8-alpine",
    "REDIS_RESOURCES": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "1536Mi"}},
    "BACKEND_RESOURCES": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "8Gi"}},
}


def old_crd(name: str) -> dict[str, Any]:
    return yaml.safe_load((FIXTURES / name).read_text())  # type: ignore[no-any-return]


def stored_under(crd: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    return stacks.api_server_defaults(stacks.crd_spec_schema(crd), copy.deepcopy(spec))  # type: ignore[no-any-return]


def schema_at(schema: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    node: dict[str, Any] | None = schema
    for part in path:
        if node is None:
            return None
        node = node.get("items") if part == "*" else node.get("properties", {}).get(part)
    return node


def operator_default_paths(node: dict[str, Any], path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    found = {path} if OPERATOR_DEFAULT in node else set()
    for name, prop in node.get("properties", {}).items():
        found |= operator_default_paths(prop, (*path, name))
    if isinstance(node.get("items"), dict):
        found |= operator_default_paths(node["items"], (*path, "*"))
    return found


@pytest.mark.parametrize("crd", OLD_CRDS)
def test_a_stack_stored_under_an_older_crd_takes_the_new_operators_images_and_limits(
    server, ctx, monkeypatch, crd
):
    for name, value in NEXT.items():
        monkeypatch.setattr(defaults, name, value)
    ns = Namespace(server, f"upgrade-{crd.removesuffix('.yaml')}")
    stored = stored_under(old_crd(crd), TWO_SAMS)
    assert stored["backends"][1]["image"] == "labelstack/backend:0.1.0"  # what the old CRD wrote
    ns.create_stack(stored)
    body = ns.stack()
    # On reads, the API server applies the new CRD's defaults too.
    body["spec"] = stored_under(build_crd(), body["spec"])
    reconcile.reconcile(ctx, body)

    ready = ns.condition("Ready")
    assert ready["reason"] not in ("InvalidSpec", "ApplyFailed"), ready["message"]
    containers = {
        name: ns.get("apps/v1", "deployments", f"garments-{name}")["spec"]["template"]["spec"]["containers"][
            0
        ]
        for name in ("label-studio", "redis", "seg", "sam-a", "sam-b")
    }
    assert containers["label-studio"]["image"] == NEXT["LABEL_STUDIO_IMAGE"]
    assert containers["redis"]["image"] == NEXT["REDIS_IMAGE"]
    assert containers["redis"]["resources"] == NEXT["REDIS_RESOURCES"]
    for backend in ("seg", "sam-a", "sam-b"):
        assert containers[backend]["image"] == NEXT["BACKEND_IMAGE"]
        assert containers[backend]["resources"] == NEXT["BACKEND_RESOURCES"]


def test_what_the_user_wrote_is_kept_even_where_the_operator_has_a_default():
    stored = stored_under(
        old_crd("crd-ddfa6d0.yaml"), {"redis": {"resources": {"limits": {"memory": "2Gi"}}}}
    )
    spec = parse_spec(stored)
    assert spec.redis.resources.limits == {"memory": "2Gi"} and spec.redis.image == defaults.REDIS_IMAGE


def test_the_new_crd_stores_no_operator_default():
    schema = stacks.crd_spec_schema(build_crd())
    stored = stored_under(build_crd(), TWO_SAMS)
    assert set(stored["backends"][0]) >= {"replicas", "gpu", "samModelType"}  # the user's intent: kept
    assert not {"image", "resources", "shmSize"} & set(stored["backends"][0])
    assert "image" not in stored["labelStudio"] and "resources" not in stored["redis"]
    for path in defaults.STORED_BY_OLDER_CRDS:
        node = schema_at(schema, path)
        assert node is not None and "default" not in node, path


def test_every_default_the_operator_resolves_is_known_in_every_form_older_crds_stored():
    resolved = operator_default_paths(model_schema(LabelingStackSpec, documented=True))
    assert resolved == set(defaults.STORED_BY_OLDER_CRDS)
    for crd in OLD_CRDS:
        schema = stacks.crd_spec_schema(old_crd(crd))
        for path, known in defaults.STORED_BY_OLDER_CRDS.items():
            node = schema_at(schema, path)
            if node is not None and "default" in node:
                assert node["default"] in known, (crd, path)
