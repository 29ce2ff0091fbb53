"""Per-project records and per-project locks in Redis, shared by every replica: the training
job's state (:mod:`labelstack_backend.training.redis_store`) and a pre-labeling run's progress
(:mod:`labelstack_backend.prelabel.store`) are both one of these.

* A record is one JSON value per project, changed only inside a WATCH/MULTI transaction, so
  two replicas deciding at once cannot both act; a set indexes the projects that have one.
* A lock is ``SET NX PX``: it expires by itself when its holder dies (a killed pod cannot
  block a project forever); the holder renews it with its heartbeat, and releases it only if
  it still holds it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import Field, replace
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import redis

from labelstack_backend.coordination.link import RedisLink

# 1: still ours (extended); 2: gone (Redis restarted empty, or it expired) and taken back; 0: someone
# else's now.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLease:
    """One project's lock, held by ``owner``."""

    def __init__(self, link: RedisLink, key: str, owner: str, ttl: float) -> None:
        self.link = link
        self.key = key
        self.owner = owner
        self.ttl_ms = max(1, int(ttl * 1000))

    def renew(self) -> bool:
        """False only when another owner holds the lock; raises RedisUnavailable when it cannot tell."""
        result = self.link.run("lock renew", lambda r: r.eval(_RENEW, 1, self.key, self.owner, self.ttl_ms))
        return int(result) > 0

    def release(self) -> None:
        self.link.run("lock release", lambda r: r.eval(_RELEASE, 1, self.key, self.owner))


class Record(Protocol):
    """What a record is: a dataclass of one project, stamped (``updated_at``) when it changes."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    @property
    def project(self) -> str: ...

    def to_json(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=Record)


def parse_record(
    project: str, raw: Any, from_json: Callable[[dict[str, Any]], R], empty: Callable[[str], R]
) -> R:
    """A stored record (JSON text or bytes), or the project's empty one when there is none or it
    no longer parses (a value from an older release, a torn write)."""
    if not raw:
        return empty(project)
    try:
        return from_json(json.loads(raw))
    except (ValueError, TypeError):
        return empty(project)


class RedisRecords(Generic[R]):
    """``<prefix>:<record>:<project>`` values, the ``<prefix>:<index>`` set of their projects, and
    ``<prefix>:<lock>:<project>`` locks. ``from_json`` reads a stored value; ``empty`` is the
    record of a project with none (or with one that no longer parses)."""

    def __init__(
        self,
        link: RedisLink,
        *,
        record: str,
        index: str,
        lock: str,
        from_json: Callable[[dict[str, Any]], R],
        empty: Callable[[str], R],
    ) -> None:
        self.link = link
        self._record = record
        self._index = link.key(index)
        self._lock = lock
        self._from_json = from_json
        self._empty = empty

    def _key(self, project: str) -> str:
        return self.link.key(self._record, project)

    def lock_key(self, project: str) -> str:
        return self.link.key(self._lock, project)

    def _parse(self, project: str, raw: Any) -> R:
        return parse_record(project, raw, self._from_json, self._empty)

    def get(self, project: str) -> R:
        raw = self.link.run(f"{self._record} get", lambda r: r.get(self._key(project)))
        return self._parse(project, raw)

    def update(self, project: str, change: Callable[[R], R]) -> R:
        """Apply ``change`` atomically; it runs again when another replica changed the record
        meanwhile, so it must be pure."""
        key = self._key(project)
        out: list[R] = []

        def transaction(pipe: redis.client.Pipeline) -> None:
            new = replace(change(self._parse(project, pipe.get(key))), updated_at=time.time())
            pipe.multi()
            pipe.set(key, json.dumps(new.to_json(), sort_keys=True))
            pipe.sadd(self._index, project)
            out[:] = [new]

        self.link.run(f"{self._record} update", lambda r: r.transaction(transaction, key))
        return out[0]

    def all(self) -> list[R]:
        def read(r: redis.Redis) -> list[R]:
            projects = sorted(p.decode() if isinstance(p, bytes) else str(p) for p in r.smembers(self._index))
            values = r.mget([self._key(p) for p in projects]) if projects else []
            return [self._parse(p, v) for p, v in zip(projects, values, strict=True)]

        return self.link.run(f"{self._record} list", read)

    def try_lock(self, project: str, owner: str, ttl: float) -> RedisLease | None:
        """The project's lock, or None while another owner holds it."""
        key = self.lock_key(project)
        taken = self.link.run(
            f"{self._lock} take", lambda r: r.set(key, owner, nx=True, px=max(1, int(ttl * 1000)))
        )
        return RedisLease(self.link, key, owner, ttl) if taken else None

    def lock_holder(self, project: str) -> str | None:
        raw = self.link.run(f"{self._lock} get", lambda r: r.get(self.lock_key(project)))
        return raw.decode() if isinstance(raw, bytes) else raw
