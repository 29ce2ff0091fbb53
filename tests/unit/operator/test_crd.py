"""The CRD: generated from the spec model, structural, checked in, and as strict as the model."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from labelstack_operator import constants as c
from labelstack_operator.crd import CrdVersion, build_crd, render_yaml
from labelstack_operator.spec import LabelingStackSpec, parse_spec
from labelstack_operator.status import LabelingStackStatus
from tests.support import stacks

REPO = Path(__file__).resolve().parents[3]


def openapi() -> dict[str, Any]:
    return stacks.crd_spec_schema_root(build_crd())


def test_checked_in_crd_is_up_to_date():
    checked_in = (REPO / "manifests" / "crd.yaml").read_text()
    assert checked_in == render_yaml(), "run: python -m labelstack_operator.crd > manifests/crd.yaml"


def test_crd_validates_against_kubernetes_1_30_strict():
    kubernetes_validate.validate(yaml.safe_load(render_yaml()), "1.30.0", strict=True)


def test_crd_identity_status_subresource_columns_and_short_name():
    crd = build_crd()
    assert crd["metadata"]["name"] == "labelingstacks.labelstack.dev"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["shortNames"] == ["lstack"]
    (version,) = crd["spec"]["versions"]
    assert version["name"] == c.VERSION and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = {col["name"]: col for col in version["additionalPrinterColumns"]}
    assert {"Ready", "URL", "Backends", "Age"} <= set(columns)
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Age"]["type"] == "date"


def schema_nodes(node: dict[str, Any], path: str = "") -> Any:
    """Every sub-schema (not default values, enums or property-name maps)."""
    yield path, node
    for name, prop in node.get("properties", {}).items():
        yield from schema_nodes(prop, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from schema_nodes(node[key], f"{path}.{key}")
    for key in ("anyOf", "allOf", "oneOf"):
        for i, option in enumerate(node.get(key, [])):
            yield from schema_nodes(option, f"{path}.{key}[{i}]")


def test_schema_is_structural():
    # The API server refuses $ref, nullable unions and untyped nodes in a CRD.
    nodes = list(schema_nodes(openapi()))
    assert len(nodes) > 100
    for path, node in nodes:
        assert not {"$ref", "$defs", "title", "anyOf", "oneOf", "allOf"} & set(node), path
        assert node.get("additionalProperties") is not False, path
        assert "type" in node or node.get("x-kubernetes-int-or-string") is True, path
        if "default" in node and node.get("type") == "object":
            assert None not in node["default"].values(), path


@pytest.mark.parametrize(
    "spec", [stacks.MINIMAL, stacks.SMALL, stacks.FULL], ids=["minimal", "small", "full"]
)
def test_api_server_defaults_equal_the_model_defaults(spec):
    schema = openapi()["properties"]["spec"]
    stored = stacks.api_server_defaults(schema, copy.deepcopy(spec))
    assert parse_spec(stored) == parse_spec(spec)
    # And the stored form is itself valid against the schema.
    jsonschema.validate(stored, without_kubernetes_extensions(schema))


def without_kubernetes_extensions(schema: Any) -> Any:
    if isinstance(schema, dict):
        if schema.get("x-kubernetes-int-or-string"):
            return {"type": ["integer", "string"]}
        return {
            k: without_kubernetes_extensions(v) for k, v in schema.items() if not k.startswith("x-kubernetes")
        }
    if isinstance(schema, list):
        return [without_kubernetes_extensions(v) for v in schema]
    return schema


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"backends": [{"name": "seg", "type": "yolo", "weights": {"demo": True}}]}, "'yolo' is not one of"),
        (
            {"backends": [{"name": "seg", "type": "sam", "weights": {"demo": True}, "replicas": -1}]},
            "minimum",
        ),
        ({"backends": [{"name": "seg", "type": "sam"}]}, "'weights' is a required property"),
        ({"backends": [{"name": "Seg!", "type": "sam", "weights": {"demo": True}}]}, "does not match"),
        ({"labelStudio": {"storage": {"size": []}}}, "is not of type"),
        ({"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Keep"}}, "'Keep' is not one of"),
        ({"projects": [{"title": "ab", "labelConfig": "<View/>"}]}, "is too short"),
    ],
)
def test_the_schema_refuses_bad_specs_at_the_api_server(spec, fragment):
    schema = without_kubernetes_extensions(openapi()["properties"]["spec"])
    with pytest.raises(jsonschema.ValidationError, match=fragment):
        jsonschema.validate(spec, schema)


def test_lists_keyed_by_name_and_title_so_the_api_server_refuses_duplicates():
    spec = openapi()["properties"]["spec"]["properties"]
    assert spec["backends"]["x-kubernetes-list-type"] == "map"
    assert spec["backends"]["x-kubernetes-list-map-keys"] == ["name"]
    assert spec["projects"]["x-kubernetes-list-map-keys"] == ["title"]


def test_a_second_version_is_one_more_entry_served_beside_the_stored_one():
    beta = CrdVersion("v1beta1", LabelingStackSpec, LabelingStackStatus, storage=False)
    alpha = CrdVersion(
        c.VERSION, LabelingStackSpec, LabelingStackStatus, storage=True, deprecation_warning="use v1beta1"
    )
    crd = build_crd((alpha, beta))
    assert [(v["name"], v["served"], v["storage"]) for v in crd["spec"]["versions"]] == [
        (c.VERSION, True, True),
        ("v1beta1", True, False),
    ]
    assert crd["spec"]["versions"][0]["deprecated"] is True
    assert "conversion" not in crd["spec"]  # strategy None: the schemas are the same
    kubernetes_validate.validate(crd, "1.30.0", strict=True)
    with pytest.raises(ValueError):
        build_crd((beta,))  # no storage version
