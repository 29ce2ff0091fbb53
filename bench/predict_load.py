"""/predict under concurrent load: latency percentiles and the server's peak memory.

Starts the real backend under gunicorn (demo model, two workers, as the README runs it),
serves JPEGs over local HTTP, and sends ``--clients`` concurrent requests of ``--tasks``
tasks each, ``--rounds`` times. A 503 is retried after its ``Retry-After``, as a client
should, so the latency is the whole wait for an answer. Memory is the resident set of
the gunicorn master plus its workers, sampled every 50 ms. ``--max-request`` also sends
one request of ``LABELSTACK_MAX_TASKS_PER_REQUEST`` tasks to a fresh server and reports
the peak of the worker that served it.

    python -m bench.predict_load --clients 30 --tasks 4 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import requests
from PIL import Image

from bench.predict_throughput import CONFIG, serve
from tests.support.backend import run_backend


class MemorySampler:
    """Peak RSS of a process tree (total, and the largest single process)."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak_total = 0
        self.peak_one = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            procs = [self.root, *self.root.children(recursive=True)]
            sizes = []
            for p in procs:
                try:
                    sizes.append(p.memory_info().rss)
                except psutil.Error:
                    continue
            self.peak_total = max(self.peak_total, sum(sizes))
            self.peak_one = max(self.peak_one, max(sizes, default=0))

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def predict(url: str, tasks: list[dict[str, Any]], statuses: Counter[int]) -> float:
    started = time.monotonic()
    while True:
        resp = requests.post(f"{url}/predict", json={"tasks": tasks, "label_config": CONFIG}, timeout=600)
        statuses[resp.status_code] += 1
        if resp.status_code != 503 or time.monotonic() - started > 300:
            return time.monotonic() - started
        time.sleep(float(resp.headers.get("Retry-After", "1")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=30)
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-request", action="store_true", help="also one request of the task limit")
    ap.add_argument("--label", default="", help="a name for this run in the JSON")
    ap.add_argument("--out", default="", help="write the figures as JSON here")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    images = work / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(args.images):
        pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"{i}.jpg", quality=90)
    base = serve(images)
    env = {"LABELSTACK_DEMO_MODEL": "1", "WORKERS": str(args.workers), "LABELSTACK_IMAGE_CACHE_BYTES": "0"}
    figures: dict[str, Any] = {"label": args.label, "clients": args.clients, "tasks": args.tasks}
    with run_backend(work / "server", env) as backend:
        counter = iter(range(10**9))

        def request(_: int) -> float:
            tasks = [
                {"id": n, "data": {"image": f"{base}/{n % args.images}.jpg"}}
                for n in (next(counter) for _ in range(args.tasks))
            ]
            return predict(backend.url, tasks, statuses)

        statuses: Counter[int] = Counter()
        predict(backend.url, [{"id": 0, "data": {"image": f"{base}/0.jpg"}}], Counter())  # warm-up
        latencies: list[float] = []
        with MemorySampler(backend.proc.pid) as memory, ThreadPoolExecutor(args.clients) as pool:
            for _ in range(args.rounds):
                latencies += list(pool.map(request, range(args.clients)))
        q = statistics.quantiles(latencies, n=20)
        figures.update(
            p50_s=round(statistics.median(latencies), 2),
            p95_s=round(q[18], 2),
            max_s=round(max(latencies), 2),
            statuses={str(k): v for k, v in sorted(statuses.items())},
            peak_rss_total_mb=round(memory.peak_total / 2**20),
            peak_rss_worker_mb=round(memory.peak_one / 2**20),
        )
        assert backend.alive(), "the server died under load"
    if args.max_request:
        # A fresh server: a worker's RSS never shrinks, so the load above would hide this peak.
        with run_backend(work / "max", env) as backend:
            limit = int(backend.env.get("LABELSTACK_MAX_TASKS_PER_REQUEST", "256"))
            tasks = [{"id": n, "data": {"image": f"{base}/{n % args.images}.jpg"}} for n in range(limit)]
            predict(backend.url, tasks[:1], Counter())  # warm-up
            with MemorySampler(backend.proc.pid) as memory:
                took = predict(backend.url, tasks, Counter())
            figures.update(
                max_request_tasks=limit,
                max_request_s=round(took, 1),
                max_request_peak_rss_worker_mb=round(memory.peak_one / 2**20),
            )
    print(json.dumps(figures, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
