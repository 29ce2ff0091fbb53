"""Model versions, training state and the shared cache, read when /metrics is scraped.

They are read from the shared registry and job store (Redis when scaled out), so every worker
of every replica reports the same truth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from labelstack_backend.training.state import JobState, JobStatus


class StateCollector(Collector):
    """Model versions, training state and the shared cache, read when scraped (from Redis when
    scaled out, so every replica reports the same truth)."""

    def __init__(
        self,
        versions: Callable[[], dict[str, str]],
        jobs: Callable[[], Iterable[JobState]],
        shared_cache: Callable[[], tuple[int, int, int] | None] = lambda: None,
    ) -> None:
        self._versions = versions
        self._jobs = jobs
        self._shared_cache = shared_cache  # (entries, bytes, max bytes) of SAM's Redis cache

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "labelstack_model_version_info",
            "The model version serving each project",
            labels=["project", "version"],
        )
        for project, version in sorted(self._versions().items()):
            info.add_metric([project, version], 1)
        yield info
        status = GaugeMetricFamily(
            "labelstack_training_status",
            "1 for the current training status of a project",
            labels=["project", "status"],
        )
        epoch = GaugeMetricFamily("labelstack_training_epoch", "Current training epoch", labels=["project"])
        epochs = GaugeMetricFamily(
            "labelstack_training_epochs", "Epochs of the current training", labels=["project"]
        )
        loss = GaugeMetricFamily("labelstack_training_loss", "Last training loss", labels=["project"])
        runs = GaugeMetricFamily("labelstack_training_runs", "Trainings run per project", labels=["project"])
        for job in self._jobs():
            for s in JobStatus:
                status.add_metric([job.project, s.value], 1.0 if job.status is s else 0.0)
            epoch.add_metric([job.project], job.epoch)
            epochs.add_metric([job.project], job.epochs)
            runs.add_metric([job.project], job.runs)
            if job.loss is not None:
                loss.add_metric([job.project], job.loss)
        yield from (status, epoch, epochs, loss, runs)
        shared = self._shared_cache()
        if shared is not None:
            entries, size, bound = shared
            yield GaugeMetricFamily(
                "labelstack_sam_shared_cache_entries", "Embeddings in the shared (Redis) cache", value=entries
            )
            yield GaugeMetricFamily(
                "labelstack_sam_shared_cache_bytes",
                "Bytes of the shared (Redis) embedding cache, as counted (an upper bound)",
                value=size,
            )
            yield GaugeMetricFamily(
                "labelstack_sam_shared_cache_max_bytes",
                "Bound of the shared embedding cache (LABELSTACK_SAM_REDIS_BYTES)",
                value=bound,
            )
