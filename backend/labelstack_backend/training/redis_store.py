"""Training job state and the per-project training lock, in Redis, shared by every replica.

* The state of a project's job is one JSON value, changed only inside a
  WATCH/MULTI transaction, so two replicas deciding at once cannot both start.
* The lock is ``SET NX PX``: it expires by itself when its holder dies (a
  killed pod cannot block training forever); the holder renews it with its
  heartbeat, and releases it only if it still holds it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import redis

from labelstack_backend.coordination.link import RedisLink
from labelstack_backend.training.state import JobState, TrainingLease

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
    """The training lock of one project, held by ``owner``."""

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


class RedisJobStore:
    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self._index = link.key("jobs")

    def _key(self, project: str) -> str:
        return self.link.key("job", project)

    def lock_key(self, project: str) -> str:
        return self.link.key("train-lock", project)

    @staticmethod
    def _parse(project: str, raw: Any) -> JobState:
        if raw is None:
            return JobState(project=project)
        try:
            return JobState.from_json(json.loads(raw))
        except (ValueError, TypeError):
            return JobState(project=project)

    def get(self, project: str) -> JobState:
        return self._parse(project, self.link.run("job get", lambda r: r.get(self._key(project))))

    def update(self, project: str, change: Callable[[JobState], JobState]) -> JobState:
        key = self._key(project)
        out: list[JobState] = []

        def transaction(pipe: redis.client.Pipeline) -> None:
            # Runs again from the top when another replica changed the key meanwhile.
            new = replace(change(self._parse(project, pipe.get(key))), updated_at=time.time())
            pipe.multi()
            pipe.set(key, json.dumps(new.to_json(), sort_keys=True))
            pipe.sadd(self._index, project)
            out[:] = [new]

        self.link.run("job update", lambda r: r.transaction(transaction, key))
        return out[0]

    def all(self) -> list[JobState]:
        def read(r: redis.Redis) -> list[JobState]:
            projects = sorted(p.decode() if isinstance(p, bytes) else str(p) for p in r.smembers(self._index))
            values = r.mget([self._key(p) for p in projects]) if projects else []
            return [self._parse(p, v) for p, v in zip(projects, values, strict=True)]

        return self.link.run("job list", read)

    def try_lock(self, project: str, owner: str, ttl: float) -> TrainingLease | None:
        key = self.lock_key(project)
        taken = self.link.run("lock take", lambda r: r.set(key, owner, nx=True, px=max(1, int(ttl * 1000))))
        return RedisLease(self.link, key, owner, ttl) if taken else None

    def lock_held(self, project: str) -> bool:
        return self.lock_holder(project) is not None

    def lock_holder(self, project: str) -> str | None:
        raw = self.link.run("lock get", lambda r: r.get(self.lock_key(project)))
        return raw.decode() if isinstance(raw, bytes) else raw
