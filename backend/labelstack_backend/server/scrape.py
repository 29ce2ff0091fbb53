"""Model versions, training state and the shared cache, read when /metrics is scraped.

They are read from the shared registry and job store (Redis when scaled out), so every worker
of every replica reports the same truth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

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
        version_records: Callable[[], Iterable[dict[str, Any]]] = list,
    ) -> None:
        self._version_records = version_records  # ServingControl.describe's details, per project
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
        yield from self._validation()
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

    def _validation(self) -> Iterator[Metric]:
        scores = GaugeMetricFamily(
            "labelstack_version_validation_map",
            "A trained version's mAP on its held-out validation split (target: mask or box; iou 50 or 50-95)",
            labels=["project", "version", "target", "iou"],
        )
        promoted = GaugeMetricFamily(
            "labelstack_version_promoted",
            "1 when LABELSTACK_PROMOTE served a version once trained, 0 when it kept it unserved",
            labels=["project", "version"],
        )
        serving = GaugeMetricFamily(
            "labelstack_version_serving", "1 for the version a project serves", labels=["project", "version"]
        )
        for record in self._version_records():
            key = [str(record["project"]), str(record["version"])]
            serving.add_metric(key, 1.0 if record.get("serving") else 0.0)
            decision = record.get("promotion") or {}
            if "promoted" in decision:
                promoted.add_metric(key, 1.0 if decision["promoted"] else 0.0)
            candidate = ((record.get("validation") or {}).get("candidate") or {}).get("scores") or {}
            for target in ("mask", "box"):
                for iou, field in (("50", "map50"), ("50-95", "map50_95")):
                    value = (candidate.get(target) or {}).get(field)
                    if value is not None:
                        scores.add_metric([*key, target, iou], float(value))
        yield from (scores, promoted, serving)
