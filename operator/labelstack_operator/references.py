"""Secrets a stack names but does not make: checked on every pass, reported when missing.

GCS credentials (a backend's model store, a project's source and target) and the ingress's TLS
Secret. A missing one holds nothing back (cert-manager, say, writes the TLS Secret only once the
Ingress exists); the stack says ``Ready=False/SecretMissing``, naming it, and the next resync
after it appears clears the condition. The users Secret and an external database's password Secret
are among them.
"""

from __future__ import annotations

from dataclasses import dataclass

from labelstack_operator.kube import SECRET, Kube
from labelstack_operator.spec import LabelingStackSpec

TLS_KEYS = ("tls.crt", "tls.key")


@dataclass(frozen=True)
class SecretRef:
    name: str
    keys: tuple[str, ...]
    field: str
    """Where the spec names it, for the message."""


def referenced_secrets(spec: LabelingStackSpec) -> list[SecretRef]:
    refs: list[SecretRef] = []
    for backend in spec.backends:
        store = backend.model_store
        if store is not None and store.credentials_secret is not None:
            secret = store.credentials_secret
            field = f"backends[{backend.name}].modelStorage.gcs.credentialsSecret"
            refs.append(SecretRef(secret.name, (secret.key,), field))
    for project in spec.projects:
        for side, storage in (("source", project.gcs.source), ("target", project.gcs.target)):
            if storage is not None and storage.credentials_secret is not None:
                secret = storage.credentials_secret
                field = f"projects[{project.title}].gcs.{side}.credentialsSecret"
                refs.append(SecretRef(secret.name, (secret.key,), field))
    external = spec.label_studio.database.external
    if spec.label_studio.database.type == "external" and external is not None:
        password = external.password_secret
        refs.append(SecretRef(password.name, (password.key,), "labelStudio.database.external.passwordSecret"))
    users = spec.label_studio.users_secret
    if users is not None:
        refs.append(SecretRef(users.name, (users.key,), "labelStudio.usersSecret"))
    ingress = spec.ingress
    if ingress.enabled and ingress.tls_secret_name:
        refs.append(SecretRef(ingress.tls_secret_name, TLS_KEYS, "ingress.tlsSecretName"))
    return refs


def missing_secrets(kube: Kube, namespace: str, refs: list[SecretRef]) -> list[str]:
    """One line per reference that cannot be used (each Secret read once)."""
    found: dict[str, set[str] | None] = {}
    problems: list[str] = []
    for ref in refs:
        if ref.name not in found:
            secret = kube.get(SECRET, namespace, ref.name)
            found[ref.name] = None if secret is None else set(secret.get("data") or {})
        keys = found[ref.name]
        if keys is None:
            problems.append(f"Secret {ref.name} ({ref.field}) does not exist")
        elif lacking := [k for k in ref.keys if k not in keys]:
            problems.append(f"Secret {ref.name} ({ref.field}) has no key {', '.join(map(repr, lacking))}")
    return problems
