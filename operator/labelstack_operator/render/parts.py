"""Building blocks shared by the workload renderers: security, env, probes, volumes, Services, PVCs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from labelstack_operator.render.context import Manifest, Stack, metadata
from labelstack_operator.spec import Backend, EnvVar, LocalObjectReference, ResourceRequirements

# Scratch space inside containers: an emptyDir per pod (the root filesystem is read-only).
TMP = "/tmp"  # noqa: S108
SHM = "/dev/shm"  # noqa: S108


def pod_security(uid: int, gid: int) -> Manifest:
    """Pod-level: never root, the runtime's default seccomp profile, volumes writable by the group."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": gid,
        "fsGroup": gid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security(*, read_only_root: bool = True) -> Manifest:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": read_only_root,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def env_value(name: str, value: str) -> Manifest:
    return {"name": name, "value": value}


def env_secret(name: str, secret: str, key: str) -> Manifest:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def merge_env(base: Sequence[Manifest], extra: Iterable[EnvVar]) -> list[Manifest]:
    """Our variables, then the user's; a user variable with the same name replaces ours in place.

    Names must stay unique: server-side apply merges ``env`` as a map keyed by name.
    """
    merged: dict[str, Manifest] = {item["name"]: item for item in base}
    for var in extra:
        merged[var.name] = var.model_dump(by_alias=True, exclude_none=True)
    return list(merged.values())


def resources(spec: ResourceRequirements, extra_limits: Mapping[str, str] | None = None) -> Manifest:
    out: Manifest = {}
    if spec.requests:
        out["requests"] = dict(spec.requests)
    limits = {**spec.limits, **(extra_limits or {})}
    if limits:
        out["limits"] = limits
    return out


def http_probe(path: str, *, period: int, timeout: int, failures: int) -> Manifest:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def secret_volume(name: str, secret: str, key: str) -> Manifest:
    """One key of a Secret as a read-only file, readable by the pod's group (fsGroup) only."""
    return {
        "name": name,
        "secret": {"secretName": secret, "items": [{"key": key, "path": key}], "defaultMode": 0o440},
    }


def empty_dir(name: str, *, medium: str | None = None, size: str | None = None) -> Manifest:
    spec: Manifest = {}
    if medium:
        spec["medium"] = medium
    if size:
        spec["sizeLimit"] = size
    return {"name": name, "emptyDir": spec}


def claim_volume(name: str, claim: str, *, read_only: bool = False) -> Manifest:
    source: Manifest = {"claimName": claim}
    if read_only:
        source["readOnly"] = True
    return {"name": name, "persistentVolumeClaim": source}


def mount(name: str, path: str, *, read_only: bool = False) -> Manifest:
    out: Manifest = {"name": name, "mountPath": path}
    if read_only:
        out["readOnly"] = True
    return out


def pull_secrets(refs: Sequence[LocalObjectReference]) -> list[Manifest]:
    return [{"name": ref.name} for ref in refs]


def pod_spec(
    stack: Stack,
    *,
    containers: list[Manifest],
    volumes: list[Manifest],
    security: Manifest,
    extra: Mapping[str, Any] | None = None,
) -> Manifest:
    spec: Manifest = {
        # None of our pods talks to the Kubernetes API.
        "automountServiceAccountToken": False,
        # Service links inject an env var per Service in the namespace: noise, and a leak of names.
        "enableServiceLinks": False,
        "securityContext": security,
        "containers": containers,
        "volumes": volumes,
    }
    if stack.spec.image_pull_secrets:
        spec["imagePullSecrets"] = pull_secrets(stack.spec.image_pull_secrets)
    spec.update(extra or {})
    return spec


def deployment(
    stack: Stack,
    name: str,
    component: str,
    *,
    replicas: int | None,
    pod: Manifest,
    recreate: bool,
    backend: Backend | None = None,
) -> Manifest:
    """``replicas=None`` leaves the count out: a HorizontalPodAutoscaler owns it, and a value
    here would make every apply reset it."""
    spec: Manifest = {"replicas": replicas} if replicas is not None else {}
    spec.update(
        {
            # A ReadWriteOnce volume cannot be attached to the old and the new pod at once.
            "strategy": {"type": "Recreate"} if recreate else {"type": "RollingUpdate"},
            "selector": {"matchLabels": stack.selector(component, backend)},
            "template": {"metadata": {"labels": stack.labels(component, backend)}, "spec": pod},
        }
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(stack, name, component, backend),
        "spec": spec,
    }


def service(
    stack: Stack, name: str, component: str, *, port: int, port_name: str, backend: Backend | None = None
) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(stack, name, component, backend),
        "spec": {
            "type": "ClusterIP",
            "selector": stack.selector(component, backend),
            "ports": [{"name": port_name, "port": port, "targetPort": port_name, "protocol": "TCP"}],
        },
    }


def claim(
    stack: Stack,
    name: str,
    component: str,
    *,
    size: str,
    storage_class: str | None,
    access_mode: str = "ReadWriteOnce",
    backend: Backend | None = None,
) -> Manifest:
    spec: Manifest = {"accessModes": [access_mode], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(stack, name, component, backend),
        "spec": spec,
    }
