"""The LabelingStack CustomResourceDefinition, generated from the spec and status models.

One source of truth: ``manifests/crd.yaml`` (and the chart's copy) are the output
of ``python -m labelstack_operator.crd``, and a test fails when they drift.

pydantic's JSON Schema is turned into a *structural* OpenAPI v3 schema, which
the API server requires: ``$ref`` inlined, ``anyOf [X, null]`` collapsed to an
optional X, no ``title``/``additionalProperties: false``, and every default
(also those from ``default_factory``) written out without nulls, so the API
server stores the same defaults that :func:`spec.parse_spec` would apply.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import yaml
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema

from labelstack_operator import constants as c
from labelstack_operator.spec import LabelingStackSpec
from labelstack_operator.status import LabelingStackStatus

Schema = dict[str, Any]

_DROP = frozenset({"title", "$defs", "discriminator"})


class _WithFactoryDefaults(GenerateJsonSchema):
    """pydantic leaves ``default_factory`` values out of the schema; the CRD wants them."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            return factory()  # type: ignore[call-arg]
        return super().get_default_value(schema)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _resolve(node: Schema, defs: dict[str, Schema]) -> Schema:
    ref = node.get("$ref")
    if ref is None:
        return node
    target = defs[ref.rsplit("/", 1)[-1]]
    # Keys next to $ref (description, default) override the referenced schema's.
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def _collapse_nullable(node: Schema) -> Schema:
    options = node.get("anyOf")
    if not options:
        return node
    non_null = [o for o in options if o.get("type") != "null"]
    if len(non_null) != 1 or len(non_null) == len(options):
        return node
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    # Optional fields are simply not required; an explicit null default means no default.
    if rest.get("default", 0) is None:
        del rest["default"]
    return {**non_null[0], **rest}


def structural(node: Any, defs: dict[str, Schema]) -> Any:
    """Convert one pydantic JSON Schema node (recursively) to a structural schema node."""
    if isinstance(node, list):
        return [structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = _collapse_nullable(_resolve(node, defs))
    node = _resolve(node, defs)  # the non-null branch may itself be a $ref
    out: Schema = {}
    for key, value in node.items():
        if key in _DROP or (key == "additionalProperties" and value is False):
            continue
        if key == "properties":
            out[key] = {name: structural(prop, defs) for name, prop in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "allOf", "oneOf"):
            out[key] = structural(value, defs)
        elif key == "default":
            out[key] = _without_nulls(value)
        else:
            out[key] = value
    if "const" in out:
        out.setdefault("enum", [out.pop("const")])
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "properties" in out:
        out.setdefault("type", "object")
    return out


def model_schema(model: type[Any]) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_WithFactoryDefaults)
    return structural(raw, raw.get("$defs", {}))  # type: ignore[no-any-return]


def build_crd() -> dict[str, Any]:
    spec = model_schema(LabelingStackSpec)
    spec["default"] = {}
    status = model_schema(LabelingStackStatus)
    schema: Schema = {
        "type": "object",
        "description": "LabelingStack: Label Studio, its ML backends and Redis, wired together.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{c.PLURAL}.{c.GROUP}",
            "labels": {"app.kubernetes.io/part-of": "labelstack"},
        },
        "spec": {
            "group": c.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": c.KIND,
                "listKind": f"{c.KIND}List",
                "plural": c.PLURAL,
                "singular": c.SINGULAR,
                "shortNames": list(c.SHORT_NAMES),
                "categories": list(c.CATEGORIES),
            },
            "versions": [
                {
                    "name": c.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {
                            "name": "Ready",
                            "type": "string",
                            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                        },
                        {
                            "name": "Reason",
                            "type": "string",
                            "priority": 1,
                            "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
                        },
                        {"name": "URL", "type": "string", "jsonPath": ".status.url"},
                        {"name": "Backends", "type": "string", "jsonPath": ".status.backends"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


# Kubernetes' own types: documented by name, not field by field.
_OPAQUE = {
    "resources": "ResourceRequirements",
    "tolerations": "[]Toleration",
    "env": "[]EnvVar (name, value or valueFrom)",
    "imagePullSecrets": "[]LocalObjectReference",
    "nodeSelector": "map[string]string",
    "annotations": "map[string]string",
}


def _type(node: Schema) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "quantity"
    if "enum" in node:
        return " \\| ".join(str(v) for v in node["enum"])
    if node.get("type") == "array":
        return f"[]{_type(node.get('items', {}))}"
    return str(node.get("type", ""))


def _default(node: Schema) -> str:
    if "default" not in node or node.get("type") in ("object", "array"):
        return ""
    return f"`{json.dumps(node['default'])}`"


def spec_reference() -> str:
    """The spec as a Markdown table, for docs/operator.md (a test keeps the two equal)."""
    rows = ["| Field | Type | Default | Description |", "| --- | --- | --- | --- |"]

    def walk(node: Schema, prefix: str) -> None:
        required = set(node.get("required", []))
        for name, prop in node.get("properties", {}).items():
            path = f"{prefix}{name}"
            kind = _OPAQUE.get(name) or _type(prop)
            text = " ".join(str(prop.get("description", "")).split()).replace("|", "\\|")
            if name in required:
                text = f"**Required.** {text}".strip()
            rows.append(f"| `{path}` | {kind} | {_default(prop)} | {text} |")
            if name in _OPAQUE:
                continue
            if prop.get("type") == "object":
                walk(prop, f"{path}.")
            elif prop.get("type") == "array" and prop.get("items", {}).get("type") == "object":
                walk(prop["items"], f"{path}[].")

    walk(model_schema(LabelingStackSpec), "spec.")
    return "\n".join(rows) + "\n"


class _NoAliases(yaml.SafeDumper):
    """Repeated sub-schemas are written out in full: anchors confuse readers and some tools."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_yaml() -> str:
    header = "# Generated by `python -m labelstack_operator.crd` from the spec model; do not edit.\n"
    return header + yaml.dump(build_crd(), Dumper=_NoAliases, sort_keys=False, width=100)


def main() -> None:
    sys.stdout.write(render_yaml())


if __name__ == "__main__":
    main()
