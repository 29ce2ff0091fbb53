"""Defaults that follow the operator: resolved when a spec is parsed, never stored by the CRD.

A CRD default is written into each stack when the stack is created, so a new operator's
image or limits would never reach it. These values are therefore left out of the CRD
(``RESOLVED`` marks them for :mod:`crd`) and filled by the spec model at every reconcile. The
CRD keeps only the defaults that are the user's intent (sizes of volumes, switches, counts).

Stacks created under older CRDs carry what those CRDs stored; :data:`STORED_BY_OLDER_CRDS`
lists it, and :func:`without_stored_defaults` drops a stored value equal to one of them, so
that such stacks follow the operator too. (A user who wants to pin one of these values
writes a different one: an image digest, say.)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

# Marks a spec field whose default is the operator's: the CRD generator leaves it out.
RESOLVED: Final = "x-labelstack-resolved"

BACKEND_IMAGE = "labelstack/backend:0.1.0"
LABEL_STUDIO_IMAGE = "heartexlabs/label-studio:1.23.2"
REDIS_IMAGE = "redis:7-alpine"
POSTGRES_IMAGE = "postgres:15"
POSTGRES_RESOURCES: Final = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
LABEL_STUDIO_RESOURCES: Final = {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "3Gi"}}
# The limit leaves room for three SAM backends' default sharedCache (256Mi each) beside coordination.
REDIS_RESOURCES: Final = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "1Gi"}}
BACKEND_RESOURCES: Final = {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"memory": "6Gi"}}
SHM_SIZE = "1Gi"
SHARED_CACHE_SIZE = "256Mi"

# Field path ("*": every item of a list) -> the values CRDs of earlier releases stored there,
# written out: they must not follow the current defaults when those change.
STORED_BY_OLDER_CRDS: Final[dict[tuple[str, ...], tuple[Any, ...]]] = {
    ("labelStudio", "image"): ("heartexlabs/label-studio:1.23.2",),
    ("labelStudio", "resources"): (
        {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "3Gi"}},
    ),
    ("redis", "image"): ("redis:7-alpine",),
    ("redis", "resources"): (
        {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},  # before 0.1 scale-out
        {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "1Gi"}},
    ),
    ("redis", "sharedCache", "size"): ("256Mi",),
    ("backends", "*", "image"): ("labelstack/backend:0.1.0",),
    ("backends", "*", "resources"): (
        {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"memory": "6Gi"}},
    ),
    ("backends", "*", "shmSize"): ("1Gi",),
    # Newer than every released CRD: nothing stored.
    ("labelStudio", "database", "embedded", "image"): (),
    ("labelStudio", "database", "embedded", "resources"): (),
}


def _drop(node: Any, path: tuple[str, ...], stored: tuple[Any, ...]) -> None:
    head, rest = path[0], path[1:]
    children = node if head == "*" and isinstance(node, list) else [node]
    for child in children:
        if not isinstance(child, dict):
            continue
        if head == "*":
            _drop(child, rest, stored)
        elif not rest:
            if head in child and child[head] in stored:
                del child[head]
        elif head in child:
            _drop(child[head], rest, stored)


def without_stored_defaults(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a stored spec without the values older CRDs put there by default."""
    out = copy.deepcopy(dict(raw))
    for path, stored in STORED_BY_OLDER_CRDS.items():
        _drop(out, path, stored)
    return out
