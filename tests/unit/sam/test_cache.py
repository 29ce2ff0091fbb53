"""The byte-bounded, single-flight LRU and its second level."""

from __future__ import annotations

import threading
import time

import pytest

from labelstack_backend.sam.cache import CacheStats, SingleFlightLRU, Source


def lru(max_bytes: int, **kwargs: object) -> SingleFlightLRU[bytes]:
    return SingleFlightLRU(max_bytes, len, **kwargs)  # type: ignore[arg-type]


def test_eviction_keeps_the_byte_bound_and_drops_the_least_recently_used() -> None:
    evicted: list[str] = []
    cache = lru(100, on_evict=lambda key, size: evicted.append(key))
    for key in "abcd":
        cache.put(key, b"x" * 30)
    assert cache.stats() == CacheStats(entries=3, bytes=90, max_bytes=100, evictions=1)
    assert evicted == ["a"]
    assert cache.get("b") is not None  # b is now the most recently used
    cache.put("e", b"x" * 30)
    assert evicted == ["a", "c"]
    assert "b" in cache and "c" not in cache
    cache.put("big", b"x" * 70)  # needs two entries to go
    assert cache.stats().bytes <= 100
    assert evicted == ["a", "c", "d", "b"]


def test_a_value_larger_than_the_bound_is_returned_but_not_kept() -> None:
    cache = lru(10)
    value, source = cache.get_or_compute("k", lambda: b"x" * 11)
    assert (value, source) == (b"x" * 11, Source.COMPUTED)
    assert "k" not in cache
    assert cache.stats().bytes == 0


def test_replacing_a_key_counts_its_bytes_once() -> None:
    cache = lru(100)
    cache.put("k", b"x" * 40)
    cache.put("k", b"y" * 50)
    assert cache.stats().bytes == 50
    assert cache.get("k") == b"y" * 50


def test_zero_bytes_disables_caching() -> None:
    cache = lru(0)
    calls = []
    for _ in range(3):
        cache.get_or_compute("k", lambda: calls.append(1) or b"v")
    assert len(calls) == 3


def test_on_change_reports_size() -> None:
    seen: list[CacheStats] = []
    cache = lru(100, on_change=seen.append)
    cache.put("a", b"x" * 10)
    cache.clear()
    assert [s.bytes for s in seen] == [10, 0]


def test_racing_callers_compute_once_and_all_get_the_value() -> None:
    cache = lru(1000)
    calls = 0
    start = threading.Barrier(8)

    def compute() -> bytes:
        nonlocal calls
        calls += 1
        time.sleep(0.1)  # the window in which the other threads arrive
        return b"value"

    results: list[tuple[bytes, Source]] = []

    def worker() -> None:
        start.wait()
        results.append(cache.get_or_compute("k", compute))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == 1
    assert [v for v, _ in results] == [b"value"] * 8
    sources = sorted(s.value for _, s in results)
    assert sources.count(Source.COMPUTED.value) == 1
    assert set(sources) <= {Source.COMPUTED.value, Source.JOINED.value, Source.MEMORY.value}


def test_a_failed_computation_fails_its_waiters_and_is_retried_next_time() -> None:
    cache = lru(1000)
    entered = threading.Event()
    release = threading.Event()

    def failing() -> bytes:
        entered.set()
        release.wait(5)
        raise RuntimeError("boom")

    errors: list[BaseException] = []

    def leader() -> None:
        try:
            cache.get_or_compute("k", failing)
        except RuntimeError as exc:
            errors.append(exc)

    def follower() -> None:
        try:
            cache.get_or_compute("k", lambda: b"never")
        except RuntimeError as exc:
            errors.append(exc)

    t1 = threading.Thread(target=leader)
    t1.start()
    entered.wait(5)
    t2 = threading.Thread(target=follower)
    t2.start()
    time.sleep(0.05)
    release.set()
    t1.join()
    t2.join()
    assert [str(e) for e in errors] == ["boom", "boom"]
    assert cache.get_or_compute("k", lambda: b"ok") == (b"ok", Source.COMPUTED)


class DictLevel:
    """A second level in a dict, as Redis would be (issue 8)."""

    def __init__(self, fail: bool = False) -> None:
        self.data: dict[str, bytes] = {}
        self.fail = fail
        self.gets = 0

    def get(self, key: str) -> bytes | None:
        self.gets += 1
        if self.fail:
            raise ConnectionError("redis is down")
        return self.data.get(key)

    def put(self, key: str, value: bytes) -> None:
        if self.fail:
            raise ConnectionError("redis is down")
        self.data[key] = value


def test_second_level_hit_skips_the_computation_and_fills_memory() -> None:
    shared = DictLevel()
    shared.data["k"] = b"from redis"
    cache = lru(1000, second=shared)
    assert cache.get_or_compute("k", lambda: pytest.fail("computed")) == (b"from redis", Source.SECOND_LEVEL)
    assert cache.get_or_compute("k", lambda: pytest.fail("computed")) == (b"from redis", Source.MEMORY)
    assert shared.gets == 1


def test_computed_values_are_written_through_to_the_second_level() -> None:
    shared = DictLevel()
    a = lru(1000, second=shared)
    b = lru(1000, second=shared)  # another replica
    a.get_or_compute("k", lambda: b"computed on a")
    assert b.get_or_compute("k", lambda: pytest.fail("b recomputed")) == (
        b"computed on a",
        Source.SECOND_LEVEL,
    )


def test_a_failing_second_level_never_fails_a_lookup() -> None:
    cache = lru(1000, second=DictLevel(fail=True))
    assert cache.get_or_compute("k", lambda: b"v") == (b"v", Source.COMPUTED)
    assert cache.get_or_compute("k", lambda: b"other") == (b"v", Source.MEMORY)
