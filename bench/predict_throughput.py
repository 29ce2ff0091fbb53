"""Predict throughput: one request of N tasks versus N requests of one task.

Runs the real backend under gunicorn with images served over local HTTP, as Label
Studio would send them. Also measures the model's own batched throughput (no HTTP,
images already decoded) for comparison.

    python -m bench.predict_throughput --tasks 32 --repeats 5
    python -m bench.predict_throughput --weights yolov8l-seg.pt --device cuda:0   # on a GPU
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests
from PIL import Image

from tests.support.backend import run_backend

CONFIG = (
    '<View><Image name="image" value="$image"/><PolygonLabels name="p" toName="image">'
    '<Label value="person"/></PolygonLabels></View>'
)


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def serve(folder: Path) -> str:
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--weights", default="", help="a YOLOv8-seg .pt; default: random yolov8n-seg from config")
    ap.add_argument("--config", default="yolov8n-seg.yaml", help="model config for the random model")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=0, help="images per forward pass; 0: the backend's default")
    ap.add_argument("--out", default="", help="write the figures as JSON here")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    images = work / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(args.tasks):
        arr = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
        Image.fromarray(arr).save(images / f"{i}.jpg", quality=90)
    base = serve(images)
    tasks = [{"id": i, "data": {"image": f"{base}/{i}.jpg"}} for i in range(args.tasks)]
    env = {
        "LABELSTACK_IMGSZ": str(args.imgsz),
        "LABELSTACK_BATCH_SIZE": str(args.batch),
        "LABELSTACK_DEVICE": args.device,
        "LABELSTACK_SCORE_THRESHOLD": "0.25",
        "LABELSTACK_IMAGE_CACHE_BYTES": "0",  # measure fetching too, as on first sight of a task
        "YOLO_OFFLINE": "1",
    }
    if args.weights:
        env["LABELSTACK_SEG_WEIGHTS"] = args.weights
    else:
        env.update({"LABELSTACK_DEMO_MODEL": "1", "LABELSTACK_SEG_MODEL_CONFIG": args.config})

    with run_backend(work, env, ready_timeout=600) as backend:
        session = requests.Session()

        def batched() -> float:
            t = time.perf_counter()
            r = session.post(
                f"{backend.url}/predict", json={"tasks": tasks, "label_config": CONFIG}, timeout=600
            )
            r.raise_for_status()
            assert len(r.json()["results"]) == len(tasks)
            return time.perf_counter() - t

        def one_by_one() -> float:
            t = time.perf_counter()
            for task in tasks:
                r = session.post(
                    f"{backend.url}/predict", json={"tasks": [task], "label_config": CONFIG}, timeout=600
                )
                r.raise_for_status()
            return time.perf_counter() - t

        batched()  # warm up (first CUDA kernels, allocator)
        one_by_one()
        b = [batched() for _ in range(args.repeats)]
        s = [one_by_one() for _ in range(args.repeats)]

    # The model alone: decoded images, one batched call, no HTTP, no regions.
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from labelstack_backend import runtime
    from labelstack_backend.yolo.model import SegmentationModel

    device = runtime.resolve_device(args.device)
    source = args.weights or args.config
    model = SegmentationModel.load(
        source, "bench", device=device, half=runtime.use_half(device, None), imgsz=args.imgsz
    )
    pil = [Image.open(images / f"{i}.jpg").convert("RGB") for i in range(args.tasks)]
    batch = args.batch or 32  # the model's own best case: one big batch
    model.detect(pil, conf=0.25, batch_size=batch)
    m = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        model.detect(pil, conf=0.25, batch_size=batch)
        m.append(time.perf_counter() - t)

    n = args.tasks
    fig = {
        "device": device,
        "model": source,
        "tasks": n,
        "imgsz": args.imgsz,
        "batched_request_s": statistics.median(b),
        "one_per_request_s": statistics.median(s),
        "model_only_s": statistics.median(m),
    }
    fig["batched_img_per_s"] = n / fig["batched_request_s"]
    fig["one_per_request_img_per_s"] = n / fig["one_per_request_s"]
    fig["model_only_img_per_s"] = n / fig["model_only_s"]
    fig["speedup_batched_vs_single"] = fig["one_per_request_s"] / fig["batched_request_s"]
    fig["end_to_end_vs_model"] = fig["batched_img_per_s"] / fig["model_only_img_per_s"]
    print(json.dumps(fig, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(fig, indent=2))


if __name__ == "__main__":
    main()
