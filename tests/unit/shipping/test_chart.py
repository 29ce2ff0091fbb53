"""The Helm chart: lints, renders valid Kubernetes 1.30 with every value set, and does what values say."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from labelstack_operator.crd import build_crd
from labelstack_operator.rbac import operator_rules, secret_rules
from scripts import helm
from scripts.render_manifests import CHART
from tests.support.shipping import by_kind, one, render_notes, validate

VALUE_SETS = sorted((CHART / "ci").glob("*-values.yaml"))
APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]


def value_set(name: str) -> Path:
    return CHART / "ci" / f"{name}-values.yaml"


def normalised(rules: list[dict[str, Any]]) -> list[tuple[tuple[str, ...], ...]]:
    return sorted(
        tuple(tuple(sorted(rule[k])) for k in ("apiGroups", "resources", "verbs")) for rule in rules
    )


def operator_pod(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objs, "Deployment")["spec"]["template"]  # type: ignore[no-any-return]


def test_there_are_value_sets_for_what_users_deploy():
    assert {p.name for p in VALUE_SETS} >= {
        "cpu-minimal-values.yaml",
        "gpu-values.yaml",
        "fashion-values.yaml",
        "ingress-tls-values.yaml",
        "namespaced-values.yaml",
        "operator-options-values.yaml",
        "scale-out-values.yaml",
        "cluster-wide-values.yaml",
    }


@pytest.mark.parametrize("values", [None, *VALUE_SETS], ids=lambda p: p.name if p else "defaults")
def test_helm_lint_strict(values):
    out = helm.lint([values] if values else [])
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("values", [None, *VALUE_SETS], ids=lambda p: p.name if p else "defaults")
def test_every_rendered_object_validates(values):
    objs = helm.template([values] if values else [])
    kinds = by_kind(objs)
    assert {"ServiceAccount", "Deployment"} <= set(kinds)
    for obj in objs:
        validate(obj)


def test_defaults_watch_the_release_namespace_with_a_role_and_nothing_cluster_wide():
    objs = helm.template()
    assert sorted(by_kind(objs)) == ["Deployment", "Role", "RoleBinding", "ServiceAccount"]
    role, binding = one(objs, "Role"), one(objs, "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "labelstack"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "labelstack-operator", "namespace": "labelstack"}
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "labelstack-operator",
    }
    assert operator_pod(objs)["spec"]["containers"][0]["args"] == [
        "--log-level=INFO",
        "--namespace=labelstack",
    ]


def test_helm_installs_the_generated_crd_first():
    objs = helm.template(include_crds=True)
    assert objs[0]["kind"] == "CustomResourceDefinition"
    assert objs[0] == build_crd()
    validate(objs[0])


def test_rbac_is_exactly_what_the_operator_needs():
    assert normalised(one(helm.template(), "Role")["rules"]) == normalised(operator_rules())


def test_cluster_wide_reads_secrets_only_where_roles_allow_it():
    objs = helm.template(
        [{"watch": {"scope": "cluster"}, "stack": {"enabled": True, "namespace": "labelling"}}]
    )
    kinds = by_kind(objs)
    assert normalised(one(objs, "ClusterRole")["rules"]) == normalised(operator_rules(secrets=False))
    assert sorted(r["metadata"]["namespace"] for r in kinds["Role"]) == ["labelling", "labelstack"]
    for role in kinds["Role"]:
        assert normalised(role["rules"]) == normalised(secret_rules())
    assert operator_pod(objs)["spec"]["containers"][0]["args"] == ["--log-level=INFO", "--all-namespaces"]

    listed = helm.template([{"watch": {"scope": "cluster"}, "rbac": {"secretNamespaces": ["team-a"]}}])
    assert [r["metadata"]["namespace"] for r in by_kind(listed)["Role"]] == ["team-a"]

    broad = helm.template([{"watch": {"scope": "cluster"}, "rbac": {"clusterWideSecrets": True}}])
    assert "Role" not in by_kind(broad)
    assert normalised(one(broad, "ClusterRole")["rules"]) == normalised(operator_rules())


def test_namespaced_watch_has_a_role_per_namespace_and_no_cluster_access():
    objs = helm.template([value_set("namespaced")])
    kinds = by_kind(objs)
    assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds
    assert sorted(r["metadata"]["namespace"] for r in kinds["Role"]) == ["team-a", "team-b"]
    for role in kinds["Role"]:
        assert normalised(role["rules"]) == normalised(operator_rules())
    for binding in kinds["RoleBinding"]:
        assert binding["subjects"][0]["namespace"] == "labelstack"
    args = operator_pod(objs)["spec"]["containers"][0]["args"]
    assert args == ["--log-level=INFO", "--namespace=team-a", "--namespace=team-b"]
    assert one(objs, "LabelingStack")["metadata"]["namespace"] == "team-a"


def test_namespaced_without_a_list_watches_the_release_namespace():
    objs = helm.template([{"watch": {"scope": "namespaced"}}], namespace="labelling")
    assert [r["metadata"]["namespace"] for r in by_kind(objs)["Role"]] == ["labelling"]
    assert "--namespace=labelling" in operator_pod(objs)["spec"]["containers"][0]["args"]


def test_operator_pod_is_non_root_probed_and_sized():
    objs = helm.template()
    deployment = one(objs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    env = {e["name"]: e["value"] for e in container["env"]}
    # The probes hit kopf's liveness endpoint, so the operator must serve it on that port.
    assert env["LABELSTACK_LIVENESS"] == "http://0.0.0.0:8080/healthz"
    assert container["ports"] == [{"name": "health", "containerPort": 8080, "protocol": "TCP"}]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert container["args"] == ["--log-level=INFO", "--namespace=labelstack"]
    assert container["image"] == f"labelstack/operator:{APP_VERSION}"
    assert pod["serviceAccountName"] == "labelstack-operator"


def test_operator_options_reach_the_pod():
    objs = helm.template([value_set("operator-options")])
    template = operator_pod(objs)
    pod = template["spec"]
    (container,) = pod["containers"]
    assert container["image"] == (
        "registry.internal.example:5000/platform/labelstack-operator@sha256:" + "0123456789abcdef" * 4
    )
    assert container["imagePullPolicy"] == "Always"
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert container["args"][0] == "--log-level=DEBUG"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["LABELSTACK_RESYNC_SECONDS"] == "120" and env["LABELSTACK_WORKERS"] == "4"
    assert env["HTTPS_PROXY"] == "http://proxy.internal.example:3128"
    assert template["metadata"]["annotations"] == {"prometheus.io/scrape": "false"}
    assert template["metadata"]["labels"]["team"] == "ml-platform"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert "nodeAffinity" in pod["affinity"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    account = one(objs, "ServiceAccount")
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].startswith("labelstack@")
    budget = one(objs, "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1 and "maxUnavailable" not in budget["spec"]
    selector = budget["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()


def test_tag_defaults_to_app_version_and_can_be_set_with_a_registry():
    objs = helm.template([{"image": {"registry": "registry.example/", "tag": "0.2.0-rc1"}}])
    assert (
        operator_pod(objs)["spec"]["containers"][0]["image"]
        == "registry.example/labelstack/operator:0.2.0-rc1"
    )


def test_pdb_is_off_by_default_and_max_unavailable_when_enabled():
    assert "PodDisruptionBudget" not in by_kind(helm.template())
    budget = one(helm.template([{"podDisruptionBudget": {"enabled": True}}]), "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1 and "minAvailable" not in budget["spec"]


def test_inline_stack_is_the_values_spec_named_after_the_release():
    spec = yaml.safe_load(value_set("gpu").read_text())["stack"]["spec"]
    objs = helm.template([{"stack": {"enabled": True, "spec": spec}}], release="vision", namespace="ml")
    stack = one(objs, "LabelingStack")
    assert stack["metadata"]["name"] == "vision" and stack["metadata"]["namespace"] == "ml"
    assert stack["spec"] == spec
    assert stack["metadata"]["labels"]["app.kubernetes.io/instance"] == "vision"


def test_ingress_with_tls_reaches_the_stack_spec():
    stack = one(helm.template([value_set("ingress-tls")]), "LabelingStack")
    assert stack["spec"]["ingress"]["tlsSecretName"] == "label-tls"
    assert stack["metadata"]["annotations"] == {"labelstack.dev/rewire": "1"}


def test_an_empty_stack_spec_renders_and_validates():
    stack = one(helm.template([{"stack": {"enabled": True}}]), "LabelingStack")
    assert stack["spec"] == {}
    validate(stack)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"watch": {"scope": "everywhere"}},
            'watch.scope must be one of the following: "cluster", "namespaced"',
        ),
        ({"logLevel": "LOUD"}, "logLevel must be one of the following"),
        ({"image": {"digest": "latest"}}, "image.digest: Does not match pattern"),
        ({"imagePullSecrets": ["regcred"]}, "imagePullSecrets.0: Invalid type. Expected: object"),
        ({"resources": {"limits": {"memory": "lots"}}}, "resources.limits.memory: Does not match pattern"),
        ({"replicas": 2}, "Additional property replicas is not allowed"),
        ({"operator": {"workers": 0}}, "operator.workers: Must be greater than or equal to 1"),
        ({"podDisruptionBudget": {"minAvailable": "half"}}, "podDisruptionBudget.minAvailable"),
        ({"stack": {"name": "Garments"}}, "stack.name: Does not match pattern"),
        (
            {"stack": {"spec": {"labelStudo": {}}}},
            "stack.spec: Additional property labelStudo is not allowed",
        ),
        (
            {"stack": {"spec": {"backends": [{"name": "seg", "type": "yolo", "weights": {"demo": True}}]}}},
            'stack.spec.backends.0.type must be one of the following: "segmentation", "sam"',
        ),
        (
            {"stack": {"spec": {"backends": [{"name": "seg", "type": "sam"}]}}},
            "stack.spec.backends.0: weights is required",
        ),
        (
            {"stack": {"spec": {"labelStudio": {"storage": {"size": [1]}}}}},
            "stack.spec.labelStudio.storage.size: Invalid type",
        ),
    ],
)
def test_the_schema_refuses_bad_values_with_a_clear_message(values, message):
    with pytest.raises(helm.HelmError, match="values don't meet the specifications") as err:
        helm.template([values])
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("values", "release", "message"),
    [
        (
            {"stack": {"enabled": True}},
            "a-release-name-far-too-long-for-a-stack",
            "is longer than 30 characters (children are named <stack>-<part>); set stack.name",
        ),
        (
            {"stack": {"enabled": True}},
            "9lives",
            'stack.name "9lives" must be a DNS label',
        ),
        (
            {"watch": {"scope": "namespaced", "namespaces": ["team-a"]}, "stack": {"enabled": True}},
            "labelstack",
            'stack.namespace "labelstack" is not watched: add it to watch.namespaces',
        ),
    ],
)
def test_stacks_the_operator_could_not_run_fail_at_install(values, release, message):
    with pytest.raises(helm.HelmError) as err:
        helm.template([values], release=release)
    assert message in str(err.value)


def test_notes_tell_how_to_reach_label_studio_and_see_the_conditions():
    notes = render_notes([value_set("cpu-minimal")], namespace="labelling")
    assert "kubectl -n labelling wait --for=condition=Ready labelingstack/demo" in notes
    assert "kubectl -n labelling describe labelingstack demo" in notes
    assert "port-forward service/demo-label-studio 8080:8080" in notes
    assert "get secret demo-label-studio-admin -o jsonpath='{.data.password}'" in notes

    notes = render_notes([value_set("fashion")], namespace="fashion")
    assert "https://runway.labels.example.com/" in notes and "port-forward" not in notes

    notes = render_notes()
    assert "kubectl apply -n <namespace> -f" in notes and "watches LabelingStacks in labelstack." in notes
    wide = render_notes([{"watch": {"scope": "cluster"}}])
    assert "every namespace" in wide and "Secrets only in labelstack\n(rbac.secretNamespaces)" in wide
