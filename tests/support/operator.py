"""Run the real kopf operator in-process against the emulator, and watch what it does."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from kopf.testing import KopfRunner

from labelstack_common.labelstudio import LabelStudioClient, LabelStudioError
from labelstack_common.wiring import ProjectPlan, ProjectResult, UserResult, WiringResult
from labelstack_operator import constants as c
from labelstack_operator import reconcile
from tests.support import stacks
from tests.support.kube import KubeServer
from tests.support.waiting import wait_for

CHILD_PLURALS = frozenset(
    {
        "deployments",
        "statefulsets",
        "services",
        "persistentvolumeclaims",
        "ingresses",
        "networkpolicies",
        "horizontalpodautoscalers",
        "poddisruptionbudgets",
    }
)


@dataclass
class FakeWiring:
    """Stands in for wiring.wire (tested against a real Label Studio elsewhere): records the plans."""

    calls: list[tuple[str, list[ProjectPlan]]] = field(default_factory=list)
    fail_with: LabelStudioError | None = None
    syncs: list[str] = field(default_factory=list)
    """Label Studio URLs whose sources were synced alone (the periodic sync)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, client: LabelStudioClient, plans: Sequence[ProjectPlan]) -> WiringResult:
        with self.lock:
            self.calls.append((client.url, list(plans)))
            if self.fail_with is not None:
                raise self.fail_with
        return WiringResult(
            projects=[
                ProjectResult(title=p.title, id=100 + i, changes=["created project"])
                for i, p in enumerate(plans)
            ]
        )

    def sync_sources(self, client: LabelStudioClient, plans: Sequence[ProjectPlan]) -> list[str]:
        with self.lock:
            self.syncs.append(client.url)
        return [p.gcs_source.title for p in plans if p.gcs_source is not None]

    def calls_for(self, namespace: str) -> list[list[ProjectPlan]]:
        with self.lock:
            return [plans for url, plans in self.calls if f".{namespace}.svc" in url]


@dataclass
class FakeAccounts:
    """Stands in for wiring.ensure_user (tested against a real Label Studio in test_team_access):
    an account per e-mail, a token per account, a new token when the one given is not current."""

    tokens: dict[str, str] = field(default_factory=dict)
    made: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(
        self,
        client: LabelStudioClient,
        email: str,
        password: str,
        *,
        want_token: bool = False,
        token: str | None = None,
    ) -> UserResult:
        with self.lock:
            created = email not in self.tokens
            if created:
                self.made.append(email)
                self.tokens[email] = f"{len(self.made):040d}"
            current = self.tokens[email]
            if want_token and token is not None and token != current:
                current = self.tokens[email] = f"r{len(self.made):039d}{len(token)}"[:40]
                return UserResult(email, created, current, rotated=True)
            return UserResult(email, created, current if want_token else None)


class PassCounter:
    """Counts finished reconcile passes per namespace (the handlers call reconcile.reconcile)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.real = reconcile.reconcile

    def __call__(self, ctx: reconcile.Context, body: Any, *args: Any) -> None:
        try:
            self.real(ctx, body, *args)
        finally:
            namespace = body["metadata"]["namespace"]
            with self.lock:
                self.counts[namespace] = self.counts.get(namespace, 0) + 1

    def get(self, namespace: str) -> int:
        with self.lock:
            return self.counts.get(namespace, 0)


PASSES = PassCounter()


@contextmanager
def running_operator(
    kube: KubeServer, wiring: FakeWiring, namespaces: Sequence[str] = (), accounts: FakeAccounts | None = None
) -> Iterator[KopfRunner]:
    """``kopf run`` of labelstack_operator.handlers against the emulator: in ``namespaces``, as the
    chart runs it by default, or in all of them."""
    watch = [f"--namespace={ns}" for ns in namespaces] or ["--all-namespaces"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABELSTACK_KUBE_SERVER", kube.url)
        mp.setattr("labelstack_common.wiring.wire", wiring)
        mp.setattr("labelstack_common.wiring.sync_sources", wiring.sync_sources)
        mp.setattr("labelstack_common.wiring.ensure_user", accounts or FakeAccounts())
        mp.setattr("labelstack_operator.reconcile.reconcile", PASSES)
        args = ["run", "--standalone", *watch, "-m", "labelstack_operator.handlers"]
        with KopfRunner(args, timeout=30) as runner:
            yield runner
    assert runner.exception is None, runner.output[-5000:]


class StackDriver:
    """kubectl-like steps on one stack, and what the operator did about them."""

    def __init__(self, kube: KubeServer, namespace: str, name: str = "garments") -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name

    # The stack.
    def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": c.API_VERSION,
            "kind": c.KIND,
            "metadata": {"name": self.name, "namespace": self.namespace},
        }
        return self.kube.create({**body, "spec": spec}, c.PLURAL)

    def get(self) -> dict[str, Any] | None:
        return self.kube.get(c.API_VERSION, c.PLURAL, self.namespace, self.name)

    def patch_spec(self, spec_patch: dict[str, Any]) -> None:
        self.kube.patch(c.API_VERSION, c.PLURAL, self.namespace, self.name, {"spec": spec_patch})

    def delete(self) -> None:
        self.kube.delete(c.API_VERSION, c.PLURAL, self.namespace, self.name)

    def condition(self, type_: str) -> dict[str, Any] | None:
        body = self.get() or {}
        return next((x for x in (body.get("status") or {}).get("conditions", []) if x["type"] == type_), None)

    def wait_condition(
        self, type_: str, status: str, reason: str | None = None, message: str | None = None
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            cond = self.condition(type_)
            ok = (
                cond is not None
                and cond["status"] == status
                and (reason is None or cond["reason"] == reason)
                and (message is None or cond["message"] == message)
            )
            return cond if ok else None

        return wait_for(f"{type_}={status} ({reason}: {message})", probe)

    # Children.
    def children(self) -> set[tuple[str, str]]:
        found = set()
        for api, plural, kind in (
            ("apps/v1", "deployments", "Deployment"),
            ("apps/v1", "statefulsets", "StatefulSet"),
            ("v1", "services", "Service"),
            ("v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
            ("v1", "secrets", "Secret"),
            ("networking.k8s.io/v1", "ingresses", "Ingress"),
            ("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy"),
            ("autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
            ("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget"),
        ):
            found |= {(kind, o["metadata"]["name"]) for o in self.kube.list(api, plural, self.namespace)}
        return found

    def deployment(self, name: str) -> dict[str, Any] | None:
        return self.kube.get("apps/v1", "deployments", self.namespace, name)

    def mark_ready(self, *names: str) -> None:
        """What the Deployment controller would report once the pods pass their readiness probes."""
        for name in names:
            dep = self.deployment(name)
            assert dep is not None, name
            replicas = dep["spec"].get("replicas", 1)
            status = {
                "replicas": replicas,
                "readyReplicas": replicas,
                "observedGeneration": dep["metadata"]["generation"],
            }
            self.kube.patch("apps/v1", "deployments", self.namespace, name, {"status": status}, sub="status")

    def events(self) -> list[dict[str, Any]]:
        return self.kube.list("v1", "events", self.namespace)

    def event_reasons(self) -> list[str]:
        return [e["reason"] for e in self.events()]

    # What the operator did.
    def mark(self) -> int:
        return len(self.kube.requests())

    def wait_passes(self, passes: int) -> int:
        """Wait for ``passes`` more reconcile passes to finish (after one that may be under way);
        return the request mark from before them."""
        start = PASSES.get(self.namespace) + 1
        wait_for("a pass under way to finish", lambda: PASSES.get(self.namespace) >= start)
        mark = self.mark()
        wait_for(f"{passes} reconcile passes", lambda: PASSES.get(self.namespace) >= start + passes)
        return mark

    def writes_since(self, mark: int) -> list[tuple[str, str, str | None, str | None]]:
        return [
            (r.method.value, r.resource.plural if r.resource else "", r.name, r.subresource)
            for r in self.kube.operator_writes(mark)
            if r.namespace == self.namespace
        ]

    def child_writes_since(self, mark: int) -> list[tuple[str, str, str | None, str | None]]:
        return [w for w in self.writes_since(mark) if w[1] in CHILD_PLURALS]


class Namespace:
    """One namespace of the emulator with one stack, "garments", for single-pass tests."""

    def __init__(self, server: KubeServer, name: str) -> None:
        self.server = server
        self.name = name

    def create_stack(self, spec: dict[str, Any]) -> None:
        self.server.create(stacks.stack_body("garments", self.name, spec), c.PLURAL)

    def stack(self) -> dict[str, Any]:
        body = self.server.get(c.API_VERSION, c.PLURAL, self.name, "garments")
        assert body is not None
        return body

    def get(self, api_version: str, plural: str, name: str) -> dict[str, Any]:
        obj = self.server.get(api_version, plural, self.name, name)
        assert obj is not None, (plural, name)
        return obj

    def condition(self, type_: str) -> dict[str, Any]:
        return next(x for x in self.stack()["status"]["conditions"] if x["type"] == type_)

    def names(self, api_version: str, plural: str) -> set[str]:
        return {o["metadata"]["name"] for o in self.server.list(api_version, plural, self.name)}

    def writes_since(self, mark: int) -> list[tuple[str, str, str | None]]:
        return [
            (r.method.value, r.resource.plural if r.resource else "", r.name)
            for r in self.server.operator_writes(mark)
            if r.namespace == self.name
        ]
