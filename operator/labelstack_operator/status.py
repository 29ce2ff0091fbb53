"""The LabelingStack status: conditions per Kubernetes conventions, computed from what was observed.

Conditions: ``LabelStudioReady``, ``BackendsReady``, ``Wired`` and their sum,
``Ready``. Each carries ``observedGeneration``, and ``lastTransitionTime`` moves
only when its status flips, so a resync that changes nothing writes nothing
(:func:`status_patch` returns ``None``).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

READY = "Ready"
LABEL_STUDIO_READY = "LabelStudioReady"
BACKENDS_READY = "BackendsReady"
WIRED = "Wired"
CONDITION_TYPES = (READY, LABEL_STUDIO_READY, BACKENDS_READY, WIRED)

ConditionStatus = Literal["True", "False", "Unknown"]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", use_attribute_docstrings=True
    )


class Condition(_Model):
    """One observation about the stack, as in metav1.Condition."""

    type: str
    status: ConditionStatus
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: str
    observed_generation: int | None = None


class ProjectRef(_Model):
    """A Label Studio project the operator wired."""

    title: str
    id: int


class LabelingStackStatus(_Model):
    """Observed state of a LabelingStack."""

    observed_generation: int | None = None
    url: str | None = None
    """Where users open Label Studio."""
    backends: str | None = None
    """Ready backends out of declared ones, like 2/2."""
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    projects: list[ProjectRef] = Field(default_factory=list)
    wiring_hash: str | None = None
    """Hash of the last wiring plan carried out in full (a new plan is wired again)."""
    service_monitor: str | None = None
    """Applied, or why the ServiceMonitor asked for was skipped."""
    last_backup: str | None = None
    """When the backup CronJob last succeeded (its status.lastSuccessfulTime)."""
    sources_synced_at: str | None = None
    """When the projects' GCS sources were last synced."""


@dataclass(frozen=True)
class Check:
    """A condition to set, before timestamps and generations are attached."""

    status: ConditionStatus
    reason: str
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "True"


@dataclass(frozen=True)
class Observed:
    """Everything the status is computed from."""

    generation: int | None
    blocker: Check | None = None
    """Why nothing else could be observed (InvalidSpec, AdminSecretInvalid, ApplyFailed)."""
    secrets: Check | None = None
    """Secrets the spec names that are missing (SecretMissing); None when all are there."""
    url: str | None = None
    label_studio: Check = field(default_factory=lambda: Check("Unknown", "Pending"))
    backends: Check = field(default_factory=lambda: Check("Unknown", "Pending"))
    wired: Check = field(default_factory=lambda: Check("Unknown", "Pending"))
    backends_ready: str | None = None
    projects: Sequence[ProjectRef] | None = None
    """None: wiring did not run this time; keep what the status says."""
    wiring_hash: str | None = None
    service_monitor: str | None = None
    last_backup: str | None = None
    sources_synced_at: str | None = None


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_status(raw: Mapping[str, Any] | None) -> LabelingStackStatus:
    """The stored status; anything unreadable counts as no status (it is rewritten)."""
    try:
        return LabelingStackStatus.model_validate(dict(raw or {}))
    except ValidationError:
        return LabelingStackStatus()


def ready_check(observed: Observed) -> Check:
    """Ready sums the others; its reason is the first thing in the way."""
    if observed.blocker is not None:
        return observed.blocker
    if observed.secrets is not None and not observed.secrets.ok:
        return observed.secrets
    for name, check in (
        (LABEL_STUDIO_READY, observed.label_studio),
        (BACKENDS_READY, observed.backends),
        (WIRED, observed.wired),
    ):
        if not check.ok:
            return Check(
                "False" if check.status == "False" else "Unknown", check.reason, f"{name}: {check.message}"
            )
    return Check("True", "StackReady", "Label Studio is up, backends are ready and wired")


def merge_condition(
    previous: Sequence[Condition], type_: str, check: Check, generation: int | None, timestamp: str
) -> Condition:
    old = next((c for c in previous if c.type == type_), None)
    # The transition time marks a status flip only; reason and message may change in between.
    since = old.last_transition_time if old is not None and old.status == check.status else timestamp
    return Condition(
        type=type_,
        status=check.status,
        reason=check.reason,
        message=check.message,
        last_transition_time=since,
        observed_generation=generation,
    )


def build_status(
    previous: LabelingStackStatus, observed: Observed, timestamp: str | None = None
) -> LabelingStackStatus:
    ts = timestamp or now()
    checks = {
        READY: ready_check(observed),
        LABEL_STUDIO_READY: observed.label_studio,
        BACKENDS_READY: observed.backends,
        WIRED: observed.wired,
    }
    if observed.blocker is not None:
        # Nothing else was looked at: keep what is known, but say what blocks progress.
        keep = {c.type: c for c in previous.conditions}
        conditions = [
            merge_condition(previous.conditions, t, checks[t], observed.generation, ts)
            if t == READY or t not in keep
            else keep[t]
            for t in CONDITION_TYPES
        ]
        return previous.model_copy(
            update={"observed_generation": observed.generation, "conditions": conditions}
        )
    conditions = [
        merge_condition(previous.conditions, t, checks[t], observed.generation, ts) for t in CONDITION_TYPES
    ]
    return LabelingStackStatus(
        observed_generation=observed.generation,
        url=observed.url,
        backends=observed.backends_ready,
        conditions=conditions,
        projects=previous.projects if observed.projects is None else list(observed.projects),
        wiring_hash=observed.wiring_hash,
        service_monitor=observed.service_monitor,
        last_backup=observed.last_backup or previous.last_backup,
        sources_synced_at=observed.sources_synced_at or previous.sources_synced_at,
    )


def status_patch(stored: Mapping[str, Any] | None, new: LabelingStackStatus) -> dict[str, Any] | None:
    """A merge patch for ``.status``, or ``None`` when nothing changed (no write on a no-op resync)."""
    body = new.model_dump(by_alias=True, exclude_none=True, mode="json")
    current = {k: v for k, v in dict(stored or {}).items() if k in body or k in _FIELDS}
    if current == body:
        return None
    # Fields we stopped reporting are removed explicitly (null in a merge patch).
    patch: dict[str, Any] = {k: None for k in current if k not in body}
    patch.update(body)
    return patch


_FIELDS = frozenset(LabelingStackStatus.model_json_schema(by_alias=True)["properties"])
