"""Pure renderers: a validated stack in, Kubernetes manifests (plain dicts) out.

Each ``build_*`` function returns one object; :func:`build_children` returns all
of a stack's children, in apply order, with owner references set. Nothing here
talks to an API, so every object can be unit-tested and validated offline.
"""

from __future__ import annotations

import kopf

from labelstack_operator.render.backends import (
    build_backend_claim,
    build_backend_deployment,
    build_backend_service,
)
from labelstack_operator.render.backup import build_backup_claim, build_backup_cron_job
from labelstack_operator.render.context import Manifest, Stack
from labelstack_operator.render.egress import build_label_studio_egress_policy
from labelstack_operator.render.ingress import build_ingress
from labelstack_operator.render.labelstudio import (
    build_label_studio_claim,
    build_label_studio_deployment,
    build_label_studio_service,
)
from labelstack_operator.render.monitoring import build_service_monitor
from labelstack_operator.render.network import build_backends_network_policy, build_redis_network_policy
from labelstack_operator.render.postgres import (
    build_label_studio_disruption_budget,
    build_postgres_claim,
    build_postgres_network_policy,
    build_postgres_service,
    build_postgres_stateful_set,
)
from labelstack_operator.render.redis import build_redis_claim, build_redis_deployment, build_redis_service
from labelstack_operator.render.scaling import build_backend_autoscaler, build_backend_disruption_budget
from labelstack_operator.render.secret import build_admin_secret, build_redis_secret

__all__ = [
    "Manifest",
    "Stack",
    "build_admin_secret",
    "build_children",
    "build_redis_secret",
    "is_data",
    "own",
]

DATA_KINDS = frozenset({"PersistentVolumeClaim", "Secret"})


def is_data(obj: Manifest) -> bool:
    """PVCs and the generated Secrets hold data: they follow the retention policy, not the stack."""
    return obj["kind"] in DATA_KINDS


def own(stack: Stack, obj: Manifest) -> Manifest:
    """Make ``obj`` a child of the stack for the garbage collector, unless it is data to retain.

    This is the ownership part of ``kopf.adopt``; the stack's own labels are not copied,
    so that children's labels (and so their config hashes) depend on the spec only.
    """
    if not (is_data(obj) and stack.retain_data):
        kopf.append_owner_reference(obj, owner=stack.owner_body())  # type: ignore[arg-type]
    return obj


def build_children(stack: Stack) -> list[Manifest]:
    """Every child but the generated Secrets (created once, see reconcile), in dependency order."""
    spec = stack.spec
    objs: list[Manifest] = []
    if spec.label_studio.database.type == "embedded":
        objs += [
            build_postgres_claim(stack),
            build_postgres_service(stack),
            build_postgres_stateful_set(stack),
            build_postgres_network_policy(stack),
        ]
    objs += [
        build_label_studio_claim(stack),
        build_label_studio_service(stack),
        build_label_studio_deployment(stack),
    ]
    if spec.label_studio.replicas > 1:
        objs.append(build_label_studio_disruption_budget(stack))
    if spec.redis.enabled:
        if spec.redis.persistence.enabled:
            objs.append(build_redis_claim(stack))
        objs += [build_redis_service(stack), build_redis_deployment(stack), build_redis_network_policy(stack)]
    for backend in spec.backends:
        if backend.models_claim:
            objs.append(build_backend_claim(stack, backend))
        objs += [build_backend_service(stack, backend), build_backend_deployment(stack, backend)]
        if backend.autoscaling.enabled:
            objs.append(build_backend_autoscaler(stack, backend))
        if backend.disruption_budget_wanted:
            objs.append(build_backend_disruption_budget(stack, backend))
    if spec.backends:
        objs.append(build_backends_network_policy(stack))
        if spec.monitoring.service_monitor.enabled:
            objs.append(build_service_monitor(stack))
    if spec.backup.enabled:
        objs += [build_backup_claim(stack), build_backup_cron_job(stack)]
    if spec.label_studio.egress.enabled:
        objs.append(build_label_studio_egress_policy(stack))
    if spec.ingress.enabled:
        objs.append(build_ingress(stack))
    return [own(stack, obj) for obj in objs]
