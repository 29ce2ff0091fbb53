"""Kubernetes Events about a LabelingStack, with specific reasons (best effort, never raising)."""

from __future__ import annotations

import datetime
import logging
import secrets
from dataclasses import dataclass

from labelstack_operator import constants as c
from labelstack_operator.kube import Kube, KubeError

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"

# Reasons, so that `kubectl get events --field-selector reason=...` finds them.
CREATED = "Created"
UPDATED = "Updated"
RESTORED = "Restored"
PRUNED = "Pruned"
SECRET_GENERATED = "SecretGenerated"  # noqa: S105 (an event reason, not a secret)
INVALID_SPEC = "InvalidSpec"
APPLY_FAILED = "ApplyFailed"
CHILD_CONFLICT = "ChildConflict"
NAME_COLLISION = "NameCollision"
SERVICE_MONITOR_SKIPPED = "ServiceMonitorSkipped"
SECRET_MISSING = "SecretMissing"  # noqa: S105 (an event reason, not a secret)
WIRED = "Wired"
WIRING_FAILED = "WiringFailed"


@dataclass(frozen=True)
class StackRef:
    name: str
    namespace: str
    uid: str


def build_event(ref: StackRef, type_: str, reason: str, message: str, timestamp: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{ref.name}.{secrets.token_hex(8)}", "namespace": ref.namespace},
        "involvedObject": {
            "apiVersion": c.API_VERSION,
            "kind": c.KIND,
            "name": ref.name,
            "namespace": ref.namespace,
            "uid": ref.uid,
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": c.FIELD_MANAGER},
        "reportingComponent": c.FIELD_MANAGER,
        "firstTimestamp": timestamp,
        "lastTimestamp": timestamp,
        "count": 1,
    }


def post(kube: Kube, ref: StackRef, type_: str, reason: str, message: str) -> None:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        kube.create(build_event(ref, type_, reason, message, now))
    except KubeError as err:
        log.warning("could not post event %s for %s/%s: %s", reason, ref.namespace, ref.name, err)
