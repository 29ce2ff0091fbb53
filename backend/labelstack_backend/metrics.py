"""Prometheus metrics.

Request metrics are per process and aggregated across gunicorn workers with
prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by the
gunicorn config). The state read at scrape time (model versions, training) is
:mod:`labelstack_backend.server.scrape`'s.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

REQUESTS = Counter("labelstack_requests_total", "HTTP requests by route and status", ["route", "status"])
LATENCY = Histogram(
    "labelstack_request_seconds",
    "HTTP request latency by route",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
PREDICTED_TASKS = Counter("labelstack_predict_tasks_total", "Tasks predicted, by outcome", ["outcome"])
MODEL_READY = Gauge(
    "labelstack_model_ready", "1 when this process has its model loaded", multiprocess_mode="liveall"
)
MODEL_LOAD_SECONDS = Gauge(
    "labelstack_model_load_seconds", "Time the model took to load", multiprocess_mode="max"
)

INFLIGHT = Gauge(
    "labelstack_inflight_requests",
    "Requests being served (health and metrics excluded); the per-pod signal for autoscaling",
    multiprocess_mode="livesum",
)

# Scale-out (docs/scaling.md).
REDIS_UP = Gauge(
    "labelstack_redis_up",
    "1 while Redis (coordination, shared caches) is reachable, 0 while it is not",
    multiprocess_mode="livemin",
)
REDIS_ERRORS = Counter("labelstack_redis_errors_total", "Failed Redis calls by operation", ["operation"])
MODEL_SWITCH_SECONDS = Histogram(
    "labelstack_model_switch_seconds",
    "From a new version's publication to this process serving it (model loading included)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
SAM_SHARED_CACHE_LOOKUPS = Counter(
    "labelstack_sam_shared_cache_requests_total",
    "Requests to the shared (Redis) embedding cache by outcome: hit, miss, put, error",
    ["outcome"],
)

# Interactive SAM. Gauges sum over live workers: each worker holds its own cache.
SAM_CACHE_BYTES = Gauge(
    "labelstack_sam_cache_bytes", "Bytes of image embeddings held in memory", multiprocess_mode="livesum"
)
SAM_CACHE_ENTRIES = Gauge(
    "labelstack_sam_cache_entries", "Image embeddings held in memory", multiprocess_mode="livesum"
)
SAM_CACHE_MAX_BYTES = Gauge(
    "labelstack_sam_cache_max_bytes",
    "Bound of the embedding cache (LABELSTACK_SAM_CACHE_BYTES), per worker",
    multiprocess_mode="max",
)
SAM_CACHE_LOOKUPS = Counter(
    "labelstack_sam_cache_lookups_total",
    "Embedding lookups by outcome: memory (hit), joined (waited for a racing computation), "
    "second_level (shared cache hit), computed (miss: the encoder ran)",
    ["source"],
)
SAM_CACHE_EVICTIONS = Counter("labelstack_sam_cache_evictions_total", "Embeddings evicted from memory")
SAM_ENCODER_CALLS = Counter("labelstack_sam_encoder_calls_total", "Image encoder runs", ["mode"])
SAM_ENCODER_SECONDS = Histogram(
    "labelstack_sam_encoder_seconds",
    "Image encoder run time (waiting for the encoder excluded)",
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SAM_DECODE_SECONDS = Histogram(
    "labelstack_sam_decode_seconds",
    "Mask decoding time per object, upscaling to the image included",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
SAM_PRECOMPUTE_TASKS = Gauge(
    "labelstack_sam_precompute_tasks",
    "Tasks of the latest embedding precompute per project, by state (total, done, failed)",
    ["project", "state"],
    multiprocess_mode="livesum",
)
SAM_PRECOMPUTE_RUNNING = Gauge(
    "labelstack_sam_precompute_running",
    "1 while a project's embeddings are being precomputed",
    ["project"],
    multiprocess_mode="livesum",
)


def render(collectors: Iterable[Collector]) -> bytes:
    """The /metrics body: this process (or all workers, in multiprocess mode) plus ``collectors``."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        base = CollectorRegistry()
        MultiProcessCollector(base)
    else:
        base = REGISTRY
    extra = CollectorRegistry()
    for collector in collectors:
        extra.register(collector)
    return generate_latest(base) + generate_latest(extra)
