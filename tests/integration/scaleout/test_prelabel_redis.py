"""Bulk pre-labeling across replicas: one run per project through a real Redis."""

from __future__ import annotations

from dataclasses import replace

from labelstack_backend.coordination.link import RedisLink
from labelstack_backend.prelabel.progress import Progress, RunStatus
from labelstack_backend.prelabel.store import RedisProgressStore
from tests.support.redis_server import RedisServer


def store(server: RedisServer) -> RedisProgressStore:
    return RedisProgressStore(
        RedisLink.connect(server.url, password=server.password, prefix="t", timeout=0.5)
    )


def test_one_run_per_project_across_replicas_and_a_shared_progress(redis_server: RedisServer) -> None:
    a, b = store(redis_server), store(redis_server)
    lease = a.try_lock("7", "replica-a:1", ttl=30)
    assert lease is not None and b.try_lock("7", "replica-b:1", ttl=30) is None
    assert b.try_lock("8", "replica-b:1", ttl=30) is not None, "another project runs beside it"
    a.update("7", lambda p: replace(p, status=RunStatus.RUNNING, total=40, done=12))
    seen = b.update("7", lambda p: replace(p, pending=True))
    assert (seen.status, seen.done, seen.pending) == (RunStatus.RUNNING, 12, True)
    assert [p.project for p in a.all()] == ["7"] and a.get("9") == Progress("9")
    assert lease.renew()
    lease.release()
    assert b.try_lock("7", "replica-b:1", ttl=30) is not None
