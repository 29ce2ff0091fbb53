"""Helpers for the shipping tests: validate rendered objects, render the chart's NOTES."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from labelstack_operator import constants as c
from labelstack_operator.spec import parse_spec
from scripts import helm
from scripts.render_manifests import CHART, json_schema

KUBERNETES = "1.30.0"
# Every release the chart and the operator's objects must stay valid for.
KUBERNETES_VERSIONS = tuple(f"1.{minor}.0" for minor in range(27, 34))

# monitoring.coreos.com/v1 ServiceMonitor, the fields the operator renders, as the Prometheus
# operator's API reference types them (its CRD is not shipped here); unknown fields are refused.
_DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object"},  # ObjectMeta: checked by kubernetes-validate below
        "spec": {
            "type": "object",
            "required": ["selector"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchLabels": _STRING_MAP, "matchExpressions": {"type": "array"}},
                },
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string", "minLength": 1},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                            "interval": {"type": "string", "pattern": _DURATION},
                        },
                    },
                },
            },
        },
    },
}


def crd_schema(crd: Mapping[str, Any]) -> dict[str, Any]:
    """A CRD's own OpenAPI schema, as draft-07 JSON Schema."""
    (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    return json_schema(version["schema"]["openAPIV3Schema"])  # type: ignore[no-any-return]


def checked_in_crd_schema() -> dict[str, Any]:
    return crd_schema(yaml.safe_load((helm.REPO / "manifests" / "crd.yaml").read_text()))


def validate(obj: Mapping[str, Any]) -> None:
    """Kubernetes 1.27 to 1.33, strict; a LabelingStack against the CRD's schema and the spec model;
    a ServiceMonitor against SERVICE_MONITOR_SCHEMA, its metadata as Kubernetes' ObjectMeta."""
    if obj["kind"] == c.KIND:
        assert obj["apiVersion"] == c.API_VERSION
        jsonschema.validate(dict(obj), checked_in_crd_schema())
        parse_spec(obj.get("spec", {}))
        return
    if obj["kind"] == "ServiceMonitor":
        jsonschema.validate(dict(obj), SERVICE_MONITOR_SCHEMA)
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj["metadata"]}
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(dict(obj), version, strict=True)


def by_kind(objs: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for obj in objs:
        out.setdefault(obj["kind"], []).append(obj)
    return out


def one(objs: Iterable[Mapping[str, Any]], kind: str) -> Any:
    (obj,) = by_kind(objs)[kind]
    return obj


def render_notes(values: Iterable[Mapping[str, Any] | Path] = (), *, namespace: str = "labelstack") -> str:
    """NOTES.txt as helm install prints it. helm template leaves NOTES out and helm install
    needs a cluster, so a copy of the chart renders it through tpl into a ConfigMap."""
    with tempfile.TemporaryDirectory(prefix="labelstack-notes-") as tmp:
        chart = Path(tmp) / "labelstack"
        shutil.copytree(CHART, chart)
        shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes.txt")
        (chart / "templates" / "zz-notes.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
            'data: {notes: {{ tpl (.Files.Get "notes.txt") . | toJson }}}\n'
        )
        (cm,) = helm.template(values, namespace=namespace, show_only=["templates/zz-notes.yaml"], chart=chart)
        return str(cm["data"]["notes"])
