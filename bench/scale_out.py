"""Scale-out: several backend replicas behind one Redis (docs/scaling.md).

Three measurements, each with real gunicorn replicas on their own ports and a
real redis-server:

* clicks:     SAM click latency on replica B for a local cache hit, a Redis hit
              (replica A computed the embedding) and a cold click, p50 and p95;
* switch:     from a new version's publication (registry + announcement) to every
              replica serving it, for 2 and 4 replicas; and without the
              announcement, when only the poll finds it;
* throughput: segmentation predictions per second with 1, 2 and 4 replicas, one
              task per request from 8 client threads spread over the replicas.

CPU here (random weights):
    .venvs/backend/bin/python bench/scale_out.py                 # all three, ~10 min on 2 cores
    .venvs/backend/bin/python bench/scale_out.py clicks --model mobile_sam --images 20
A GPU later:
    python bench/scale_out.py throughput --device cuda:0 --weights /weights/yolov8l-seg.pt

Results: Markdown on stdout and JSON in bench/results/scale_out.json (git-ignored).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import requests
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "backend"), str(REPO / "operator")]

from bench.predict_throughput import serve
from bench.sam_click import click, machine, summary
from labelstack_backend import runtime
from labelstack_backend.coordination.link import RedisLink
from labelstack_backend.coordination.versions import VersionBus
from labelstack_backend.registry import ModelRegistry
from tests.support.backend import BackendServer, run_replicas
from tests.support.redis_server import RedisServer
from tests.support.sam import metric, write_image

SEG_CONFIG = (
    '<View><Image name="image" value="$image"/><PolygonLabels name="p" toName="image">'
    '<Label value="person"/></PolygonLabels></View>'
)


def prefix() -> str:
    return f"labelstack:bench:{uuid.uuid4().hex[:8]}"


def metrics_of(server: BackendServer) -> str:
    return requests.get(f"{server.url}/metrics", timeout=30).text


# -- clicks -----------------------------------------------------------------------------------
def bench_clicks(args: argparse.Namespace, work: Path, redis: RedisServer) -> dict[str, Any]:
    size = (1024, 768)
    seen_by_a = [write_image(work / "img" / f"a{i:03d}.jpg", size, seed=i) for i in range(args.images)]
    unseen = [write_image(work / "img" / f"c{i:03d}.jpg", size, seed=500 + i) for i in range(args.images)]
    env = {
        "LABELSTACK_PREDICTOR": "sam",
        "LABELSTACK_SAM_MODEL_TYPE": args.model,
        "LABELSTACK_DEMO_MODEL": "1",
        "LABELSTACK_DEVICE": args.device,
        "LABELSTACK_REDIS_PREFIX": prefix(),
        "LOG_LEVEL": "WARNING",
        **redis.env,
    }
    print(f"clicks: 2 SAM replicas ({args.model}), {args.images} images per case", flush=True)
    with run_replicas([work / "sam-a", work / "sam-b"], env, ready_timeout=900) as (a, b):
        session = requests.Session()
        spare = write_image(work / "img" / "warmup.jpg", size, seed=999)
        for server in (a, b):
            click(session, server, spare, (50, 50), size)  # lazy imports, first allocations
        for image in seen_by_a:
            click(session, a, image, (40, 50), size)
        before = metric(metrics_of(b), "labelstack_sam_encoder_calls_total")
        redis_hit = [click(session, b, image, (60, 40), size) for image in seen_by_a]
        after_shared = metric(metrics_of(b), "labelstack_sam_encoder_calls_total")
        local_hit = [click(session, b, image, (30, 70), size) for image in seen_by_a]
        cold = [click(session, b, image, (50, 50), size) for image in unseen]
        after_cold = metric(metrics_of(b), "labelstack_sam_encoder_calls_total")
    return {
        "model": args.model,
        "image": "1024x768",
        "local_hit": summary(local_hit),
        "redis_hit": summary(redis_hit),
        "cold": summary(cold),
        "encoder_calls_on_b_for_redis_hits": after_shared - before,
        "encoder_calls_on_b_for_cold": after_cold - after_shared,
    }


# -- switch -----------------------------------------------------------------------------------
def make_weights(folder: Path, count: int) -> list[Path]:
    """Distinct YOLOv8n-seg checkpoints (random, each a different digest) that the replicas can load."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    runtime.prepare_ultralytics(folder / "ultralytics")
    import torch
    from ultralytics import YOLO

    out = []
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        torch.manual_seed(1000 + i)
        path = folder / f"w{i}.pt"
        YOLO("yolov8n-seg.yaml").save(str(path))
        out.append(path)
    return out


def serving(servers: list[BackendServer], project: str) -> set[str]:
    body = {"project": f"{project}.1700000000", "schema": SEG_CONFIG}
    return {requests.post(f"{s.url}/setup", json=body, timeout=5).json()["model_version"] for s in servers}


def time_switch(servers: list[BackendServer], project: str, version: str, timeout: float) -> float:
    started = time.perf_counter()
    while serving(servers, project) != {version}:
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"replicas did not switch to {version} within {timeout} s")
        time.sleep(0.01)
    return time.perf_counter() - started


def bench_switch(args: argparse.Namespace, work: Path, redis: RedisServer) -> dict[str, Any]:
    out: dict[str, Any] = {}
    weights = make_weights(work / "weights", args.rounds * 4)
    image = work / "one.jpg"
    Image.new("RGB", (320, 240), (90, 120, 150)).save(image)
    task = [{"id": 1, "data": {"image": str(image)}}]
    for replicas in args.replicas_switch:
        for announce in (True, False):
            models = work / f"switch-{replicas}-{announce}"
            key_prefix = prefix()
            env = {
                "LABELSTACK_DEMO_MODEL": "1",
                "LABELSTACK_DEVICE": args.device,
                "MODEL_DIR": str(models),  # shared by the replicas: a ReadWriteMany volume
                "LABELSTACK_REDIS_PREFIX": key_prefix,
                "LABELSTACK_VERSION_POLL_SECONDS": str(args.poll),
                "OMP_NUM_THREADS": "1",
                "LOG_LEVEL": "WARNING",
                **redis.env,
            }
            label = f"{replicas} replicas, {'announced' if announce else 'poll only'}"
            print(f"switch: {label}", flush=True)
            dirs = [work / f"sw-{replicas}-{announce}-{i}" for i in range(replicas)]
            with run_replicas(dirs, env, ready_timeout=900) as servers:
                for s in servers:  # every replica serves the project before the new version
                    body = {"tasks": task, "project": "1.1700000000", "label_config": SEG_CONFIG}
                    requests.post(f"{s.url}/predict", json=body, timeout=120).raise_for_status()
                registry = ModelRegistry(models)
                link = RedisLink.connect(redis.url, password=redis.password, prefix=key_prefix)
                bus = VersionBus(link)
                times = []
                for _ in range(args.rounds):
                    version = registry.publish("1", weights.pop(), base="yolov8n-seg", meta={})
                    if announce:
                        bus.announce("1", version.name)
                    times.append(time_switch(servers, "1", version.name, timeout=args.poll * 3 + 60))
                link.close()
            out[label] = {
                "seconds": [round(t, 3) for t in times],
                "median_s": round(statistics.median(times), 3),
            }
    return out


# -- throughput -------------------------------------------------------------------------------
def predict_one(
    servers: list[BackendServer], sessions: list[requests.Session], tasks: list[dict[str, Any]], i: int
) -> None:
    """Task ``i`` as its own request, to the replicas in turn (what a Service's balancing does)."""
    server = servers[i % len(servers)]
    body = {"tasks": [tasks[i]], "label_config": SEG_CONFIG}
    sessions[i % len(sessions)].post(f"{server.url}/predict", json=body, timeout=600).raise_for_status()


def bench_throughput(args: argparse.Namespace, work: Path, redis: RedisServer) -> dict[str, Any]:
    images = work / "http"
    images.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(args.tasks):
        Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(
            images / f"{i}.jpg", quality=90
        )
    base = serve(images)
    tasks = [{"id": i, "data": {"image": f"{base}/{i}.jpg"}} for i in range(args.tasks)]
    cores = os.cpu_count() or 1
    out: dict[str, Any] = {}
    for replicas in args.replicas_throughput:
        env = {
            "LABELSTACK_DEVICE": args.device,
            "LABELSTACK_REDIS_PREFIX": prefix(),
            "LABELSTACK_IMAGE_CACHE_BYTES": "0",
            # The cores are shared: each replica gets its part of them, as pods get CPU limits.
            "OMP_NUM_THREADS": str(max(1, cores // replicas)),
            "LOG_LEVEL": "WARNING",
            **redis.env,
        }
        if args.weights:
            env["LABELSTACK_SEG_WEIGHTS"] = args.weights
        else:
            env["LABELSTACK_DEMO_MODEL"] = "1"
        print(f"throughput: {replicas} replica(s)", flush=True)
        dirs = [work / f"tp-{replicas}-{i}" for i in range(replicas)]
        with run_replicas(dirs, env, ready_timeout=900) as servers:
            sessions = [requests.Session() for _ in range(args.clients)]
            one = functools.partial(predict_one, servers, sessions, tasks)
            with ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(one, range(min(len(servers) * 2, len(tasks)))))  # warm-up
                runs = []
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    list(pool.map(one, range(len(tasks))))
                    runs.append(time.perf_counter() - started)
        median = statistics.median(runs)
        out[str(replicas)] = {"seconds": round(median, 2), "img_per_s": round(len(tasks) / median, 2)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", nargs="*", help="clicks, switch, throughput (default: all three)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="mobile_sam", help="SAM type for the clicks")
    parser.add_argument("--images", type=int, default=20, help="images per click case")
    parser.add_argument("--rounds", type=int, default=5, help="version switches per setting")
    parser.add_argument(
        "--poll", type=float, default=5.0, help="LABELSTACK_VERSION_POLL_SECONDS for the switch"
    )
    parser.add_argument("--replicas-switch", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--replicas-throughput", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--weights", default="", help="YOLOv8-seg weights for the throughput run")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "scale_out.json"))
    args = parser.parse_args()
    benches = {"clicks": bench_clicks, "switch": bench_switch, "throughput": bench_throughput}
    wanted = args.what or list(benches)
    unknown = sorted(set(wanted) - set(benches))
    if unknown:
        parser.error(f"unknown measurement(s): {', '.join(unknown)}; choose from {', '.join(benches)}")
    work = Path(tempfile.mkdtemp(prefix="labelstack-bench-scale-"))
    results: dict[str, Any] = {"machine": machine(), "device": args.device}
    with ExitStack() as stack:
        redis = RedisServer(work / "redis").start()
        stack.callback(redis.stop)
        for what in wanted:
            results[what] = benches[what](args, work, redis)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
