"""Bring a stack's children in line with what was rendered, writing only what differs.

Every child carries the hash of the manifest the operator last applied
(``labelstack.dev/config-hash``). A child is applied (server-side apply, see
:mod:`kube`) when it is missing, when the hash differs (the spec or the
operator changed), or when a field the operator sets no longer holds its value
(edited by hand). Fields the API server or other controllers add are ignored.
So a resync of an unchanged stack reads, compares and writes nothing.

Nothing is adopted: before a child is applied, it must be missing or controlled
by this stack (its controller owner reference names the stack's uid). An object
of someone else's under a child's name is left untouched and reported as a
:class:`Conflict`. The one exception is retained data: a PVC that a deleted
stack of the same name left behind (no owner, this stack's labels) is its own.

Children that are no longer rendered (a backend removed from the spec, the
embedded PostgreSQL's Deployment of older operators) are deleted, before the
others are applied, when this stack owns them; data the retention policy keeps (PVCs
without an owner reference) is never deleted here. A child the API server
refuses for good (invalid, forbidden) does not hold back the others: they are
applied, then the refusals are raised together.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from labelstack_operator import constants as c
from labelstack_operator.kube import (
    CRON_JOB,
    DEPLOYMENT,
    HPA,
    INGRESS,
    NETWORK_POLICY,
    PDB,
    PVC,
    SERVICE,
    SERVICE_MONITOR,
    STATEFUL_SET,
    Kind,
    Kube,
    KubeError,
    kind_of,
)
from labelstack_operator.quantities import quantity
from labelstack_operator.render import Manifest, Stack, is_data

# The kinds build_children renders, listed once per reconcile to see what exists.
CHILD_KINDS: tuple[Kind, ...] = (
    PVC,
    SERVICE,
    DEPLOYMENT,
    STATEFUL_SET,
    HPA,
    PDB,
    NETWORK_POLICY,
    INGRESS,
    CRON_JOB,
)
# Kinds of other projects' CRDs, listed only for stacks that use them; a cluster may lack them.
OPTIONAL_KINDS: tuple[Kind, ...] = (SERVICE_MONITOR,)

Key = tuple[str, str]  # (kind, name)


def key_of(obj: Manifest) -> Key:
    return (obj["kind"], obj["metadata"]["name"])


def config_hash(obj: Manifest) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def with_hash(obj: Manifest) -> Manifest:
    """A copy of ``obj`` annotated with the hash of its content (the annotation excluded)."""
    out = copy.deepcopy(obj)
    annotations = out["metadata"].setdefault("annotations", {})
    annotations.pop(c.CONFIG_HASH_ANNOTATION, None)
    digest = config_hash(out)
    annotations[c.CONFIG_HASH_ANNOTATION] = digest
    return out


def _same_scalar(want: Any, have: Any) -> bool:
    if want == have:
        return True
    # The API server rewrites quantities in canonical form ("0.5" -> "500m", "1024Mi" -> "1Gi").
    a, b = quantity(want), quantity(have)
    return a is not None and a == b


def holds(want: Any, have: Any) -> bool:
    """Does the live value ``have`` still carry everything in ``want``? Extra live fields are fine."""
    if isinstance(want, dict):
        if have is None and not want:
            return True  # an empty object the server left out
        return isinstance(have, dict) and all(holds(v, have.get(k)) for k, v in want.items())
    if isinstance(want, list):
        return (
            isinstance(have, list)
            and len(want) == len(have)
            and all(holds(w, h) for w, h in zip(want, have, strict=True))
        )
    return _same_scalar(want, have)


def drift(desired: Manifest, live: Manifest | None) -> str | None:
    """Why ``live`` must be (re)applied: "missing", "changed", "edited" or None when it is fine."""
    if live is None:
        return "missing"
    live_hash = ((live.get("metadata") or {}).get("annotations") or {}).get(c.CONFIG_HASH_ANNOTATION)
    if live_hash != desired["metadata"]["annotations"][c.CONFIG_HASH_ANNOTATION]:
        return "changed"
    body = {k: v for k, v in desired.items() if k != "status"}
    return None if holds(body, live) else "edited"


def controller_of(obj: Manifest) -> Manifest | None:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return next((ref for ref in refs if ref.get("controller")), None)


def is_ours(obj: Manifest, stack: Stack) -> bool:
    """Controlled by this stack, or data it retained (no owner, this stack's labels)."""
    controller = controller_of(obj)
    if controller is not None:
        return controller.get("uid") == stack.uid
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return (
        is_data(obj)
        and labels.get(c.LABEL_INSTANCE) == stack.name
        and labels.get(c.LABEL_MANAGED_BY) == c.FIELD_MANAGER
    )


def owner_description(obj: Manifest) -> str:
    controller = controller_of(obj)
    if controller is not None:
        return f"{controller.get('kind')} {controller.get('name')} (uid {controller.get('uid')})"
    manager = ((obj.get("metadata") or {}).get("labels") or {}).get(c.LABEL_MANAGED_BY)
    return f"no controller, managed by {manager}" if manager else "no controller"


@dataclass(frozen=True)
class Conflict:
    """An object under a child's name that this stack does not control: left untouched."""

    key: Key
    owner: str

    def __str__(self) -> str:
        kind, name = self.key
        return f"{kind} {name} exists and belongs to {self.owner}"


@dataclass
class SyncResult:
    live: dict[Key, Manifest] = field(default_factory=dict)
    """Every child after the sync (as the API server returned it)."""
    created: list[Key] = field(default_factory=list)
    updated: list[Key] = field(default_factory=list)
    restored: list[Key] = field(default_factory=list)
    pruned: list[Key] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    uninstalled: list[Kind] = field(default_factory=list)
    """Optional kinds the API server does not serve (their CRD is not installed): skipped."""

    @property
    def writes(self) -> int:
        return len(self.created) + len(self.updated) + len(self.restored) + len(self.pruned)


class RefusedChildren(KubeError):
    """The API server refused some children for good; ``result`` holds what was done anyway."""

    def __init__(self, result: SyncResult, refused: Sequence[tuple[Key, KubeError]]) -> None:
        first = refused[0][1]
        message = "; ".join(f"{kind} {name}: {err.reason}: {err.message}" for (kind, name), err in refused)
        super().__init__("apply", first.status, first.reason, message)
        self.result = result


def list_children(
    kube: Kube, stack: Stack, kinds: Iterable[Kind] = CHILD_KINDS, uninstalled: list[Kind] | None = None
) -> dict[Key, Manifest]:
    """Every child of these kinds; an optional kind the server does not serve goes to ``uninstalled``."""
    live: dict[Key, Manifest] = {}
    for kind in kinds:
        try:
            found = kube.list(kind, stack.namespace, stack.child_selector())
        except KubeError as err:
            if not (err.not_found and kind in OPTIONAL_KINDS and uninstalled is not None):
                raise
            uninstalled.append(kind)
            continue
        for obj in found:
            obj.setdefault("kind", kind.kind)  # list items may omit kind and apiVersion
            obj.setdefault("apiVersion", kind.api_version)
            live[key_of(obj)] = obj
    return live


def sync_children(
    kube: Kube, stack: Stack, desired: Sequence[Manifest], *, seen_before: bool, optional: Iterable[Kind] = ()
) -> SyncResult:
    """Apply what drifted and prune what is no longer rendered.

    ``seen_before``: this generation was reconciled already, so a missing child
    was deleted by someone (restored) rather than never created. ``optional``: kinds of
    OPTIONAL_KINDS to look at too (rendered now, or maybe left from before).
    """
    result = SyncResult()
    result.live = list_children(kube, stack, (*CHILD_KINDS, *optional), result.uninstalled)
    skipped = {(k.api_version, k.kind) for k in result.uninstalled}
    wanted = [with_hash(obj) for obj in desired if (obj["apiVersion"], obj["kind"]) not in skipped]
    # Pruned first: a workload that changed kind (the embedded PostgreSQL's Deployment, now a
    # StatefulSet of the same name) lets go of its volume before its successor asks for it.
    wanted_keys = {key_of(obj) for obj in wanted}
    for key, obj in list(result.live.items()):
        if key not in wanted_keys and (controller_of(obj) or {}).get("uid") == stack.uid:
            kube.delete(kind_of(obj), stack.namespace, key[1])
            del result.live[key]
            result.pruned.append(key)
    refused: list[tuple[Key, KubeError]] = []
    for obj in wanted:
        key = key_of(obj)
        live = result.live.get(key)
        if live is None:
            # Not labelled as ours, but the name may be taken: look before creating (only here, so
            # a no-op resync reads nothing more).
            live = kube.get(kind_of(obj), stack.namespace, key[1])
        if live is not None and not is_ours(live, stack):
            result.live.pop(key, None)
            result.conflicts.append(Conflict(key, owner_description(live)))
            continue
        why = drift(obj, live)
        if why is None:
            continue
        try:
            result.live[key] = kube.apply(obj)
        except KubeError as err:
            if not err.permanent:
                raise  # the whole pass is retried
            # One refused object (a PVC that cannot grow, say) must not hold back the others.
            refused.append((key, err))
            continue
        if why == "changed":
            result.updated.append(key)
        elif why == "edited" or seen_before:
            result.restored.append(key)
        else:
            result.created.append(key)
    if refused:
        raise RefusedChildren(result, refused)
    return result


def describe(keys: Iterable[Key]) -> str:
    return ", ".join(f"{kind} {name}" for kind, name in keys)
