"""An in-memory Kubernetes API for operator tests: kmock's emulator, made a little more faithful.

kmock (by kopf's author) keeps objects in memory and serves list/watch/get/
create/patch/delete. It is deliberately simple; the operator relies on a few
behaviours of a real API server that it leaves out, so :class:`Emulator` adds:

* ``metadata.uid``, ``creationTimestamp``, ``resourceVersion`` and
  ``generation`` (bumped when ``spec`` changes), as the API server sets them;
* server-side apply's upsert: an apply-patch to a missing object creates it;
* the status subresource: ``PATCH .../status`` changes only ``status``, a patch
  of the main resource never does;
* ``labelSelector`` on lists (equality terms, which is all the operator sends);
* watches that start at the client's ``resourceVersion`` instead of replaying
  every object as ADDED (kopf would act on a stale body and retry for a minute);
* the garbage collector: deleting an owner deletes the objects whose
  ``ownerReferences`` name its uid;
* fault injection that fails a request *before* it changes anything, as a
  real 409 or 500 would;
* no new finalizers on an object that is being deleted (422, as the API server
  answers): kmock let a late patch from kopf put its finalizer back, and the
  object then never went away.

:class:`KubeServer` runs it on a loopback port in a background thread, so tests
and the operator can be plain synchronous code.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import itertools
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp.web
import kmock
import requests
from kmock._internal import enums, rendering

from labelstack_operator import constants as c
from labelstack_operator.kube import KINDS
from tests.support import stacks
from tests.support.waiting import wait_for

T = TypeVar("T")

TEST_AGENT = "labelstack-tests"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _plural_key(kind: Any) -> str:
    return f"{kind.api_version}/{kind.plural}"


RESOURCES = {
    _plural_key(kind): kmock.ResourceInfo(
        kind=kind.kind,
        namespaced=True,
        verbs={"get", "list", "watch", "create", "patch", "update", "delete"},
        subresources={"status"} if kind.kind in ("Deployment", "StatefulSet", c.KIND) else set(),
        shortnames=set(c.SHORT_NAMES) if kind.kind == c.KIND else set(),
    )
    for kind in KINDS.values()
}
# kopf waits for these in its API discovery (the operator disables the scans that would use them).
RESOURCES["v1/namespaces"] = kmock.ResourceInfo(
    kind="Namespace", namespaced=False, verbs={"get", "list", "watch"}
)
RESOURCES["apiextensions.k8s.io/v1/customresourcedefinitions"] = kmock.ResourceInfo(
    kind="CustomResourceDefinition", namespaced=False, verbs={"get", "list", "watch"}
)


@dataclass
class Fault:
    method: str
    plural: str
    status: int
    reason: str
    remaining: int
    subresource: str | None = None


def _matches_selector(obj: dict[str, Any], selector: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif labels.get(term) is None:
            return False
    return True


class Emulator(kmock.KubernetesEmulator):  # type: ignore[misc]
    """kmock's KubernetesEmulator plus the API-server behaviours listed in the module docstring."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.faults: list[Fault] = []
        self.log: list[rendering.Request] = []  # every request, in order (kmock's own list is pruned)
        self._versions = itertools.count(1)
        self.version = 0  # the latest resourceVersion handed out
        for key, info in RESOURCES.items():
            self.resources[key] = info

    def _next_version(self) -> int:
        self.version = next(self._versions)
        return self.version

    def fail(
        self,
        method: str,
        plural: str,
        status: int,
        *,
        times: int = 1,
        reason: str = "",
        subresource: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status``, changing nothing."""
        default_reason = {409: "Conflict", 500: "InternalError", 503: "ServiceUnavailable"}.get(
            status, "Error"
        )
        self.faults.append(
            Fault(method.upper(), plural, status, reason or default_reason, times, subresource)
        )

    def _fault_for(self, request: rendering.Request) -> Fault | None:
        for fault in self.faults:
            if (
                fault.remaining > 0
                and request.method.value == fault.method
                and request.resource is not None
                and request.resource.plural == fault.plural
                and request.subresource == fault.subresource
            ):
                fault.remaining -= 1
                return fault
        return None

    def _stamp_new(self, obj: dict[str, Any]) -> None:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault(
            "creationTimestamp", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        meta["resourceVersion"] = str(self._next_version())
        meta["generation"] = 1

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        self.log.append(request)
        try:
            return await self._handle_logged(request)
        finally:
            # kmock matches every request against all the requests it has kept, which grows
            # quadratically over a benchmark's tens of thousands: keep only those in flight.
            for i in range(len(self._requests) - 1, -1, -1):
                if self._requests[i] is request:
                    del self._requests[i]
                    break

    async def _handle_logged(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        fault = self._fault_for(request)
        if fault is not None:
            raise kmock.KubernetesError(
                status=fault.status, reason=fault.reason, message="injected by the test"
            )
        if request.resource is None:
            return await super()._handle(request)
        if request.action == enums.action.UPDATE:
            key = (request.resource, request.namespace, request.name)
            # kmock's object store has no .get(); look before indexing.
            live = key in self._objects and not self._objects[key].deleted
            if live and _adds_finalizers(request.data, self._objects[key].raw):
                raise kmock.KubernetesError(
                    status=422,
                    reason="Invalid",
                    message="metadata.finalizers: Forbidden: no new finalizers can be added if the "
                    "object is being deleted",
                )
        if request.action == enums.action.CREATE and isinstance(request.data, dict):
            meta = request.data.get("metadata") or {}
            key = (request.resource, request.namespace or meta.get("namespace"), meta.get("name"))
            if key in self._objects and not self._objects[key].deleted:
                raise kmock.KubernetesError(
                    status=409, reason="AlreadyExists", message=f"{key[2]} already exists"
                )
            self._stamp_new(request.data)
        elif request.action == enums.action.UPDATE and isinstance(request.data, dict):
            key = (request.resource, request.namespace, request.name)
            exists = key in self._objects and not self._objects[key].deleted
            is_apply = request.headers.get("Content-Type", "").startswith("application/apply-patch")
            if is_apply and not exists:
                return await self._apply_create(request, key)
            if exists:
                self._prepare_patch(request, self._objects[key].raw)
        elif request.action == enums.action.UPDATE and isinstance(request.data, list):
            # A JSON patch (kopf's finalizers) is a change too: a new resourceVersion.
            version = str(self._next_version())
            request.data.append({"op": "add", "path": "/metadata/resourceVersion", "value": version})
        response = await super()._handle(request)
        if request.method.value in WRITE_METHODS:
            await self._collect_garbage()  # a delete, or a patch that released the last finalizer
        return response

    def _prepare_patch(self, request: rendering.Request, current: dict[str, Any]) -> None:
        patch = request.data
        if request.subresource == "status":
            for key in list(patch):
                if key != "status":
                    del patch[key]
        else:
            patch.pop("status", None)
        meta = patch.setdefault("metadata", {})
        meta["resourceVersion"] = str(self._next_version())
        if "spec" in patch:
            merged = copy.deepcopy(current.get("spec") or {})
            _merge(merged, patch["spec"])
            if merged != current.get("spec"):
                meta["generation"] = int((current.get("metadata") or {}).get("generation") or 1) + 1

    async def _apply_create(self, request: rendering.Request, key: Any) -> aiohttp.web.StreamResponse:
        obj = copy.deepcopy(request.data)
        obj.pop("status", None)
        self._stamp_new(obj)
        async with self._lock:
            if key in self._objects:
                self._objects[key].create(obj)
            else:
                self._objects[key] = obj
            raw = self._objects[key].raw
            await self._buses[request.resource].put({"type": "ADDED", "object": raw})
        return aiohttp.web.json_response(raw, status=201)

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        payload = await super()._serve_list(request)
        # Lists carry the collection's resourceVersion, so that a watch can start from there.
        payload["metadata"] = {"resourceVersion": str(self.version)}
        selector = request.params.get("labelSelector")
        if selector:
            payload["items"] = [o for o in payload["items"] if _matches_selector(o, selector)]
        return payload

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[rendering.Payload]:
        """kmock replays every object as ADDED when a watch starts, even one newer than the list the
        client just did, so kopf would act on a stale body. A real API server starts the watch at
        the client's ``resourceVersion``: older objects are not sent again."""
        since = request.params.get("resourceVersion")
        if not since or not since.isdigit():
            async for event in super()._serve_watch(request):
                yield event
            return
        yield b""
        async with self._lock:
            objs = [
                obj.raw
                for obj in self._KubernetesEmulator__get_objs(request, strict=False)  # kmock's own lookup
                if not obj.deleted
                and int((obj.raw.get("metadata") or {}).get("resourceVersion") or 0) > int(since)
            ]
        for raw in objs:
            yield {"type": "MODIFIED", "object": raw}
        async for event in self._buses[request.resource]:
            meta = event.get("object", {}).get("metadata", {})
            if self._KubernetesEmulator__check(
                request, request.resource, meta.get("namespace"), meta.get("name"), strict=False
            ):
                yield event

    async def _collect_garbage(self) -> None:
        """Delete every object whose owners are all gone (background propagation, repeated)."""
        while True:
            async with self._lock:
                alive = {
                    (obj.raw.get("metadata") or {}).get("uid")
                    for obj in self._objects.values()
                    if not obj.deleted
                }
                orphans = [
                    (resource, obj)
                    for (resource, _, _), obj in self._objects.items()
                    if not obj.deleted
                    and (refs := (obj.raw.get("metadata") or {}).get("ownerReferences"))
                    and all(ref.get("uid") not in alive for ref in refs)
                ]
                for resource, obj in orphans:
                    raw = obj.raw
                    obj.delete()
                    await self._buses[resource].put({"type": "DELETED", "object": raw})
            if not orphans:
                return


def _adds_finalizers(patch: Any, current: dict[str, Any]) -> bool:
    """Does a merge or JSON patch add a finalizer to ``current``, which is being deleted?"""
    meta = current.get("metadata") or {}
    if not meta.get("deletionTimestamp"):
        return False
    have = set(meta.get("finalizers") or [])
    wanted: list[Any] = []
    if isinstance(patch, dict):
        wanted = list((patch.get("metadata") or {}).get("finalizers") or [])
    elif isinstance(patch, list):
        for op in patch:
            path = str(op.get("path", "")) if isinstance(op, dict) else ""
            if op.get("op") in ("add", "replace") and path.startswith("/metadata/finalizers"):
                value = op.get("value")
                wanted.extend(value if isinstance(value, list) else [value])
    return bool(set(wanted) - have)


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


class KubeServer:
    """The emulator on a loopback port, served from a background event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="kube-emulator", daemon=True)
        self.emulator = Emulator()
        self._server: kmock.Server | None = None
        self.url = ""
        self.http = requests.Session()
        self.http.headers["User-Agent"] = TEST_AGENT

    def start(self) -> KubeServer:
        # One access-log line per request drowns the test output (and slows it down).
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
        self._thread.start()

        async def up() -> str:
            await self.emulator.__aenter__()
            self._server = kmock.Server(self.emulator)
            await self._server.__aenter__()
            return str(self._server.url).rstrip("/")

        self.url = self.run(up())
        return self

    def stop(self) -> None:
        async def down() -> None:
            if self._server is not None:
                await self._server.__aexit__(None, None, None)
            await self.emulator.__aexit__(None, None, None)

        try:
            self.run(down())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.http.close()

    def __enter__(self) -> KubeServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def run(self, coro: Any) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(30)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the emulator's loop (its state is not thread-safe)."""

        async def wrapper() -> T:
            return fn()

        return self.run(wrapper())  # type: ignore[no-any-return]

    # kubectl-like helpers for the tests (requests from them carry TEST_AGENT).
    def _url(
        self, api_version: str, plural: str, namespace: str, name: str | None = None, sub: str | None = None
    ) -> str:
        root = "api/v1" if api_version == "v1" else f"apis/{api_version}"
        url = f"{self.url}/{root}/namespaces/{namespace}/{plural}"
        if name:
            url += f"/{name}"
        if sub:
            url += f"/{sub}"
        return url

    def create(self, obj: dict[str, Any], plural: str) -> dict[str, Any]:
        resp = self.http.post(self._url(obj["apiVersion"], plural, obj["metadata"]["namespace"]), json=obj)
        resp.raise_for_status()
        return resp.json()  # type: ignore[no-any-return]

    def get(self, api_version: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        resp = self.http.get(self._url(api_version, plural, namespace, name))
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        return resp.json()  # type: ignore[no-any-return]

    def list(self, api_version: str, plural: str, namespace: str) -> list[dict[str, Any]]:
        resp = self.http.get(self._url(api_version, plural, namespace))
        if resp.status_code == 404:
            return []
        resp.raise_for_status()
        return resp.json()["items"]  # type: ignore[no-any-return]

    def patch(
        self,
        api_version: str,
        plural: str,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        sub: str | None = None,
    ) -> dict[str, Any]:
        resp = self.http.patch(
            self._url(api_version, plural, namespace, name, sub),
            json=patch,
            headers={"Content-Type": "application/merge-patch+json"},
        )
        resp.raise_for_status()
        return resp.json()  # type: ignore[no-any-return]

    def delete(self, api_version: str, plural: str, namespace: str, name: str) -> None:
        resp = self.http.delete(self._url(api_version, plural, namespace, name))
        resp.raise_for_status()

    # What the operator did.
    def requests(self) -> list[rendering.Request]:
        return self.call(lambda: list(self.emulator.log))

    def operator_requests(self, since: int = 0) -> list[rendering.Request]:
        return [r for r in self.requests()[since:] if r.headers.get("User-Agent") != TEST_AGENT]

    def operator_writes(self, since: int = 0) -> list[rendering.Request]:
        return [r for r in self.operator_requests(since) if r.method.value in WRITE_METHODS]


@dataclass(frozen=True)
class WriteRecord:
    method: str
    plural: str
    name: str | None
    subresource: str | None

    @classmethod
    def of(cls, request: rendering.Request) -> WriteRecord:
        plural = request.resource.plural if request.resource is not None else ""
        return cls(request.method.value, plural or "", request.name, request.subresource)


def describe(requests_: Iterator[rendering.Request] | list[rendering.Request]) -> list[WriteRecord]:
    return [WriteRecord.of(r) for r in requests_]


# What RBAC asks of each request, as the API server's authorizer sees it.
Permission = tuple[str, str, str]  # (API group, resource[/subresource], verb)
_VERBS = {"POST": "create", "PATCH": "patch", "PUT": "update"}


def _owner_finalizers(request: rendering.Request) -> set[Permission]:
    """OwnerReferencesPermissionEnforcement (OpenShift, and clusters that turn it on): an owner
    reference with blockOwnerDeletion needs ``update`` on the owner's ``finalizers``."""
    body = request.data if isinstance(request.data, dict) else {}
    refs = (body.get("metadata") or {}).get("ownerReferences") or []
    out: set[Permission] = set()
    for ref in refs:
        if ref.get("blockOwnerDeletion"):
            kind = next(k for k in KINDS.values() if k.kind == ref["kind"])
            out.add((kind.group, f"{kind.plural}/finalizers", "update"))
    return out


def permissions(requests_: Iterator[rendering.Request] | list[rendering.Request]) -> set[Permission]:
    """The (group, resource, verb) triples a Role must grant for these requests to pass."""
    out: set[Permission] = set()
    for r in requests_:
        if r.resource is None or not r.resource.plural:
            continue  # discovery (/api, /apis/<group>/<version>): every authenticated user may
        method = r.method.value
        if method == "GET":
            verb = "get" if r.name else ("watch" if r.params.get("watch") in ("true", "1") else "list")
        elif method == "DELETE":
            verb = "delete" if r.name else "deletecollection"
        else:
            verb = _VERBS[method]
            out |= _owner_finalizers(r)
        resource = r.resource.plural + (f"/{r.subresource}" if r.subresource else "")
        out.add((r.resource.group or "", resource, verb))
    return out


def granted(rules: list[dict[str, Any]], permission: Permission) -> bool:
    group, resource, verb = permission
    return any(
        group in rule.get("apiGroups", [])
        and resource in rule.get("resources", [])
        and verb in rule.get("verbs", [])
        for rule in rules
    )


def reconciles_only_watched(
    kube: KubeServer, name: str = "garments", timeout: float = 60.0
) -> dict[str, Any]:
    """The same stack in the namespaces ``watched`` and ``elsewhere``, for an operator that
    watches ``watched`` only: waits for that stack's children (Label Studio, Redis and the two
    backends; its PostgreSQL) and then its status, checks that ``elsewhere`` got nothing, and
    returns the status."""
    kube.create(stacks.stack_body(name, "watched"), c.PLURAL)
    kube.create(stacks.stack_body(name, "elsewhere"), c.PLURAL)
    wait_for(
        "the watched stack's Deployments and StatefulSet",
        lambda: (
            (
                len(kube.list("apps/v1", "deployments", "watched")),
                len(kube.list("apps/v1", "statefulsets", "watched")),
            )
            == (4, 1)
        ),
        timeout,
    )
    assert kube.list("apps/v1", "deployments", "elsewhere") == []
    assert kube.list("apps/v1", "statefulsets", "elsewhere") == []
    # The status is written after the last child, not with the Deployments.
    status: dict[str, Any] = wait_for(
        "the watched stack's status",
        lambda: (kube.get(c.API_VERSION, c.PLURAL, "watched", name) or {}).get("status"),
        timeout,
    )
    assert {x["type"] for x in status["conditions"]} == {
        "Ready",
        "LabelStudioReady",
        "BackendsReady",
        "Wired",
    }
    return status
