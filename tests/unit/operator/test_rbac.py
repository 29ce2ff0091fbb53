"""RBAC: least privilege, written down for the chart to be checked against."""

from __future__ import annotations

import kubernetes_validate

from labelstack_operator.children import CHILD_KINDS
from labelstack_operator.rbac import build_role, operator_rules, secret_rules


def verbs_for(group: str, resource: str) -> set[str]:
    out: set[str] = set()
    for rule in operator_rules():
        if group in rule["apiGroups"] and resource in rule["resources"]:
            out |= set(rule["verbs"])
    return out


def test_no_wildcards_and_no_cluster_scoped_kinds():
    for rule in operator_rules():
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key]
        assert not {"namespaces", "customresourcedefinitions", "nodes", "clusterroles"} & set(
            rule["resources"]
        )


def test_children_can_be_listed_read_applied_and_pruned_but_not_watched():
    # get: before creating a child, is its name taken by an object of someone else's?
    verbs = {"create", "delete", "get", "list", "patch"}
    for kind in CHILD_KINDS:
        assert verbs_for(kind.group, kind.plural) == verbs
    # Scale-out children too: a backend's autoscaler and disruption budget.
    assert verbs_for("autoscaling", "horizontalpodautoscalers") == verbs
    assert verbs_for("policy", "poddisruptionbudgets") == verbs


def test_secrets_are_read_created_and_patched_never_listed_or_deleted():
    # patch: a rotated token for the backends' Label Studio account.
    assert verbs_for("", "secrets") == {"get", "create", "patch"}
    assert verbs_for("", "events") == {"create"}


def test_the_stack_is_watched_and_patched_status_through_its_subresource():
    assert verbs_for("labelstack.dev", "labelingstacks") == {"list", "watch", "patch"}
    assert verbs_for("labelstack.dev", "labelingstacks/status") == {"patch"}
    # Children block their owner's deletion: enforced clusters ask for update on finalizers.
    assert verbs_for("labelstack.dev", "labelingstacks/finalizers") == {"update"}


def test_the_cluster_wide_rules_leave_secrets_to_namespaced_roles():
    wide = operator_rules(secrets=False)
    assert all("secrets" not in rule["resources"] for rule in wide)
    assert sorted(map(str, wide + secret_rules())) == sorted(map(str, operator_rules()))


def test_roles_built_from_the_rules_are_valid():
    kubernetes_validate.validate(build_role("labelstack-operator", "labelling"), "1.30.0", strict=True)
    kubernetes_validate.validate(build_role("labelstack-operator"), "1.30.0", strict=True)
