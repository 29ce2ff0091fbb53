"""One reconcile pass over one LabelingStack; the kopf handlers only call :func:`reconcile`.

1. Validate the spec (the edge: a bad spec becomes ``Ready=False/InvalidSpec``), and refuse
   child names an older stack of the namespace renders too (``NameCollision``).
2. Read, or generate once, the admin Secret and the Redis password Secret.
3. Apply the rendered children that drifted; prune the ones no longer rendered. An object
   this stack does not control is never touched (``ChildConflict``).
4. Observe readiness from the Deployments.
5. Check the Secrets the spec names (``SecretMissing``), and wire Label Studio when it
   answers (projects, backends, storages).
6. Write ``status`` and post Events, only when something changed.

Errors: a retryable API failure (after the wrapper's own retries) raises
``kopf.TemporaryError`` so that kopf tries again later; anything that retrying
cannot fix (an invalid spec, a forbidden or invalid request, a broken Secret)
becomes a condition and an Event, and the pass ends normally: no crash loop.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from labelstack_common import wiring
from labelstack_common.labelstudio import LabelStudioClient, LabelStudioError, RetryPolicy
from labelstack_common.wiring import WiringResult, plan_hash
from labelstack_operator import admin as admin_secret
from labelstack_operator import children, collisions, database, events, references, users
from labelstack_operator.config import OperatorConfig
from labelstack_operator.events import StackRef
from labelstack_operator.kube import SERVICE_MONITOR, STACK, Kube, KubeError
from labelstack_operator.plans import SecretError, project_plans, referenced_backends
from labelstack_operator.render import Stack, build_children
from labelstack_operator.spec import SpecError, check_stack_name, parse_spec
from labelstack_operator.status import (
    READY,
    WIRED,
    Check,
    LabelingStackStatus,
    Observed,
    ProjectRef,
    build_status,
    now,
    parse_status,
    status_patch,
)

log = logging.getLogger(__name__)

# A user bumps this annotation to have the stack wired again (after restoring Label Studio's data, say).
REWIRE_ANNOTATION = "labelstack.dev/rewire"
RETRY_DELAY_S = 15


@dataclass
class Context:
    kube: Kube
    config: OperatorConfig


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(uid: str) -> threading.Lock:
    # The change handlers and the drift timer may fire together for one stack.
    with _locks_guard:
        return _locks.setdefault(uid, threading.Lock())


def forget(uid: str) -> None:
    with _locks_guard:
        _locks.pop(uid, None)


def deployment_readiness(obj: Mapping[str, Any] | None) -> tuple[int, int]:
    """(ready, wanted) pods of a Deployment or StatefulSet, none ready while a rollout is unobserved.

    ``obj`` is the live object: with autoscaling the rendered one has no ``spec.replicas``,
    but the API server defaults it and the HPA sets it, so the live one does.
    """
    if obj is None:
        return 0, 1
    replicas = (obj.get("spec") or {}).get("replicas")
    wanted = 1 if replicas is None else int(replicas)
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and observed < generation:
        return 0, wanted
    return min(int(status.get("readyReplicas") or 0), wanted), wanted


def observe_label_studio(stack: Stack, live: Mapping[children.Key, Any]) -> Check:
    ready, wanted = deployment_readiness(live.get(("Deployment", stack.label_studio_name)))
    if ready >= wanted:
        return Check("True", "Available", f"{ready}/{wanted} pods ready")
    return Check("False", "Starting", f"{ready}/{wanted} pods ready (the first start migrates the database)")


def observe_backends(stack: Stack, live: Mapping[children.Key, Any]) -> tuple[Check, set[str], str]:
    """(condition, names of ready backends, "ready/total")."""
    backends = stack.spec.backends
    if not backends:
        return Check("True", "NoBackends", "no backends declared"), set(), "0/0"
    ready: set[str] = set()
    waiting: list[str] = []
    for backend in backends:
        have, wanted = deployment_readiness(live.get(("Deployment", stack.backend_name(backend))))
        if wanted > 0 and have >= wanted:
            ready.add(backend.name)
        else:
            waiting.append(f"{backend.name} {have}/{wanted}" if wanted else f"{backend.name} scaled to zero")
    summary = f"{len(ready)}/{len(backends)}"
    if waiting:
        return (
            Check("False", "NotReady", f"waiting for {', '.join(waiting)} (loading models can take minutes)"),
            ready,
            summary,
        )
    return Check("True", "AllReady", f"{summary} backends ready"), ready, summary


@dataclass(frozen=True)
class WiringOutcome:
    check: Check
    wiring_hash: str | None
    projects: list[ProjectRef] | None = None
    result: WiringResult | None = None
    synced_at: str | None = None


def label_studio_client(ctx: Context, stack: Stack, token: str) -> LabelStudioClient:
    url = ctx.config.label_studio_url.format(
        service=stack.label_studio_name, namespace=stack.namespace, name=stack.name
    )
    # Few, short retries: the next resync tries again anyway.
    return LabelStudioClient(url, token, timeout=ctx.config.wiring_timeout, retry=RetryPolicy(attempts=2))


def wire_stack(
    ctx: Context,
    stack: Stack,
    *,
    token: str,
    previous: LabelingStackStatus,
    label_studio_ready: bool,
    ready_backends: set[str],
    rewire: str,
) -> WiringOutcome:
    if not stack.spec.projects:
        return WiringOutcome(Check("True", "NothingToWire", "no projects declared"), None, [])
    if not label_studio_ready:
        return WiringOutcome(
            Check("False", "WaitingForLabelStudio", "Label Studio is not ready yet"), previous.wiring_hash
        )
    waiting = sorted(referenced_backends(stack) - ready_backends)
    try:
        plans = project_plans(
            stack,
            lambda name, key: admin_secret.read_secret(ctx.kube, stack.namespace, name, key),
            skip_backends=waiting,
        )
    except SecretError as err:
        return WiringOutcome(Check("False", "SecretMissing", str(err)), None)
    digest = plan_hash(plans) + (f"-{rewire}" if rewire else "")
    done = Check(
        "False" if waiting else "True",
        "WaitingForBackends" if waiting else "Wired",
        f"waiting for backends: {', '.join(waiting)}" if waiting else f"{len(plans)} project(s) wired",
    )
    if digest == previous.wiring_hash:
        # This exact plan was carried out already; only the sources' periodic sync may be due.
        if not sync_due(stack, previous.sources_synced_at):
            return WiringOutcome(done, digest)
        try:
            with label_studio_client(ctx, stack, token).closing() as client:
                wiring.sync_sources(client, plans)
        except LabelStudioError as err:
            return WiringOutcome(Check("False", "WiringFailed", str(err)), None)
        return WiringOutcome(done, digest, synced_at=now())
    client = label_studio_client(ctx, stack, token)
    try:
        with client.closing():
            result = wiring.wire(client, plans)
    except LabelStudioError as err:
        return WiringOutcome(Check("False", "WiringFailed", str(err)), None)
    projects = [ProjectRef(title=p.title, id=p.id) for p in result.projects]
    return WiringOutcome(done, digest, projects, result, synced_at=now())


def sync_due(stack: Stack, last: str | None) -> bool:
    """A source asks for a sync every ``syncInterval``, and that long has passed since the last."""
    intervals = [p.gcs.source.sync_seconds for p in stack.spec.projects if p.gcs.source is not None]
    shortest = min((i for i in intervals if i > 0), default=0)
    if not shortest:
        return False
    if last is None:
        return True
    try:
        then = datetime.datetime.strptime(last, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        return True
    return (datetime.datetime.now(datetime.UTC) - then).total_seconds() >= shortest


def _post_sync_events(kube: Kube, ref: StackRef, sync: children.SyncResult) -> None:
    for keys, reason, verb in (
        (sync.created, events.CREATED, "created"),
        (sync.updated, events.UPDATED, "updated"),
        (sync.restored, events.RESTORED, "restored (deleted or edited by hand)"),
        (sync.pruned, events.PRUNED, "deleted (no longer in the spec)"),
    ):
        if keys:
            events.post(kube, ref, events.NORMAL, reason, f"{verb}: {children.describe(keys)}")


def _write_status(
    kube: Kube, ref: StackRef, stored: Mapping[str, Any] | None, new: LabelingStackStatus
) -> bool:
    """Patch ``.status`` when it changed; True when something was written."""
    patch = status_patch(stored, new)
    if patch is None:
        return False
    try:
        kube.patch_status(STACK, ref.namespace, ref.name, patch)
    except KubeError as err:
        if err.not_found:
            return False  # the stack is being deleted
        raise
    return True


def _blocked(ctx: Context, ref: StackRef, body: Mapping[str, Any], check: Check, event_reason: str) -> None:
    stored = body.get("status")
    generation = (body.get("metadata") or {}).get("generation")
    new = build_status(parse_status(stored), Observed(generation=generation, blocker=check))
    if _write_status(ctx.kube, ref, stored, new):
        # Said once when the condition changes, not on every resync.
        events.post(ctx.kube, ref, events.WARNING, event_reason, check.message)
        log.warning("%s/%s: %s: %s", ref.namespace, ref.name, check.reason, check.message)


def reconcile(ctx: Context, body: Mapping[str, Any], neighbours: Iterable[collisions.Claim] = ()) -> None:
    """One pass; ``neighbours``: the claims of the namespace's other stacks (kopf's index)."""
    meta = body.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return  # going away: the garbage collector takes the children; writing status would race kopf
    ref = StackRef(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])
    with _lock_for(ref.uid):
        _reconcile(ctx, ref, body, neighbours)


def _conflicts(ctx: Context, ref: StackRef, body: Mapping[str, Any], sync: children.SyncResult) -> bool:
    """Say so when objects under child names belong to someone else; True when there were any."""
    if not sync.conflicts:
        return False
    message = "; ".join(map(str, sync.conflicts)) + ": left untouched (delete or rename them)"
    _blocked(ctx, ref, body, Check("False", "ChildConflict", message), events.CHILD_CONFLICT)
    return True


def _reconcile(
    ctx: Context, ref: StackRef, body: Mapping[str, Any], neighbours: Iterable[collisions.Claim]
) -> None:
    meta = body.get("metadata") or {}
    generation = meta.get("generation")
    stored = body.get("status")
    previous = parse_status(stored)
    try:
        check_stack_name(ref.name)
        spec = parse_spec(body.get("spec"))
    except SpecError as err:
        _blocked(ctx, ref, body, Check("False", "InvalidSpec", str(err)), events.INVALID_SPEC)
        return
    stack = users.with_backend_token(
        ctx.kube, Stack(name=ref.name, namespace=ref.namespace, uid=ref.uid, spec=spec)
    )
    desired = build_children(stack)
    clash = collisions.collisions(
        collisions.claim(stack, str(meta.get("creationTimestamp") or ""), desired), neighbours
    )
    if clash:
        check = Check("False", "NameCollision", collisions.describe(clash))
        _blocked(ctx, ref, body, check, events.NAME_COLLISION)
        return
    try:
        admin = admin_secret.ensure_admin(ctx.kube, stack)
        generated = [stack.admin_secret_name] if admin.generated else []
        if admin_secret.ensure_redis_password(ctx.kube, stack):
            generated.append(stack.redis_secret_name)
        if database.ensure_postgres_password(ctx.kube, stack):
            generated.append(stack.postgres_name)
        seen_before = generation is not None and previous.observed_generation == generation
        # ServiceMonitors are looked at only where one is asked for, or was (to prune it).
        monitors = spec.monitoring.service_monitor.enabled or previous.service_monitor is not None
        sync = children.sync_children(
            ctx.kube, stack, desired, seen_before=seen_before, optional=[SERVICE_MONITOR] if monitors else []
        )
    except admin_secret.SecretInvalid as err:
        _blocked(ctx, ref, body, Check("False", err.reason, str(err)), events.APPLY_FAILED)
        return
    except children.RefusedChildren as err:
        _post_sync_events(ctx.kube, ref, err.result)
        if not _conflicts(ctx, ref, body, err.result):
            _blocked(ctx, ref, body, Check("False", "ApplyFailed", str(err)), events.APPLY_FAILED)
        return  # the rest is applied; the refused objects wait for a spec change or the next resync
    except KubeError as err:
        _blocked(ctx, ref, body, Check("False", "ApplyFailed", str(err)), events.APPLY_FAILED)
        if err.permanent:
            return  # an invalid or forbidden request stays so: wait for a spec change or the next resync
        raise kopf.TemporaryError(str(err), delay=RETRY_DELAY_S) from err
    for name in generated:
        events.post(ctx.kube, ref, events.NORMAL, events.SECRET_GENERATED, f"generated Secret {name}")
    _post_sync_events(ctx.kube, ref, sync)
    if not _conflicts(ctx, ref, body, sync):
        _observe(ctx, ref, body, stack, sync, admin.token)


MONITOR_APPLIED = "Applied"
MONITOR_SKIPPED = "Skipped: the monitoring.coreos.com/v1 ServiceMonitor CRD is not installed"


def service_monitor_state(stack: Stack, sync: children.SyncResult) -> str | None:
    if not stack.spec.monitoring.service_monitor.enabled:
        return None
    return MONITOR_SKIPPED if SERVICE_MONITOR in sync.uninstalled else MONITOR_APPLIED


def last_backup(stack: Stack, live: Mapping[children.Key, Any]) -> str | None:
    job = live.get(("CronJob", f"{stack.name}-backup")) if stack.spec.backup.enabled else None
    value = ((job or {}).get("status") or {}).get("lastSuccessfulTime")
    return str(value) if value else None


def _accounts(ctx: Context, ref: StackRef, stack: Stack, token: str) -> users.Accounts:
    with label_studio_client(ctx, stack, token).closing() as client:
        accounts = users.ensure_accounts(ctx.kube, stack, client)
    for name in accounts.generated:
        events.post(ctx.kube, ref, events.NORMAL, events.SECRET_GENERATED, f"generated Secret {name}")
    if accounts.rotated:
        message = (
            f"issued a new Label Studio token into {stack.backend_user_secret_name}; the old one is revoked"
        )
        events.post(ctx.kube, ref, events.NORMAL, events.SECRET_GENERATED, message)
    return accounts


def _observe(
    ctx: Context, ref: StackRef, body: Mapping[str, Any], stack: Stack, sync: children.SyncResult, token: str
) -> None:
    """Readiness, referenced Secrets and wiring, then the status and its Events."""
    meta = body.get("metadata") or {}
    stored = body.get("status")
    previous = parse_status(stored)
    missing = references.missing_secrets(ctx.kube, stack.namespace, references.referenced_secrets(stack.spec))
    secrets_check = Check("False", "SecretMissing", "; ".join(missing)) if missing else None
    ls_check = observe_label_studio(stack, sync.live)
    accounts = _accounts(ctx, ref, stack, token) if ls_check.ok else users.Accounts()
    backends_check, ready_backends, summary = observe_backends(stack, sync.live)
    wiring = wire_stack(
        ctx,
        stack,
        token=token,
        previous=previous,
        label_studio_ready=ls_check.ok,
        ready_backends=ready_backends,
        rewire=str((meta.get("annotations") or {}).get(REWIRE_ANNOTATION, "")),
    )
    observed = Observed(
        generation=meta.get("generation"),
        secrets=secrets_check,
        url=stack.label_studio_public_url,
        label_studio=ls_check,
        backends=backends_check,
        wired=accounts.failure if accounts.failure and wiring.check.ok else wiring.check,
        backends_ready=summary,
        projects=wiring.projects,
        wiring_hash=wiring.wiring_hash,
        service_monitor=service_monitor_state(stack, sync),
        last_backup=last_backup(stack, sync.live),
        sources_synced_at=wiring.synced_at,
    )
    new = build_status(previous, observed)
    changed = _write_status(ctx.kube, ref, stored, new)
    if wiring.result is not None and wiring.result.changed:
        events.post(ctx.kube, ref, events.NORMAL, events.WIRED, wiring.result.summary())
    elif changed and wiring.check.reason == "WiringFailed":
        events.post(ctx.kube, ref, events.WARNING, events.WIRING_FAILED, wiring.check.message)
    said = next(
        (c.message for c in previous.conditions if c.type == READY and c.reason == "SecretMissing"), None
    )
    if secrets_check is not None and secrets_check.message != said:  # once per change, not every resync
        events.post(ctx.kube, ref, events.WARNING, events.SECRET_MISSING, secrets_check.message)
    if new.service_monitor == MONITOR_SKIPPED != previous.service_monitor:
        log.warning("%s/%s: ServiceMonitor %s", ref.namespace, ref.name, MONITOR_SKIPPED)
        events.post(ctx.kube, ref, events.WARNING, events.SERVICE_MONITOR_SKIPPED, MONITOR_SKIPPED)
    if sync.writes or changed:
        wired = next(c for c in new.conditions if c.type == WIRED)
        log.info(
            "%s/%s reconciled: %d child writes, Ready=%s, Wired=%s (%s)",
            ref.namespace, ref.name, sync.writes, new.conditions[0].status, wired.status, wired.reason,
        )  # fmt: skip
