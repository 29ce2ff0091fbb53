"""Scale-out: several replicas of a backend behave as one, coordinated through Redis.

* :mod:`.link` — one Redis connection per process, with honest health and reconnection;
* :mod:`.records` — per-project JSON records and locks (training jobs, pre-labeling runs);
* :mod:`.versions` — announcements of new model versions;
* :mod:`.blobcache` — a byte-bounded, TTL'd store of blobs (SAM's shared embeddings).

Redis only coordinates: every replica keeps serving predictions and clicks without it.
See docs/scaling.md.
"""
