"""What every renderer shares: the stack being rendered, child names, labels and URLs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labelstack_operator import constants as c
from labelstack_operator.spec import Backend, LabelingStackSpec

Manifest = dict[str, Any]

LABEL_STUDIO = "label-studio"
REDIS = "redis"
BACKEND = "backend"
POSTGRES = "postgres"
BACKUP = "backup"

_APP_NAMES = {
    LABEL_STUDIO: "label-studio",
    REDIS: "redis",
    BACKEND: "labelstack-backend",
    POSTGRES: "postgresql",
    BACKUP: "labelstack-backup",
}


@dataclass(frozen=True)
class Stack:
    """One LabelingStack as the renderers see it: identity plus a validated spec."""

    name: str
    namespace: str
    uid: str
    spec: LabelingStackSpec
    backend_token_digest: str = ""
    """A digest of the backends' Label Studio token: a rotated token rolls the backends."""

    def owner_body(self) -> Manifest:
        """The minimal body kopf needs to build an owner reference to this stack."""
        return {
            "apiVersion": c.API_VERSION,
            "kind": c.KIND,
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid},
        }

    # Child names: "<stack>-<part>", all DNS-1035 labels (spec.check_stack_name bounds the length).
    @property
    def label_studio_name(self) -> str:
        return f"{self.name}-label-studio"

    @property
    def label_studio_claim(self) -> str:
        return f"{self.name}-label-studio-data"

    @property
    def admin_secret_name(self) -> str:
        return self.spec.label_studio.admin_secret.name or f"{self.name}-label-studio-admin"

    @property
    def postgres_name(self) -> str:
        """The embedded database's StatefulSet, Service, PVC ("-data") and password Secret."""
        return f"{self.name}-postgres"

    @property
    def backend_user_secret_name(self) -> str:
        """The backends' own Label Studio account and token (never the admin's)."""
        return f"{self.name}-label-studio-backends"

    @property
    def redis_name(self) -> str:
        return f"{self.name}-redis"

    @property
    def redis_claim(self) -> str:
        return f"{self.name}-redis-data"

    @property
    def redis_secret_name(self) -> str:
        return f"{self.name}-redis"

    def backend_name(self, backend: Backend) -> str:
        return f"{self.name}-{backend.name}"

    def backend_claim(self, backend: Backend) -> str:
        return f"{self.name}-{backend.name}-models"

    # URLs.
    def service_host(self, service: str) -> str:
        return f"{service}.{self.namespace}.svc"

    @property
    def label_studio_internal_url(self) -> str:
        return f"http://{self.service_host(self.label_studio_name)}:{c.LABEL_STUDIO_PORT}"

    @property
    def label_studio_public_url(self) -> str:
        """What users open: the ingress when there is one, else the in-cluster Service."""
        ingress = self.spec.ingress
        if ingress.enabled and ingress.host:
            scheme = "https" if ingress.tls_secret_name else "http"
            return f"{scheme}://{ingress.host}"
        return self.label_studio_internal_url

    def backend_url(self, backend: Backend) -> str:
        return f"http://{self.service_host(self.backend_name(backend))}:{c.BACKEND_PORT}"

    @property
    def redis_url(self) -> str:
        # No password here: it reaches the backends as REDIS_PASSWORD, from the Secret.
        return f"redis://{self.service_host(self.redis_name)}:{c.REDIS_PORT}/0"

    def redis_prefix(self, backend: Backend) -> str:
        """The backend's Redis key prefix: its replicas share it, other backends and stacks do not."""
        return f"labelstack:{self.name}:{backend.name}"

    # Labels.
    def selector(self, component: str, backend: Backend | None = None) -> dict[str, str]:
        """The immutable part: Deployment selectors and NetworkPolicy pod selectors."""
        labels = {
            c.LABEL_NAME: _APP_NAMES[component],
            c.LABEL_INSTANCE: self.name,
            c.LABEL_COMPONENT: component,
        }
        if backend is not None:
            labels[c.LABEL_BACKEND] = backend.name
        return labels

    def labels(self, component: str, backend: Backend | None = None) -> dict[str, str]:
        return {
            **self.selector(component, backend),
            c.LABEL_PART_OF: "labelstack",
            c.LABEL_MANAGED_BY: c.FIELD_MANAGER,
        }

    def child_selector(self) -> str:
        """A label selector matching every child of this stack (for listing and pruning)."""
        return f"{c.LABEL_INSTANCE}={self.name},{c.LABEL_MANAGED_BY}={c.FIELD_MANAGER}"

    @property
    def retain_data(self) -> bool:
        return self.spec.persistent_volume_claim_retention_policy.when_deleted == "Retain"


def metadata(stack: Stack, name: str, component: str, backend: Backend | None = None) -> Manifest:
    return {"name": name, "namespace": stack.namespace, "labels": stack.labels(component, backend)}
