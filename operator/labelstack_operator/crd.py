"""The LabelingStack CustomResourceDefinition, generated from the spec and status models.

One source of truth: ``manifests/crd.yaml`` (and the chart's copy) are the output
of ``python -m labelstack_operator.crd``, and a test fails when they drift.

pydantic's JSON Schema is turned into a *structural* OpenAPI v3 schema, which
the API server requires: ``$ref`` inlined, ``anyOf [X, null]`` collapsed to an
optional X, no ``title``/``additionalProperties: false``, and the defaults that
are the user's intent written out without nulls. Defaults that follow the
operator (images, resources: ``defaults.RESOLVED``) are left out, and an
object's default is ``{}`` (the API server then fills its properties' own
defaults), so no operator default is ever stored in a stack.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema

from labelstack_operator import constants as c
from labelstack_operator.defaults import RESOLVED
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


# The spec reference shows the operator's defaults under this key (never in the CRD).
OPERATOR_DEFAULT = "x-operator-default"


def structural(node: Any, defs: dict[str, Schema], *, documented: bool = False) -> Any:
    """Convert one pydantic JSON Schema node (recursively) to a structural schema node;
    ``documented`` keeps the operator's defaults, under OPERATOR_DEFAULT, for the docs."""
    if isinstance(node, list):
        return [structural(item, defs, documented=documented) for item in node]
    if not isinstance(node, dict):
        return node
    node = _collapse_nullable(_resolve(node, defs))
    node = _resolve(node, defs)  # the non-null branch may itself be a $ref
    out: Schema = {}
    resolved = node.get(RESOLVED, False)
    for key, value in node.items():
        if key in _DROP or key == RESOLVED or (key == "additionalProperties" and value is False):
            continue
        if key == "default" and resolved:
            # The operator's default, resolved at reconcile (defaults.py).
            if documented:
                out[OPERATOR_DEFAULT] = value
            continue
        if key == "properties":
            out[key] = {name: structural(prop, defs, documented=documented) for name, prop in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "allOf", "oneOf"):
            out[key] = structural(value, defs, documented=documented)
        elif key == "default":
            # An object's properties carry their own defaults; the object's would store them all.
            out[key] = {} if isinstance(value, dict) and "properties" in node else _without_nulls(value)
        else:
            out[key] = value
    if "const" in out:
        out.setdefault("enum", [out.pop("const")])
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "properties" in out:
        out.setdefault("type", "object")
    return out


def model_schema(model: type[Any], *, documented: bool = False) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_WithFactoryDefaults)
    return structural(raw, raw.get("$defs", {}), documented=documented)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class CrdVersion:
    """One served version of the CRD: its name, the models its schema comes from, its state.

    A second version (v1beta1, docs/operator.md#versions) is one more entry in VERSIONS; exactly
    one is the storage version, the one the operator watches (constants.VERSION).
    """

    name: str
    spec_model: type[Any]
    status_model: type[Any]
    storage: bool
    served: bool = True
    deprecation_warning: str | None = None


VERSIONS: tuple[CrdVersion, ...] = (
    CrdVersion(c.VERSION, LabelingStackSpec, LabelingStackStatus, storage=True),
)

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {
        "name": "Reason",
        "type": "string",
        "priority": 1,
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
    },
    {"name": "URL", "type": "string", "jsonPath": ".status.url"},
    {"name": "Backends", "type": "string", "jsonPath": ".status.backends"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def version_schema(version: CrdVersion) -> Schema:
    spec = model_schema(version.spec_model)
    spec["default"] = {}
    return {
        "type": "object",
        "description": "LabelingStack: Label Studio, its ML backends and Redis, wired together.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": model_schema(version.status_model),
        },
    }


def _version(version: CrdVersion) -> dict[str, Any]:
    out: dict[str, Any] = {"name": version.name, "served": version.served, "storage": version.storage}
    if version.deprecation_warning:
        out["deprecated"] = True
        out["deprecationWarning"] = version.deprecation_warning
    out["subresources"] = {"status": {}}
    out["additionalPrinterColumns"] = PRINTER_COLUMNS
    out["schema"] = {"openAPIV3Schema": version_schema(version)}
    return out


def storage_version(versions: tuple[CrdVersion, ...] = VERSIONS) -> CrdVersion:
    (stored,) = [v for v in versions if v.storage]
    return stored


def build_crd(versions: tuple[CrdVersion, ...] = VERSIONS) -> dict[str, Any]:
    storage_version(versions)  # exactly one
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
            # Schemas that differ only by additions need no conversion: the API server rewrites
            # apiVersion alone (strategy None, its default). Anything else needs a webhook first.
            "versions": [_version(v) for v in versions],
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
    if OPERATOR_DEFAULT in node and node.get("type") != "object":
        return f"the operator's (`{json.dumps(node[OPERATOR_DEFAULT])}`)"
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

    walk(model_schema(storage_version().spec_model, documented=True), "spec.")
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
