"""Interactive SAM click latency, end to end through HTTP.

Starts the real backend under gunicorn (as Label Studio reaches it) and times
POST /predict with a keypoint context, the way Label Studio forwards a smart click:

* cold:     the first click on an image (fetch + encode + decode + RLE + HTTP);
* warm:     later clicks on cached images (decode + RLE + HTTP);
* baseline: the warm clicks again on a second backend with the cache off
            (LABELSTACK_SAM_CACHE_BYTES=0), i.e. an uncached backend that
            recomputes the embedding on every click; its clicks alternate with
            the cold ones, so both see the same load on a shared machine;
* switch:   rounds over N images that all fit in the cache; the encoder-call
            counter in /metrics must not move.

CPU here (random weights, so no checkpoint is needed):
    .venvs/backend/bin/python bench/sam_click.py --model mobile_sam
SAM 2.1 (t) against MobileSAM and SAM vit_b, one after the other, a few clicks each:
    .venvs/backend/bin/python bench/sam_click.py --model sam2.1_t,mobile_sam,vit_b \
        --clicks 5 --switch 5 --rounds 1 --skip-baseline
The click decoder on torch against ONNX Runtime (LABELSTACK_RUNTIME), one after the other:
    .venvs/backend/bin/python bench/sam_click.py --model mobile_sam,vit_b --runtime torch,onnx \
        --clicks 20 --switch 5 --rounds 1 --skip-baseline
A GPU later:
    python bench/sam_click.py --device cuda --model vit_h --checkpoint /weights/sam_vit_h_4b8939.pth

Results: a table on stdout and JSON in bench/results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "backend"), str(REPO / "operator")]

from tests.support.backend import BackendServer, run_backend
from tests.support.sam import CONFIG, keypoint, metric, write_image


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(ms: list[float]) -> dict[str, float]:
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 0.5), 1),
        "p95_ms": round(percentile(ms, 0.95), 1),
        "mean_ms": round(statistics.fmean(ms), 1),
    }


def click(
    session: requests.Session,
    server: BackendServer,
    image: Path,
    xy: tuple[float, float],
    size: tuple[int, int],
) -> float:
    body = {
        "tasks": [{"id": 1, "data": {"image": str(image)}}],
        "project": "1.1700000000",
        "label_config": CONFIG,
        "params": {"context": {"result": [keypoint(*xy, *size)]}},
    }
    started = time.perf_counter()
    resp = session.post(f"{server.url}/predict", json=body, timeout=600)
    elapsed = (time.perf_counter() - started) * 1000
    resp.raise_for_status()
    if "results" not in resp.json():
        raise RuntimeError(f"unexpected answer: {resp.text[:300]}")
    return elapsed


def encoder_calls(server: BackendServer) -> float:
    return metric(
        requests.get(f"{server.url}/metrics", timeout=30).text, "labelstack_sam_encoder_calls_total"
    )


def backend_env(args: argparse.Namespace, cache_bytes: int) -> dict[str, str]:
    env = {
        "LABELSTACK_PREDICTOR": "sam",
        "LABELSTACK_SAM_MODEL_TYPE": args.model,
        "LABELSTACK_DEVICE": args.device,
        "LABELSTACK_SAM_CACHE_BYTES": str(cache_bytes),
        "LABELSTACK_RUNTIME": args.runtime,
        "OMP_NUM_THREADS": str(args.torch_threads),
        "WORKERS": "1",
        "LOG_LEVEL": "WARNING",
        "YOLO_OFFLINE": "1",
    }
    if args.bf16 is not None:
        env["LABELSTACK_SAM_BF16"] = args.bf16
    if args.checkpoint:
        env["LABELSTACK_SAM_CHECKPOINT"] = args.checkpoint
    else:
        env["LABELSTACK_DEMO_MODEL"] = "1"
    return env


def wait_for_file(folder: Path, name: str, timeout: float) -> None:
    """Until a file ``name`` lies under ``folder``, and a few seconds more for it to load."""
    deadline = time.monotonic() + timeout
    while not any(folder.rglob(name)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {name} under {folder} after {timeout:.0f}s")
        time.sleep(1)
    time.sleep(5)


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"cpus": os.cpu_count(), "platform": platform.platform()}
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
        info["cpu"] = model
    except (OSError, StopIteration):
        pass
    try:
        info["gpu"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        info["gpu"] = None
    return info


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        default="mobile_sam",
        help="vit_h, vit_l, vit_b, mobile_sam, sam2_t ... sam2.1_l or tiny; several, comma-separated, "
        "are measured one after the other (--checkpoint then applies to none)",
    )
    parser.add_argument("--checkpoint", default="", help="weights file; random weights without one")
    parser.add_argument(
        "--runtime", default="auto", help="LABELSTACK_RUNTIME; several, comma-separated, one after the other"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1...")
    parser.add_argument(
        "--bf16", choices=["0", "1"], default=None, help="encoder bf16 (default: on for CUDA)"
    )
    parser.add_argument(
        "--clicks", type=int, default=50, help="cold clicks (one per image), warm and baseline clicks"
    )
    parser.add_argument("--warm", type=int, default=0, help="warm clicks; 0: as many as --clicks")
    parser.add_argument("--switch", type=int, default=20, help="images in the switching test")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the switching images")
    parser.add_argument("--size", default="1024x768", help="image size WxH")
    parser.add_argument("--torch-threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cache-bytes", type=int, default=2 * 1024**3)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "sam_click.json"))
    args = parser.parse_args()
    models = [m.strip() for m in args.model.split(",") if m.strip()]
    runtimes = [r.strip() for r in args.runtime.split(",") if r.strip()]
    if len(models) == 1 and len(runtimes) == 1:
        results = bench_one(args)
        report(results, Path(args.out))
        return 0
    if args.checkpoint and len(models) > 1:
        parser.error("--checkpoint names one model's weights: measure one --model with it")
    runs = [
        bench_one(argparse.Namespace(**{**vars(args), "model": m, "runtime": r}))
        for m in models
        for r in runtimes
    ]
    for run in runs:
        report(run, Path(args.out).with_name(f"sam_click_{run['model']}_{run['runtime']}.json"))
    print("\n| model | runtime | cold p50 ms | warm p50 ms | warm p95 ms | warm / cold | encoder mean ms |")
    print("|---|---|---|---|---|---|---|")
    for run in runs:
        print(
            f"| {run['model']} | {run['runtime']} | {run['cold']['p50_ms']} | {run['warm']['p50_ms']} | "
            f"{run['warm']['p95_ms']} | {run['warm_over_cold_p50']:.2%} | {run['encoder_mean_ms']} |"
        )
    return 0


def bench_one(args: argparse.Namespace) -> dict[str, Any]:
    """Cold, warm, baseline and switching clicks of one model (``args.model``)."""
    width, height = (int(v) for v in args.size.lower().split("x"))
    rng = random.Random(0)
    n_images = max(args.clicks, args.switch)
    workdir = Path(tempfile.mkdtemp(prefix="labelstack-bench-sam-"))
    images = [write_image(workdir / "img" / f"{i:03d}.jpg", (width, height), seed=i) for i in range(n_images)]
    spare = write_image(workdir / "img" / "warmup.jpg", (width, height), seed=999)
    points = [(rng.uniform(5, 95), rng.uniform(5, 95)) for _ in range(args.clicks)]
    warm_plan = [
        (rng.randrange(args.clicks), points[i % args.clicks]) for i in range(args.warm or args.clicks)
    ]
    size = (width, height)
    results: dict[str, Any] = {
        "model": args.model,
        "runtime": args.runtime,
        "weights": args.checkpoint or "random",
        "device": args.device,
        "image": args.size,
        "torch_threads": args.torch_threads,
        "machine": machine(),
    }

    print(
        f"{args.model} on {args.device}, {n_images} images {args.size}; starting the backends...", flush=True
    )
    with ExitStack() as stack:
        cached = stack.enter_context(
            run_backend(workdir / "cached", backend_env(args, args.cache_bytes), ready_timeout=900)
        )
        uncached = (
            None
            if args.skip_baseline
            else stack.enter_context(
                run_backend(workdir / "uncached", backend_env(args, 0), ready_timeout=900)
            )
        )
        if args.runtime in ("auto", "openvino"):  # SAM's OpenVINO encoder is made in the background
            wait_for_file(workdir / "cached" / "models" / "exports", "encoder.xml", timeout=900)
        session = requests.Session()
        for server in filter(None, (cached, uncached)):
            click(session, server, spare, (50, 50), size)  # warm-up: lazy imports, first allocations
        # Cold and baseline clicks alternate, so that both see the same load on a shared machine.
        cold: list[float] = []
        baseline: list[float] = []
        for n in range(args.clicks):
            cold.append(click(session, cached, images[n], points[n], size))
            line = f"  {n + 1}/{args.clicks}: cold {cold[-1]:.0f} ms"
            if uncached is not None:
                i, xy = warm_plan[n % len(warm_plan)]
                baseline.append(click(session, uncached, images[i], xy, size))
                line += f", baseline {baseline[-1]:.0f} ms"
            print(line, flush=True)
        for n in range(args.clicks, n_images):  # the rest of the switching set, untimed
            click(session, cached, images[n], (50, 50), size)
        warm = [click(session, cached, images[i], xy, size) for i, xy in warm_plan]
        before = encoder_calls(cached)
        switch = [
            click(session, cached, images[i], points[(r + i) % len(points)], size)
            for r in range(args.rounds)
            for i in range(args.switch)
        ]
        recomputed = encoder_calls(cached) - before
        text = requests.get(f"{cached.url}/metrics", timeout=30).text
        encodes = metric(text, "labelstack_sam_encoder_seconds_count")
        results["encoder_mean_ms"] = round(
            metric(text, "labelstack_sam_encoder_seconds_sum") / max(encodes, 1) * 1000, 1
        )
        results["cold"] = summary(cold)
        results["warm"] = summary(warm)
        if baseline:
            results["baseline"] = summary(baseline)
        results["switch"] = {
            "images": args.switch,
            "rounds": args.rounds,
            "clicks": len(switch),
            "encoder_calls": int(recomputed),
            **summary(switch),
        }

    results["warm_over_cold_p50"] = round(results["warm"]["p50_ms"] / results["cold"]["p50_ms"], 4)
    if "baseline" in results:
        results["warm_over_baseline_p50"] = round(
            results["warm"]["p50_ms"] / results["baseline"]["p50_ms"], 4
        )
        results["speedup_p50"] = round(results["baseline"]["p50_ms"] / results["warm"]["p50_ms"], 1)
    return results


def report(results: dict[str, Any], out: Path) -> None:
    """The JSON file and the table of one model's run."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print()
    print("| clicks | n | p50 ms | p95 ms |")
    print("|---|---|---|---|")
    for key in ("cold", "warm", "baseline", "switch"):
        if key in results:
            r = results[key]
            print(f"| {key} | {r['n']} | {r['p50_ms']} | {r['p95_ms']} |")
    print(f"\nwarm / cold (p50): {results['warm_over_cold_p50']:.2%}")
    if "speedup_p50" in results:
        print(f"baseline / warm (p50): {results['speedup_p50']}x")
    switch = results["switch"]
    print(f"switching between {switch['images']} cached images: {switch['encoder_calls']} encoder calls")
    print(f"encoder alone (server side, mean): {results['encoder_mean_ms']} ms")
    print(f"\n{out}")


if __name__ == "__main__":
    raise SystemExit(main())
