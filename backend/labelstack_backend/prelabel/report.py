"""Pre-labeling progress in /metrics, read from the shared store when scraped (so every worker of
every replica reports the same run)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from labelstack_backend.prelabel.progress import Progress


class PrelabelCollector(Collector):
    def __init__(self, runs: Callable[[], Iterable[Progress]]) -> None:
        self._runs = runs

    def collect(self) -> Iterator[Metric]:
        tasks = GaugeMetricFamily(
            "labelstack_prelabel_tasks",
            "Bulk pre-labeling of a project: tasks in it (total), holding the serving version (done), "
            "written by the run (written), failed",
            labels=["project", "state"],
        )
        running = GaugeMetricFamily(
            "labelstack_prelabel_running", "1 while a project is being pre-labeled", labels=["project"]
        )
        rate = GaugeMetricFamily(
            "labelstack_prelabel_rate", "Predictions written per second by the run", labels=["project"]
        )
        eta = GaugeMetricFamily(
            "labelstack_prelabel_eta_seconds", "Seconds left at the current rate", labels=["project"]
        )
        now = time.time()
        for run in self._runs():
            for state, value in (("total", run.total), ("done", run.done), ("written", run.written),
                                 ("failed", run.failed)):  # fmt: skip
                tasks.add_metric([run.project, state], value)
            running.add_metric([run.project], 1.0 if run.active else 0.0)
            rate.add_metric([run.project], run.rate(now))
            left = run.eta_s(now)
            if left is not None:
                eta.add_metric([run.project], left)
        yield from (tasks, running, rate, eta)
