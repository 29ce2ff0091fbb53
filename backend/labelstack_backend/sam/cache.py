"""A byte-bounded, thread-safe LRU with single-flight computation and a pluggable second level.

* **Bounded in bytes**, not entries: an embedding's size depends on the model
  (vit_h: 4 MiB in fp32), and the bound is what an operator sizes memory by.
  A value larger than the whole bound is returned but not kept.
* **Single-flight**: when several threads ask for the same missing key at once,
  one computes and the others wait for its result (or its exception), so two
  racing clicks never encode the same image twice.
* **Second level** (:class:`SecondLevel`): a slower, shared store consulted on a
  miss before computing, and written through after computing (issue 8 plugs a
  Redis store in here). Its failures are logged and treated as misses: a shared
  cache that is down must never fail a click.

No torch in here: the cache knows values only through ``size_of``.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

V = TypeVar("V")


class SecondLevel(Protocol[V]):
    """A shared store behind the in-process LRU. Both calls may raise; the cache copes."""

    def get(self, key: str) -> V | None: ...

    def put(self, key: str, value: V) -> None: ...


class Source(StrEnum):
    """Where :meth:`SingleFlightLRU.get_or_compute` found its value."""

    MEMORY = "memory"  # in this process's LRU
    JOINED = "joined"  # another thread was computing it; we waited for that
    SECOND_LEVEL = "second_level"  # the shared store had it
    COMPUTED = "computed"  # we computed it


@dataclass(frozen=True)
class CacheStats:
    entries: int
    bytes: int
    max_bytes: int
    evictions: int


class SingleFlightLRU(Generic[V]):
    def __init__(
        self,
        max_bytes: int,
        size_of: Callable[[V], int],
        *,
        second: SecondLevel[V] | None = None,
        on_change: Callable[[CacheStats], None] | None = None,
        on_evict: Callable[[str, int], None] | None = None,
    ) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = max_bytes
        self.second = second
        self._size_of = size_of
        self._on_change = on_change
        self._on_evict = on_evict
        self._entries: OrderedDict[str, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._evictions = 0
        self._inflight: dict[str, Future[V]] = {}
        self._lock = threading.Lock()

    # -- plain LRU -----------------------------------------------------------
    def get(self, key: str) -> V | None:
        """The value in memory (and mark it recently used), or None."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            self._entries.move_to_end(key)
            return found[0]

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._entries

    def put(self, key: str, value: V) -> bool:
        """Keep ``value``, evicting least recently used entries to stay within the bound.
        Returns False when the value alone is larger than the bound (it is not kept)."""
        size = self._size_of(value)
        evicted: list[tuple[str, int]] = []
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            stored = size <= self.max_bytes
            if stored:
                self._entries[key] = (value, size)
                self._bytes += size
                while self._bytes > self.max_bytes:
                    old_key, (_, old_size) = self._entries.popitem(last=False)
                    self._bytes -= old_size
                    self._evictions += 1
                    evicted.append((old_key, old_size))
            stats = self._stats()
        if not stored:
            log.debug("not caching %s: %d bytes is above the bound of %d", key, size, self.max_bytes)
        for old_key, old_size in evicted:
            log.debug("evicted %s (%d bytes)", old_key, old_size)
            if self._on_evict is not None:
                self._on_evict(old_key, old_size)
        if self._on_change is not None:
            self._on_change(stats)
        return stored

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            stats = self._stats()
        if self._on_change is not None:
            self._on_change(stats)

    def stats(self) -> CacheStats:
        with self._lock:
            return self._stats()

    def _stats(self) -> CacheStats:
        return CacheStats(len(self._entries), self._bytes, self.max_bytes, self._evictions)

    # -- single flight -------------------------------------------------------
    def get_or_compute(self, key: str, compute: Callable[[], V]) -> tuple[V, Source]:
        """The value for ``key`` and where it came from; ``compute`` runs at most once
        per key at a time, whatever the number of concurrent callers."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                return found[0], Source.MEMORY
            future = self._inflight.get(key)
            leader = future is None
            if future is None:
                future = self._inflight[key] = Future()
        if not leader:
            return future.result(), Source.JOINED
        try:
            value, source = self._fetch_or_compute(key, compute)
            self.put(key, value)  # before the in-flight entry goes: a newcomer finds one or the other
            future.set_result(value)
            return value, source
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._inflight.pop(key, None)

    def _fetch_or_compute(self, key: str, compute: Callable[[], V]) -> tuple[V, Source]:
        if self.second is not None:
            try:
                shared = self.second.get(key)
            except Exception as exc:
                log.warning("second-level cache get failed for %s: %s: %s", key, type(exc).__name__, exc)
                shared = None
            if shared is not None:
                return shared, Source.SECOND_LEVEL
        value = compute()
        if self.second is not None:
            try:
                self.second.put(key, value)
            except Exception as exc:
                log.warning("second-level cache put failed for %s: %s: %s", key, type(exc).__name__, exc)
        return value, Source.COMPUTED
