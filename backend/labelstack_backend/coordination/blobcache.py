"""Blobs in Redis with a TTL and a bound on their total bytes: SAM's shared embedding cache.

Redis's own eviction cannot be the bound: the same Redis holds the training
locks and job state, which must never be evicted. So the cache keeps its own
books, atomically in Lua: an index of entries by last use and their sizes. A
put that would exceed the bound first deletes the least recently used entries;
a hit renews the entry's TTL and its place in the index. Entries whose TTL ran
out stay counted until they are the oldest and are evicted first, so the
count can only overstate what is stored: the bound always holds.

(The scripts name keys they compute, which a single Redis allows; Redis
Cluster would need hash tags.)
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import redis

from labelstack_backend.coordination.link import RedisLink

# KEYS: value, index (zset member -> last use), sizes (hash member -> bytes), total bytes
# ARGV: member, value, ttl, max bytes, now, value-key prefix
_PUT = """
local size = string.len(ARGV[2])
local bound = tonumber(ARGV[4])
if size > bound then return 0 end
local old = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
if old > 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
end
local total = tonumber(redis.call('GET', KEYS[4]) or '0') - old + size
local evicted = 0
while total > bound do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)
  if #oldest == 0 then total = size break end
  local member = oldest[1]
  total = total - tonumber(redis.call('HGET', KEYS[3], member) or '0')
  redis.call('ZREM', KEYS[2], member)
  redis.call('HDEL', KEYS[3], member)
  redis.call('DEL', ARGV[6] .. member)
  evicted = evicted + 1
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], size)
redis.call('SET', KEYS[4], total)
return 1 + evicted
"""
# KEYS: value, index; ARGV: member, now, ttl
_GET = """
local value = redis.call('GET', KEYS[1])
if value then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return value
"""


@dataclass(frozen=True)
class BlobCacheStats:
    entries: int
    bytes: int  # as counted: an upper bound of what is stored
    max_bytes: int


class RedisBlobCache:
    def __init__(self, link: RedisLink, name: str, max_bytes: int, ttl: int) -> None:
        self.link = link
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._values = link.key(name, "v") + ":"
        self._index = link.key(name, "index")
        self._sizes = link.key(name, "sizes")
        self._total = link.key(name, "bytes")

    @staticmethod
    def member(key: str) -> str:
        """Keys can be long URIs: Redis sees a digest."""
        return hashlib.sha256(key.encode()).hexdigest()[:40]

    def get(self, key: str) -> bytes | None:
        m = self.member(key)
        raw = self.link.run(
            "cache get",
            lambda r: r.eval(_GET, 2, self._values + m, self._index, m, time.time(), self.ttl),
        )
        return bytes(raw) if raw is not None else None

    def put(self, key: str, value: bytes) -> bool:
        """Store ``value``; False when it alone is larger than the bound (it is not stored)."""
        m = self.member(key)
        keys = (self._values + m, self._index, self._sizes, self._total)
        result = self.link.run(
            "cache put",
            lambda r: r.eval(_PUT, 4, *keys, m, value, self.ttl, self.max_bytes, time.time(), self._values),
        )
        return int(result) > 0

    def stats(self) -> BlobCacheStats:
        def read(r: redis.Redis) -> tuple[int, int]:
            pipe = r.pipeline(transaction=False)
            pipe.zcard(self._index)
            pipe.get(self._total)
            entries, total = pipe.execute()
            return int(entries or 0), int(total or 0)

        entries, total = self.link.run("cache stats", read)
        return BlobCacheStats(entries, total, self.max_bytes)
