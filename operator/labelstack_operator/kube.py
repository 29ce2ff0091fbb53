"""The one wrapper around the Kubernetes API for everything the operator does itself.

(kopf's own watching and annotation patches go through kopf.) It owns:

* the resource table: which kinds the operator touches and where they live;
* server-side apply with one field manager, forced, because the operator is
  the controller of its children;
* retries with exponential backoff on 409 conflicts, 429, 5xx, timeouts and
  connection errors (``Retry-After`` is honoured), and one re-login on 401;
* error classification: every failure is a :class:`KubeError` with the HTTP
  status, the API's reason and a message fit for a status condition.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import kopf
import requests

from labelstack_common.errors import LabelStackError
from labelstack_common.retry import RetryPolicy
from labelstack_operator import constants as c

log = logging.getLogger(__name__)

Obj = dict[str, Any]

RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Kind:
    """A namespaced resource kind the operator calls the API about."""

    api_version: str
    kind: str
    plural: str

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        root = "api/v1" if self.api_version == "v1" else f"apis/{self.api_version}"
        path = f"/{root}/namespaces/{quote(namespace)}/{self.plural}"
        if name is not None:
            path += f"/{quote(name)}"
        if subresource is not None:
            path += f"/{subresource}"
        return path


DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments")
STATEFUL_SET = Kind("apps/v1", "StatefulSet", "statefulsets")
SERVICE = Kind("v1", "Service", "services")
PVC = Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims")
SECRET = Kind("v1", "Secret", "secrets")
EVENT = Kind("v1", "Event", "events")
INGRESS = Kind("networking.k8s.io/v1", "Ingress", "ingresses")
NETWORK_POLICY = Kind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies")
HPA = Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers")
PDB = Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets")
CRON_JOB = Kind("batch/v1", "CronJob", "cronjobs")
# The Prometheus operator's; its CRD may not be installed (children.sync_children copes).
SERVICE_MONITOR = Kind("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors")
STACK = Kind(c.API_VERSION, c.KIND, c.PLURAL)

KINDS: dict[tuple[str, str], Kind] = {
    (k.api_version, k.kind): k
    for k in (
        DEPLOYMENT,
        STATEFUL_SET,
        SERVICE,
        PVC,
        SECRET,
        EVENT,
        INGRESS,
        NETWORK_POLICY,
        HPA,
        PDB,
        CRON_JOB,
        SERVICE_MONITOR,
        STACK,
    )
}


def kind_of(obj: Mapping[str, Any]) -> Kind:
    try:
        return KINDS[(obj["apiVersion"], obj["kind"])]
    except KeyError:
        raise ValueError(f"the operator does not manage {obj.get('apiVersion')}/{obj.get('kind')}") from None


class KubeError(LabelStackError):
    """A Kubernetes API call failed. ``status`` is 0 when the API server was not reached."""

    def __init__(self, what: str, status: int, reason: str, message: str) -> None:
        super().__init__(f"{what}: {status or 'no answer'} {reason}: {message}")
        self.what = what
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def retryable(self) -> bool:
        # A create that finds the object already there will find it there again.
        if self.status == 409 and self.reason == "AlreadyExists":
            return False
        return self.status == 0 or self.status in RETRY_STATUSES

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def permanent(self) -> bool:
        """Retrying will not help: the request itself is wrong (invalid, forbidden, immutable field)."""
        return not self.retryable and self.status not in (401, 404)


# API servers answer 409/5xx briefly (leader changes, etcd hiccups): retry fast and a few times.
KUBE_RETRY = RetryPolicy(attempts=5, base_delay=0.2, max_delay=5.0)


def _error_from_response(what: str, resp: requests.Response) -> KubeError:
    reason, message = resp.reason or "", resp.text[:500]
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status":
        reason = str(body.get("reason") or reason)
        message = str(body.get("message") or message)
    return KubeError(what, resp.status_code, reason, message)


def _retry_after(resp: requests.Response | None) -> float | None:
    if resp is None:
        return None
    try:
        return float(resp.headers.get("Retry-After", ""))
    except ValueError:
        return None


class _Session:
    """HTTP settings derived from kopf's ConnectionInfo (the same credentials kopf uses)."""

    def __init__(self, info: kopf.ConnectionInfo) -> None:
        self.server = info.server.rstrip("/")
        self.headers = info.as_http_headers()
        self.verify: bool | str = True
        self.cert: tuple[str, str] | str | None = None
        self._files: list[str] = []
        if info.insecure:
            self.verify = False
        elif info.ca_path:
            self.verify = os.fsdecode(info.ca_path)
        elif info.ca_data:
            self.verify = self._file(info.ca_data)
        cert = os.fsdecode(info.certificate_path) if info.certificate_path else None
        key = os.fsdecode(info.private_key_path) if info.private_key_path else None
        if info.certificate_data:
            cert = self._file(info.certificate_data)
        if info.private_key_data:
            key = self._file(info.private_key_data)
        if cert:
            self.cert = (cert, key) if key else cert
        self.local = threading.local()

    def _file(self, data: str | bytes) -> str:
        raw = data.encode() if isinstance(data, str) else data
        fd, path = tempfile.mkstemp(prefix="labelstack-kube-")
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        self._files.append(path)
        return path

    def http(self) -> requests.Session:
        # One requests.Session per thread: kopf runs sync handlers in a thread pool.
        session: requests.Session | None = getattr(self.local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update(self.headers)
            session.verify = self.verify
            session.cert = self.cert
            self.local.session = session
        return session


Connect = Callable[[], kopf.ConnectionInfo]


class Kube:
    """Synchronous Kubernetes API calls with retries, for the reconcile code."""

    def __init__(
        self,
        connect: Connect,
        *,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
        field_manager: str = c.FIELD_MANAGER,
    ) -> None:
        self._connect = connect
        self._session: _Session | None = None
        self._lock = threading.Lock()
        self.retry = retry or KUBE_RETRY
        self.timeout = timeout
        self.field_manager = field_manager

    def _http(self, relogin: bool = False) -> tuple[_Session, requests.Session]:
        with self._lock:
            if self._session is None or relogin:
                self._session = _Session(self._connect())
            session = self._session
        return session, session.http()

    def _call(
        self,
        what: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        retry_conflicts: bool = True,
    ) -> Any:
        delays = self.retry.delays()
        relogged = False
        data = None if body is None else json.dumps(body)
        while True:
            session, http = self._http()
            resp: requests.Response | None = None
            try:
                resp = http.request(
                    method,
                    session.server + path,
                    params=params,
                    data=data,
                    headers={"Content-Type": content_type} if data is not None else None,
                    timeout=self.timeout,
                )
                if resp.status_code == 401 and not relogged:
                    # Tokens rotate (bound service-account tokens): log in again, once.
                    relogged = True
                    self._http(relogin=True)
                    continue
                if resp.status_code >= 400:
                    raise _error_from_response(what, resp)
                return resp.json() if resp.content else None
            except requests.RequestException as exc:
                err = KubeError(what, 0, type(exc).__name__, str(exc))
            except KubeError as exc:
                err = exc
            retryable = err.retryable and (retry_conflicts or err.status != 409)
            delay = next(delays, None) if retryable else None
            if delay is None:
                raise err
            delay = max(delay, _retry_after(resp) or 0.0)
            log.warning("%s; retrying in %.1fs", err, delay)
            time.sleep(delay)

    # Reads.
    def get(self, kind: Kind, namespace: str, name: str) -> Obj | None:
        try:
            return self._call(f"get {kind.kind} {namespace}/{name}", "GET", kind.path(namespace, name))  # type: ignore[no-any-return]
        except KubeError as err:
            if err.not_found:
                return None
            raise

    def list(self, kind: Kind, namespace: str, label_selector: str) -> list[Obj]:
        items: list[Obj] = []
        params = {"labelSelector": label_selector, "limit": "500"}
        while True:
            page = self._call(
                f"list {kind.plural} in {namespace}", "GET", kind.path(namespace), params=params
            )
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            params = {**params, "continue": token}

    # Writes.
    def apply(self, obj: Obj) -> Obj:
        """Server-side apply: create or update ``obj`` to exactly what it says, as our field manager."""
        kind = kind_of(obj)
        meta = obj["metadata"]
        return self._call(  # type: ignore[no-any-return]
            f"apply {kind.kind} {meta['namespace']}/{meta['name']}",
            "PATCH",
            kind.path(meta["namespace"], meta["name"]),
            params={"fieldManager": self.field_manager, "force": "true"},
            body=obj,
            content_type="application/apply-patch+yaml",
        )

    def create(self, obj: Obj) -> Obj:
        """Create only; raises :class:`KubeError` with ``already_exists`` when it is there."""
        kind = kind_of(obj)
        meta = obj["metadata"]
        what = f"create {kind.kind} {meta['namespace']}/{meta.get('name') or meta.get('generateName')}"
        try:
            return self._call(  # type: ignore[no-any-return]
                what,
                "POST",
                kind.path(meta["namespace"]),
                params={"fieldManager": self.field_manager},
                body=obj,
                retry_conflicts=False,
            )
        except KubeError as err:
            if err.status == 409:  # the only conflict a create can meet
                raise KubeError(what, 409, "AlreadyExists", err.message) from err
            raise

    def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        """Delete in the background; False when it was already gone."""
        try:
            self._call(
                f"delete {kind.kind} {namespace}/{name}",
                "DELETE",
                kind.path(namespace, name),
                body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
            )
        except KubeError as err:
            if err.not_found:
                return False
            raise
        return True

    def patch_status(self, kind: Kind, namespace: str, name: str, patch: Mapping[str, Any]) -> Obj:
        return self._call(  # type: ignore[no-any-return]
            f"patch status of {kind.kind} {namespace}/{name}",
            "PATCH",
            kind.path(namespace, name, "status"),
            params={"fieldManager": self.field_manager},
            body={"status": dict(patch)},
            content_type="application/merge-patch+json",
        )
