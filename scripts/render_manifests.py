"""Generate the shipped files that have a source elsewhere, or check that they have not drifted.

    python -m scripts.render_manifests           # write them
    python -m scripts.render_manifests --check   # exit 1 and name the files that differ

Sources and what is made from them:

* the spec model -> the CRD (``labelstack_operator.crd``), written to ``manifests/crd.yaml`` and
  the chart's ``crds/``, byte for byte the same, and the ``stack.spec`` part of the chart's
  ``values.schema.json`` (so a bad inline stack fails at ``helm install``);
* the chart -> ``manifests/operator.yaml`` (``helm template`` with the default values, plus the
  Namespace) and ``manifests/examples/`` (the LabelingStacks of the chart's ``ci/`` value sets
  that double as examples, with their leading comment).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from labelstack_operator.crd import build_crd, render_yaml
from scripts import helm

REPO = helm.REPO
CHART = helm.CHART
CRD_FILES = (REPO / "manifests" / "crd.yaml", CHART / "crds" / "labelingstacks.labelstack.dev.yaml")
VALUES_SCHEMA = CHART / "values.schema.json"
OPERATOR_MANIFEST = REPO / "manifests" / "operator.yaml"
EXAMPLES_DIR = REPO / "manifests" / "examples"
# example name -> the chart value set it is rendered from
EXAMPLES = {
    "cpu-minimal": "cpu-minimal-values.yaml",
    "gpu": "gpu-values.yaml",
    "fashion": "fashion-values.yaml",
    "scale-out": "scale-out-values.yaml",
}
# The release that manifests/operator.yaml is: objects are named labelstack-operator.
RELEASE = NAMESPACE = "labelstack"
SPEC_DEFINITION = "labelingStackSpec"
# Labels that say "Helm manages this", wrong once the manifests are applied with kubectl.
HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")

Schema = dict[str, Any]
Manifest = dict[str, Any]


class _Dumper(yaml.SafeDumper):
    """Readable YAML: multi-line strings (label configs) as blocks, no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_all(docs: list[Manifest]) -> str:
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, width=100, explicit_start=True)


def json_schema(node: Any) -> Any:
    """A structural CRD schema node as draft-07 JSON Schema, as strict as the spec model.

    Kubernetes' extensions go (int-or-string becomes a type union), and every object with
    properties refuses unknown keys: the model forbids them, while the API server would
    silently prune them.
    """
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: Schema = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-"):
            continue
        if key in ("properties",):
            out[key] = {name: json_schema(prop) for name, prop in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = json_schema(value)
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def spec_schema() -> Schema:
    crd = build_crd()
    (stored,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    spec = stored["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return json_schema(spec)  # type: ignore[no-any-return]


def render_values_schema(current: str) -> str:
    """The chart's values schema with its stack.spec definition replaced by the CRD's."""
    schema = json.loads(current)
    schema["definitions"][SPEC_DEFINITION] = spec_schema()
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def _without_helm_labels(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k not in HELM_ONLY_LABELS}


def plain(obj: Manifest) -> Manifest:
    """One rendered object, as it should be applied without Helm."""
    out = copy.deepcopy(obj)
    meta = out["metadata"]
    if "labels" in meta:
        meta["labels"] = _without_helm_labels(meta["labels"])
    template = out.get("spec", {}).get("template", {}).get("metadata")
    if template and "labels" in template:
        template["labels"] = _without_helm_labels(template["labels"])
    return out


def namespace_manifest(name: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/part-of": "labelstack",
                # The operator's pod meets the restricted Pod Security Standard.
                "pod-security.kubernetes.io/enforce": "restricted",
            },
        },
    }


def render_operator_manifest() -> str:
    objs = [plain(o) for o in helm.template(release=RELEASE, namespace=NAMESPACE)]
    header = (
        "# The LabelStack operator without Helm: Namespace, ServiceAccount, a Role for the namespace\n"
        "# labelstack (it watches stacks there only) and Deployment. Apply the CRD first:\n"
        "#   kubectl apply --server-side -f manifests/crd.yaml\n"
        "#   kubectl apply -f manifests/operator.yaml\n"
        "# Generated by `python -m scripts.render_manifests` from charts/labelstack (default values);\n"
        "# do not edit.\n"
    )
    return header + dump_all([namespace_manifest(NAMESPACE), *objs])


def leading_comment(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines) + "\n" if lines else ""


def in_schema_order(value: Any, schema: Schema) -> Any:
    """Keys in the order of the schema's properties (helm sorts them alphabetically): the spec
    reads as the reference documents it, Label Studio first, projects last."""
    if isinstance(value, list):
        return [in_schema_order(item, schema.get("items", {})) for item in value]
    if not isinstance(value, dict) or "properties" not in schema:
        return value
    props: Schema = schema["properties"]
    order = {name: i for i, name in enumerate(props)}
    keys = sorted(value, key=lambda k: (order.get(k, len(order)), k))
    return {k: in_schema_order(value[k], props.get(k, {})) for k in keys}


def example_stack(rendered: Manifest) -> Manifest:
    """The chart's LabelingStack as a user applies it: name only, in the namespace given to kubectl."""
    return {
        "apiVersion": rendered["apiVersion"],
        "kind": rendered["kind"],
        "metadata": {"name": rendered["metadata"]["name"]},
        "spec": in_schema_order(rendered["spec"], spec_schema()),
    }


def render_example(values_file: Path) -> str:
    (stack,) = helm.template([values_file], show_only=["templates/labelingstack.yaml"])
    source = values_file.relative_to(REPO)
    header = leading_comment(values_file.read_text())
    header += f"# Generated by `python -m scripts.render_manifests` from {source}; do not edit.\n"
    return header + dump_all([example_stack(stack)])


def outputs() -> dict[Path, str]:
    """Every generated file and the content it should have."""
    crd = render_yaml()
    out = dict.fromkeys(CRD_FILES, crd)
    out[VALUES_SCHEMA] = render_values_schema(VALUES_SCHEMA.read_text())
    out[OPERATOR_MANIFEST] = render_operator_manifest()
    for name, values in EXAMPLES.items():
        out[EXAMPLES_DIR / f"{name}.yaml"] = render_example(CHART / "ci" / values)
    return out


def drifted(files: Mapping[Path, str]) -> list[Path]:
    return [path for path, text in files.items() if not path.exists() or path.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.render_manifests", description=__doc__)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file differs")
    args = parser.parse_args(argv)
    try:
        files = outputs()
    except (helm.HelmError, helm.HelmNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale = drifted(files)
    if args.check:
        for path in stale:
            print(f"out of date: {path.relative_to(REPO)}", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path])
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
