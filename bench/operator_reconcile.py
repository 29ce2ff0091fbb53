"""Benchmark the operator against kmock: time to children, API writes per reconcile, memory.

Runs the real ``python -m labelstack_operator`` as a separate process (so its
memory is its own) against the in-memory API server of tests/support/kube.py,
and counts the requests the operator sends there.

    PYTHONPATH=$PWD/backend:$PWD/operator:$PWD .venvs/backend/bin/python bench/operator_reconcile.py

Phases: one stack; 100 stacks created back to back; a no-op resync of the 100
(every stack reconciled at least twice more); one backend's replicas changed in
one stack; an operator restart over the 100.
Deployments never become ready here, so wiring waits for Label Studio: the
figures cover rendering, applying and status, not Label Studio's API.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from labelstack_operator import constants as c
from labelstack_operator.render import Stack, build_children
from labelstack_operator.spec import parse_spec
from tests.support import stacks
from tests.support.kube import KubeServer

REPO = Path(__file__).resolve().parent.parent
CHILD_KINDS = {
    "deployments": "Deployment",
    "services": "Service",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "ingresses": "Ingress",
    "networkpolicies": "NetworkPolicy",
}


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, from /proc."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


# The operator image does not install the official kubernetes client, which kopf would import.
WITHOUT_CLIENT = (
    "import sys; sys.modules['kubernetes'] = None; from labelstack_operator.__main__ import main; main()"
)


def start_operator(kube: KubeServer, resync: float, log: Path, *, slim: bool) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LABELSTACK_KUBE_SERVER": kube.url,
        "LABELSTACK_RESYNC_SECONDS": str(resync),
        "LOG_LEVEL": "WARNING",
    }
    program = ["-c", WITHOUT_CLIENT] if slim else ["-m", "labelstack_operator"]
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, *program, "--all-namespaces", "--liveness", ""],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def expected(kube: KubeServer, namespace: str, name: str) -> set[tuple[str, str]]:
    body = kube.get(c.API_VERSION, c.PLURAL, namespace, name)
    assert body is not None
    stack = Stack(name, namespace, body["metadata"]["uid"], parse_spec(body["spec"]))
    return {(o["kind"], o["metadata"]["name"]) for o in build_children(stack)}


def present(kube: KubeServer, namespace: str) -> set[tuple[str, str]]:
    def collect() -> set[tuple[str, str]]:
        found = set()
        for (resource, ns, name), obj in kube.emulator.objects.items():
            if ns == namespace and resource.plural in CHILD_KINDS and not obj.deleted:
                found.add((CHILD_KINDS[resource.plural], name))
        return found

    return kube.call(collect)


def wait(what: str, probe: Any, timeout: float = 600.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(interval)


def writes_by_kind(kube: KubeServer, since: int, namespace: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for r in kube.operator_writes(since):
        if r.namespace != namespace:
            continue
        plural = r.resource.plural if r.resource else "?"
        counts[f"{r.method.value} {plural}{'/' + r.subresource if r.subresource else ''}"] += 1
    return counts


def passes(kube: KubeServer, since: int, namespace: str) -> Counter[str]:
    """Reconcile passes per stack: each pass lists its Deployments once, by the stack's label."""
    counts: Counter[str] = Counter()
    for r in kube.operator_requests(since):
        if (
            r.namespace == namespace
            and r.method.value == "GET"
            and r.resource
            and r.resource.plural == "deployments"
        ):
            selector = r.params.get("labelSelector", "")
            counts[selector.split(",")[0].split("=")[-1]] += 1
    return counts


def settle(kube: KubeServer, namespace: str, quiet: float) -> None:
    """Wait until the operator has written nothing to ``namespace`` for ``quiet`` seconds."""
    last = len(kube.requests())
    calm_since = time.monotonic()
    while time.monotonic() - calm_since < quiet:
        time.sleep(0.2)
        now = len(kube.requests())
        if writes_by_kind(kube, last, namespace):
            calm_since = time.monotonic()
        last = now


def one_stack(kube: KubeServer) -> dict[str, Any]:
    ns = "bench-one"
    mark = len(kube.requests())
    t0 = time.monotonic()
    kube.create(stacks.stack_body("garments", ns), c.PLURAL)
    want = expected(kube, ns, "garments")
    wait("the children of one stack", lambda: present(kube, ns) >= want)
    elapsed = time.monotonic() - t0
    settle(kube, ns, quiet=2.0)
    writes = writes_by_kind(kube, mark, ns)
    # Reads by name include the ownership check: each child is looked up once before it is created.
    reads = [r for r in kube.operator_requests(mark) if r.namespace == ns and r.method.value == "GET"]
    return {
        "children": len(want),
        "seconds_to_children": round(elapsed, 3),
        "writes": sum(writes.values()),
        "writes_by_kind": dict(sorted(writes.items())),
        "reads": len(reads),
        "reads_by_name": sum(1 for r in reads if r.name),
    }


def many_stacks(kube: KubeServer, count: int) -> dict[str, Any]:
    ns = "bench-many"
    names = [f"s{i:03d}" for i in range(count)]
    mark = len(kube.requests())
    t0 = time.monotonic()
    for name in names:
        kube.create(stacks.stack_body(name, ns), c.PLURAL)
    created = time.monotonic() - t0
    want = set().union(*(expected(kube, ns, n) for n in names))
    wait(f"the children of {count} stacks", lambda: present(kube, ns) >= want, interval=0.1)
    elapsed = time.monotonic() - t0
    settle(kube, ns, quiet=3.0)
    writes = writes_by_kind(kube, mark, ns)
    return {
        "stacks": count,
        "children": len(want),
        "seconds_to_create_requests": round(created, 3),
        "seconds_to_all_children": round(elapsed, 3),
        "writes": sum(writes.values()),
        "writes_per_stack": round(sum(writes.values()) / count, 2),
        "writes_by_kind": dict(sorted(writes.items())),
    }


def no_op_resync(kube: KubeServer, count: int, rounds: int) -> dict[str, Any]:
    ns = "bench-many"
    mark = len(kube.requests())
    t0 = time.monotonic()
    # Every stack's timer has fired `rounds` times since the mark, plus one for a pass under way.
    wait(
        "resync passes",
        lambda: len(p := passes(kube, mark, ns)) == count and min(p.values()) >= rounds + 1,
        interval=0.5,
    )
    counted = passes(kube, mark, ns)
    writes = writes_by_kind(kube, mark, ns)
    reads = sum(1 for r in kube.operator_requests(mark) if r.namespace == ns and r.method.value == "GET")
    return {
        "stacks": count,
        "seconds": round(time.monotonic() - t0, 1),
        "passes": sum(counted.values()),
        "writes": sum(writes.values()),
        "writes_by_kind": dict(sorted(writes.items())),
        "reads_per_pass": round(reads / max(1, sum(counted.values())), 2),
    }


def one_change(kube: KubeServer) -> dict[str, Any]:
    """A spec change on one of the many stacks: its writes, all kinds."""
    ns, name = "bench-many", "s000"
    before = kube.get("apps/v1", "deployments", ns, f"{name}-sam")
    assert before is not None
    mark = len(kube.requests())
    backends = stacks.spec(stacks.SMALL)["backends"]
    # SAM: the segmentation backend's ReadWriteOnce models volume allows one pod only.
    backends[1]["replicas"] = 2
    kube.patch(c.API_VERSION, c.PLURAL, ns, name, {"spec": {"backends": backends}})
    wait(
        "the changed Deployment",
        lambda: (
            (kube.get("apps/v1", "deployments", ns, f"{name}-sam") or {}).get("spec", {}).get("replicas") == 2
        ),
    )
    settle(kube, ns, quiet=3.0)
    writes = writes_by_kind(kube, mark, ns)
    return {"writes": sum(writes.values()), "writes_by_kind": dict(sorted(writes.items()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", type=int, default=100)
    parser.add_argument("--resync", type=float, default=10.0, help="the operator's LABELSTACK_RESYNC_SECONDS")
    parser.add_argument("--rounds", type=int, default=2, help="no-op resync passes per stack to observe")
    parser.add_argument(
        "--with-kubernetes-client",
        action="store_true",
        help="let kopf import the official client if installed (the operator image leaves it out)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "operator_reconcile.json")
    args = parser.parse_args()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    log = args.out.with_suffix(".log")
    log.write_bytes(b"")
    kube = KubeServer().start()
    slim = not args.with_kubernetes_client
    results: dict[str, Any] = {
        "machine": f"{os.cpu_count()} cores",
        "resync_seconds": args.resync,
        "kubernetes_client_loaded": not slim,
    }
    proc = start_operator(kube, args.resync, log, slim=slim)
    try:
        wait("the operator to start", lambda: any(r.resource for r in kube.operator_requests()), timeout=60)
        results["rss_mib_idle"] = round(rss_mib(proc.pid)[0], 1)
        results["one_stack"] = one_stack(kube)
        print(json.dumps(results["one_stack"]), flush=True)
        results["many_stacks"] = many_stacks(kube, args.stacks)
        print(json.dumps(results["many_stacks"]), flush=True)
        rss, peak = rss_mib(proc.pid)
        results["rss_mib_after_many"] = round(rss, 1)
        results["peak_rss_mib"] = round(peak, 1)
        results["no_op_resync"] = no_op_resync(kube, args.stacks, args.rounds)
        print(json.dumps(results["no_op_resync"]), flush=True)
        results["rss_mib_after_resync"] = round(rss_mib(proc.pid)[0], 1)
        results["one_change"] = one_change(kube)
        print(json.dumps(results["one_change"]), flush=True)
        stop(proc)

        # A restart: kopf resumes every stack; nothing changed, so nothing should be written.
        mark = len(kube.requests())
        proc = start_operator(kube, args.resync, log, slim=slim)
        wait(
            "every stack resumed", lambda: len(passes(kube, mark, "bench-many")) == args.stacks, interval=0.5
        )
        settle(kube, "bench-many", quiet=3.0)
        writes = writes_by_kind(kube, mark, "bench-many")
        results["restart"] = {"writes": sum(writes.values()), "writes_by_kind": dict(sorted(writes.items()))}
        print(json.dumps(results["restart"]), flush=True)
    finally:
        stop(proc)
        kube.stop()
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
