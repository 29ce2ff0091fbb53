"""Names shared by the CRD, the renderers, the handlers and RBAC."""

from __future__ import annotations

from labelstack_common import contract

GROUP = "labelstack.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "LabelingStack"
PLURAL = "labelingstacks"
SINGULAR = "labelingstack"
SHORT_NAMES = ("lstack",)
CATEGORIES = ("labelstack",)

# Server-side apply field manager, also the component name in Events.
FIELD_MANAGER = "labelstack-operator"

# On every child: the hash of what the operator last applied (see reconcile.apply).
CONFIG_HASH_ANNOTATION = f"{GROUP}/config-hash"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_BACKEND = f"{GROUP}/backend"

LABEL_STUDIO_PORT = 8080
BACKEND_PORT = contract.PORT  # the backend process listens here (labelstack_common.contract)
REDIS_PORT = 6379
