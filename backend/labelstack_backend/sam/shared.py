"""The second level of the embedding cache: Redis, shared by every replica of a SAM backend.

A click routed to a replica that never saw the image finds the embedding another
replica computed (fp16 on the wire: half of fp32, and the masks it decodes match
the fp32 ones to within a pixel or two at the edges). Redis being down is a
miss, never an error: the click computes the embedding itself.
"""

from __future__ import annotations

import logging

from labelstack_backend import metrics
from labelstack_backend.coordination.blobcache import RedisBlobCache
from labelstack_backend.coordination.link import RedisUnavailable
from labelstack_backend.sam.embeddings import Embedding

log = logging.getLogger(__name__)


class SharedEmbeddings:
    """A :class:`~labelstack_backend.sam.cache.SecondLevel` of embeddings over a Redis blob cache."""

    def __init__(self, blobs: RedisBlobCache, device: str = "cpu") -> None:
        self.blobs = blobs
        self.device = device

    def get(self, key: str) -> Embedding | None:
        try:
            data = self.blobs.get(key)
        except RedisUnavailable:
            metrics.SAM_SHARED_CACHE_LOOKUPS.labels("error").inc()
            return None
        metrics.SAM_SHARED_CACHE_LOOKUPS.labels("hit" if data is not None else "miss").inc()
        if data is None:
            return None
        try:
            return Embedding.from_bytes(data, self.device)
        except (ValueError, KeyError) as exc:  # written by an incompatible version: recompute
            log.warning("ignoring an unreadable shared embedding: %s", exc)
            return None

    def put(self, key: str, value: Embedding) -> None:
        try:
            self.blobs.put(key, value.to_bytes())
        except RedisUnavailable:
            metrics.SAM_SHARED_CACHE_LOOKUPS.labels("error").inc()
            return
        metrics.SAM_SHARED_CACHE_LOOKUPS.labels("put").inc()
