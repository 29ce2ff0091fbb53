"""The exact RBAC rules the operator needs: the chart's Role/ClusterRole is checked against these.

Least privilege, derived from what the code calls (kube.py) and what kopf does:

* LabelingStacks: kopf lists and watches them and patches its annotations and
  finalizer (it never GETs one); the operator patches ``status``. Every child's owner
  reference sets ``blockOwnerDeletion``, which clusters that enforce owner-reference
  permissions (OpenShift, ``OwnerReferencesPermissionEnforcement``) allow only with
  ``update`` on ``labelingstacks/finalizers``.
* Children (Deployments, the embedded PostgreSQL's StatefulSet, Services, PVCs,
  Ingresses, NetworkPolicies, HorizontalPodAutoscalers, PodDisruptionBudgets): listed by label to see what
  exists, read by name before one is created (is the name someone else's?),
  created or patched by server-side apply (an apply that creates needs
  ``create``), deleted when pruned.
* Secrets: read (admin, GCS credentials) and created (the generated admin and
  Redis password); never listed, patched or deleted.
* Events: created.

Namespaced verbs only, no wildcards, no cluster-scoped kinds: kopf's namespace
and CRD scans are disabled (handlers.configure), so a Role per watched
namespace suffices (the chart's default). Cluster-wide, a ClusterRole carries
every rule but the Secrets one, which stays in a Role per namespace that holds
stacks (:func:`secret_rules`), so that the operator cannot read Secrets in
namespaces it has no business in.

``python -m labelstack_operator.rbac`` prints the rules as YAML.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import yaml

from labelstack_operator import constants as c
from labelstack_operator.children import CHILD_KINDS, OPTIONAL_KINDS
from labelstack_operator.kube import EVENT, SECRET, STACK, Kind

Rule = dict[str, list[str]]

CHILD_VERBS = ("create", "delete", "get", "list", "patch")


def _rule(kinds: Iterable[Kind], verbs: Iterable[str], subresource: str | None = None) -> Rule:
    kinds = list(kinds)
    resources = sorted(k.plural + (f"/{subresource}" if subresource else "") for k in kinds)
    return {
        "apiGroups": sorted({k.group for k in kinds}),
        "resources": resources,
        "verbs": sorted(verbs),
    }


def secret_rules() -> list[Rule]:
    """Read the admin, Redis and referenced Secrets; create the generated ones; patch the backends'
    account Secret with a rotated token."""
    return [_rule([SECRET], ("get", "create", "patch"))]


def operator_rules(*, secrets: bool = True) -> list[Rule]:
    """Every rule; without ``secrets``, the ones a cluster-wide ClusterRole carries."""
    by_group: dict[str, list[Kind]] = {}
    for kind in (*CHILD_KINDS, *OPTIONAL_KINDS):
        by_group.setdefault(kind.group, []).append(kind)
    return [
        _rule([STACK], ("list", "watch", "patch")),
        _rule([STACK], ("patch",), subresource="status"),
        _rule([STACK], ("update",), subresource="finalizers"),
        *(_rule(kinds, CHILD_VERBS) for _, kinds in sorted(by_group.items())),
        *(secret_rules() if secrets else []),
        _rule([EVENT], ("create",)),
    ]


def build_role(name: str, namespace: str | None = None) -> dict[str, Any]:
    """A Role (namespaced watch) or, without a namespace, a ClusterRole with the same rules."""
    meta: dict[str, Any] = {"name": name, "labels": {c.LABEL_PART_OF: "labelstack"}}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role" if namespace else "ClusterRole",
        "metadata": meta,
        "rules": operator_rules(),
    }


def main() -> None:
    sys.stdout.write(yaml.safe_dump(operator_rules(), sort_keys=False))


if __name__ == "__main__":
    main()
