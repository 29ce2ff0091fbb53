"""The spec model: defaults, and cross-field rules the OpenAPI schema cannot express."""

from __future__ import annotations

import pytest

from labelstack_operator.spec import BackendType, SpecError, check_stack_name, parse_spec
from tests.support import stacks


def test_an_empty_spec_is_a_label_studio_with_redis_and_nothing_else():
    spec = parse_spec({})
    assert spec.label_studio.image == "heartexlabs/label-studio:1.23.2"
    assert spec.label_studio.storage.size == "10Gi"
    assert spec.redis.enabled
    assert spec.backends == [] and spec.projects == []
    assert not spec.ingress.enabled
    assert spec.persistent_volume_claim_retention_policy.when_deleted == "Retain"


def test_full_spec_parses_with_camel_case_names():
    spec = parse_spec(stacks.FULL)
    seg, sam = spec.backends
    assert seg.type is BackendType.SEGMENTATION and not seg.interactive
    assert sam.type is BackendType.SAM and sam.interactive
    assert seg.resources.requests == {"cpu": "2", "memory": "8Gi"}  # integers become quantities
    assert seg.model_storage.access_mode == "ReadWriteMany"
    assert (
        spec.projects[0].gcs.source is not None and spec.projects[0].gcs.source.credentials_secret is not None
    )
    assert spec.projects[0].gcs.source.credentials_secret.key == "credentials.json"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"backends": [{"name": "seg", "type": "segmentation", "weights": {}}]}, "either path"),
        (
            {
                "backends": [
                    {"name": "seg", "type": "segmentation", "weights": {"demo": True, "path": "/w.pt"}}
                ]
            },
            "either path",
        ),
        (
            {"backends": [{"name": "s", "type": "sam", "weights": {"claimName": "w", "path": "/abs.pth"}}]},
            "relative to the PVC",
        ),
        (
            {"backends": [{"name": "s", "type": "sam", "weights": {"claimName": "w", "path": "../x.pth"}}]},
            "relative to the PVC",
        ),
        ({"backends": [{"name": "s", "type": "sam", "weights": {"path": "rel.pth"}}]}, "must be absolute"),
        (
            {"projects": [{"title": "Garments", "labelConfig": "<View/>", "backends": ["nope"]}]},
            "unknown backends: nope",
        ),
        (
            {
                "backends": [
                    {"name": "a", "type": "sam", "weights": {"demo": True}},
                    {"name": "a", "type": "segmentation", "weights": {"demo": True}},
                ]
            },
            "unique: a",
        ),
        ({"backends": [{"name": "redis", "type": "sam", "weights": {"demo": True}}]}, "taken by the stack"),
        ({"labelStudio": {"storage": {"size": "ten gigs"}}}, "not a Kubernetes quantity"),
        ({"labelStudio": {"pasword": "hunter2"}}, "labelStudio.pasword: Extra inputs are not permitted"),
        ({"redis": {"enabled": "perhaps"}}, "redis.enabled"),
        (
            {
                "labelStudio": {
                    "env": [{"name": "X", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "a"}}}]
                }
            },
            "not both",
        ),
    ],
)
def test_invalid_specs_raise_a_readable_spec_error(patch, message):
    with pytest.raises(SpecError) as err:
        parse_spec(patch)
    assert message in str(err.value)


@pytest.mark.parametrize("quantity", ["1Gi", "500m", "2", 2, "1.5", "1e3", "0.5Ki"])
def test_quantities_accept_the_kubernetes_grammar(quantity):
    spec = parse_spec({"labelStudio": {"storage": {"size": quantity}}})
    assert spec.label_studio.storage.size == str(quantity)


@pytest.mark.parametrize("name", ["demo", "a", "team-a-garments"])
def test_stack_names_that_leave_room_for_child_names(name):
    check_stack_name(name)


@pytest.mark.parametrize("name", ["Demo", "1demo", "demo.dots", "x" * 31, "demo-"])
def test_stack_names_that_would_break_child_names(name):
    with pytest.raises(SpecError, match="DNS label"):
        check_stack_name(name)
