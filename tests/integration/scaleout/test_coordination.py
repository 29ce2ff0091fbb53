"""The coordination parts against a real Redis: job state, the training lock, the shared
blob cache, version announcements, and what each does when Redis goes away and comes back."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from labelstack_backend.coordination.blobcache import RedisBlobCache
from labelstack_backend.coordination.link import RedisLink, RedisUnavailable
from labelstack_backend.coordination.versions import Announcement, VersionBus
from labelstack_backend.sam.embeddings import Embedding
from labelstack_backend.sam.shared import SharedEmbeddings
from labelstack_backend.training.job import Heartbeat
from labelstack_backend.training.manager import TrainDecision, TrainingManager, TrainingRefused
from labelstack_backend.training.redis_store import RedisJobStore
from labelstack_backend.training.state import JobStatus
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def link_to(server: RedisServer, prefix: str = "test") -> RedisLink:
    return RedisLink.connect(server.url, password=server.password, prefix=prefix, timeout=0.5)


class Child:
    pid = 1
    returncode = 0

    def wait(self) -> int:
        return 0

    def poll(self) -> int:
        return 0


def test_two_replicas_asking_at_the_same_instant_start_one_training(redis_server: RedisServer) -> None:
    spawned: list[str] = []
    managers = [
        TrainingManager(RedisJobStore(link_to(redis_server)), spawn=lambda p, e: spawned.append(p) or Child())
        for _ in range(2)
    ]
    for round_ in range(15):
        project = f"p{round_}"
        decisions = ask_at_once(managers, project)
        assert sorted(d.started for d in decisions) == [False, True], round_
        assert spawned.count(project) == 1
        # Both see the same job, queued, with nothing owed (the queued job covers both requests).
        state = managers[1].store.get(project)
        assert state.status is JobStatus.QUEUED and not state.pending


def ask_at_once(managers: list[TrainingManager], project: str) -> list[TrainDecision]:
    barrier = threading.Barrier(len(managers))
    decisions: list[TrainDecision] = []

    def ask(mgr: TrainingManager) -> None:
        barrier.wait()
        decisions.append(mgr.request(project, "START_TRAINING"))

    threads = [threading.Thread(target=ask, args=(m,)) for m in managers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return decisions


def test_the_lock_is_exclusive_expires_and_only_its_holder_releases_it(redis_server: RedisServer) -> None:
    a, b = RedisJobStore(link_to(redis_server)), RedisJobStore(link_to(redis_server))
    lease = a.try_lock("5", "pod-a:1", ttl=0.6)
    assert lease is not None and a.lock_holder("5") == "pod-a:1"
    assert b.try_lock("5", "pod-b:1", ttl=0.6) is None
    assert b.try_lock("6", "pod-b:1", ttl=0.6) is not None, "locks are per project"
    assert lease.renew()
    # A killed holder renews no more: the lock goes by itself, and the next job takes it.
    wait_for("B to take the expired lock", lambda: b.try_lock("5", "pod-b:2", ttl=30) is not None, 3)
    assert a.lock_holder("5") == "pod-b:2"
    assert not lease.renew(), "the old holder learns that it lost the lock"
    lease.release()
    assert a.lock_holder("5") == "pod-b:2", "releasing a lost lock leaves the new holder's alone"


def test_a_holder_takes_back_its_lock_and_state_after_redis_restarted_empty(
    redis_server: RedisServer,
) -> None:
    store = RedisJobStore(link_to(redis_server))
    lease = store.try_lock("3", "pod-a:1", ttl=30)
    assert lease is not None
    store.update("3", lambda s: replace(s, status=JobStatus.RUNNING, epoch=2))
    redis_server.client().flushall()  # what a restart without persistence leaves
    beat = Heartbeat(store, "3", JobStatus.RUNNING, lease)
    beat.beat()
    assert store.lock_holder("3") == "pod-a:1"
    assert store.get("3").status is JobStatus.RUNNING and not beat.lost.is_set()


def test_training_is_refused_with_a_reason_while_redis_is_down(redis_server: RedisServer) -> None:
    spawned: list[str] = []
    mgr = TrainingManager(
        RedisJobStore(link_to(redis_server)), spawn=lambda p, e: spawned.append(p) or Child()
    )
    redis_server.stop()
    with pytest.raises(TrainingRefused) as refused:
        mgr.request("1", "START_TRAINING")
    assert refused.value.status == 503
    assert "Redis" in refused.value.reason and "twice" in refused.value.reason
    assert spawned == []
    redis_server.start()
    wait_for("coordination to resume once Redis is back", lambda: _started(mgr), 10)
    assert spawned == ["1"]


def _started(mgr: TrainingManager) -> bool:
    try:
        return mgr.request("1", "START_TRAINING").started
    except TrainingRefused:
        return False


def test_the_link_fails_fast_while_down_and_notices_the_return(redis_server: RedisServer) -> None:
    link = link_to(redis_server)
    link.monitor_interval = 0.2
    back = threading.Event()
    link.on_reconnect(back.set)
    link.start_monitor()
    assert link.ping() and link.status().state == "up"
    redis_server.stop()
    with pytest.raises(RedisUnavailable):
        link.run("get", lambda r: r.get("x"))
    status = link.status()
    assert status.state == "down" and status.degraded and status.reason
    started = time.perf_counter()
    with pytest.raises(RedisUnavailable):
        link.run("get", lambda r: r.get("x"))
    assert time.perf_counter() - started < 0.05, "no connect attempt per call while down"
    redis_server.start()
    assert back.wait(10), "the monitor notices the return by itself"
    assert link.status().state == "up"
    assert link.run("get", lambda r: r.get("x")) is None
    link.close()


def test_blob_cache_keeps_its_byte_bound_least_recently_used_first(redis_server: RedisServer) -> None:
    cache = RedisBlobCache(link_to(redis_server), "blobs", max_bytes=3000, ttl=60)
    for name in "abc":
        assert cache.put(name, name.encode() * 1000)
    assert cache.get("a") == b"a" * 1000  # a is now the most recently used
    assert cache.put("d", b"d" * 1000)
    assert cache.get("b") is None, "the least recently used went"
    assert {k for k in "acd" if cache.get(k) is not None} == set("acd")
    stats = cache.stats()
    assert stats.entries == 3 and stats.bytes == 3000 <= stats.max_bytes
    assert cache.put("a", b"A" * 500)  # a replaced value is counted once
    assert cache.stats().bytes == 2500
    assert not cache.put("huge", b"x" * 3001), "a value above the bound is not stored"
    assert cache.get("huge") is None and cache.stats().bytes == 2500
    # What Redis holds under the cache's keys never exceeds the bound.
    client = redis_server.client()
    stored = sum(client.strlen(k) for k in client.scan_iter("test:blobs:v:*"))
    assert stored <= 3000


def test_blob_cache_entries_expire(redis_server: RedisServer) -> None:
    cache = RedisBlobCache(link_to(redis_server), "short", max_bytes=10_000, ttl=1)
    cache.put("k", b"v" * 10)
    assert cache.get("k") == b"v" * 10  # a hit renews the TTL: wait without touching it
    time.sleep(2.2)
    assert cache.get("k") is None
    # Expired entries are evicted first and their bytes are given back.
    for i in range(10):
        cache.put(f"n{i}", b"x" * 1000)
    assert cache.stats().bytes <= 10_000


def test_shared_embeddings_round_trip_in_fp16_and_a_dead_redis_is_a_miss(redis_server: RedisServer) -> None:
    shared = SharedEmbeddings(RedisBlobCache(link_to(redis_server), "emb", 64 * 1024**2, 60))
    features = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 16, 8, 8)).astype(np.float32))
    shared.put("model|image#digest", Embedding(features, (64, 48), (480, 360)))
    got = shared.get("model|image#digest")
    assert got is not None and got.input_size == (64, 48) and got.original_size == (480, 360)
    assert torch.allclose(got.features, features, atol=1e-2, rtol=1e-3)
    assert shared.get("model|other#digest") is None
    redis_server.stop()
    assert shared.get("model|image#digest") is None
    shared.put("model|image#digest", Embedding(features, (64, 48), (480, 360)))  # no exception


def test_announcements_reach_listeners_and_survive_a_redis_restart(redis_server: RedisServer) -> None:
    listener, sender = VersionBus(link_to(redis_server)), VersionBus(link_to(redis_server))
    got: list[Announcement] = []
    subscribed = threading.Semaphore(0)
    stop = threading.Event()
    thread = threading.Thread(
        target=listener.listen, args=(got.append, subscribed.release, stop), daemon=True
    )
    thread.start()
    try:
        assert subscribed.acquire(timeout=5)
        assert sender.announce("7", "v1")
        wait_for("the announcement of v1", lambda: [a.version for a in got] == ["v1"], 5)
        redis_server.stop()
        assert not sender.announce("7", "lost"), "announcing while Redis is down says so"
        redis_server.start()
        assert subscribed.acquire(timeout=15), "the listener resubscribes (and so resyncs) by itself"
        wait_for(
            "the announcement of v2 after the reconnect",
            lambda: sender.announce("7", "v2") and "v2" in [a.version for a in got],
            10,
        )
        assert got[0].project == "7" and got[-1].published_at > 0
    finally:
        stop.set()
        thread.join(5)
