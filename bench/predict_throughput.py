"""Predict throughput: one request of N tasks versus N requests of one task, with few and
with many objects per image, against the model alone; and where a /predict spends its time.

Runs the real backend under gunicorn with images served over local HTTP, as Label
Studio would send them. The models are YOLOv8n-seg built from config with scores biased
so that they find about 5 and about 60 objects per image (``tests/support/busy_model.py``:
a fixed seed, calibrated on the first images of the run). The reference is the model
alone on the same decoded images: ultralytics' own predictor (forward, NMS, its mask
processing) and its own mask-to-polygon (``masks.xy``), in the backend's batches and one
image at a time.

    python -m bench.predict_throughput --tasks 16 --repeats 3            # CPU, 5 and 60 objects
    python -m bench.predict_throughput --weights yolov8l-seg.pt --device cuda:0   # real weights
    python -m bench.predict_throughput --zero-shot --tasks 8 --repeats 2     # YOLOE-seg vs YOLOv8n-seg
    python -m bench.predict_throughput --runtimes torch,onnx,openvino --tasks 32 --objects 5  # exports
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))  # ultralytics would set 1
os.environ.setdefault("YOLO_OFFLINE", "1")

import argparse
import contextlib
import functools
import http.server
import io
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import requests
from PIL import Image

from tests.support.backend import run_backend
from tests.support.busy_model import CONF, busy_model

CONFIG = (
    '<View><Image name="image" value="$image"/><PolygonLabels name="p" toName="image">'
    '<Label value="person"/></PolygonLabels></View>'
)
BRUSH_CONFIG = CONFIG.replace("PolygonLabels", "BrushLabels")


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def serve(folder: Path) -> str:
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def timed_s(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def model_alone(weights: str, pil: list[Image.Image], args: argparse.Namespace) -> Callable[[int], None]:
    """ultralytics alone on decoded images, in batches of the given size: forward, NMS,
    its masks and its polygons (``masks.xy``, as Label Studio's example backend reads them)."""
    from ultralytics import YOLO

    from labelstack_backend import runtime

    yolo = YOLO(weights, task="segment")
    device = runtime.resolve_device(args.device)

    def run(batch: int) -> None:
        for start in range(0, len(pil), batch):
            results = yolo.predict(
                pil[start : start + batch], imgsz=args.imgsz, conf=CONF, device=device, verbose=False
            )
            for r in results:
                if r.masks is not None:
                    r.masks.xy  # noqa: B018

    return run


def throughput(
    work: Path, weights: str, tasks: list[dict[str, Any]], pil: list[Image.Image], args: argparse.Namespace
) -> dict[str, float]:
    """Seconds for one request of every task and for one request per task, and for the model
    alone in the backend's batches and one image at a time. The four run in turn, repeat after
    repeat, so that a neighbour's load on the machine weighs on all of them alike."""
    env = {
        "LABELSTACK_SEG_WEIGHTS": weights,
        "LABELSTACK_IMGSZ": str(args.imgsz),
        "LABELSTACK_BATCH_SIZE": str(args.batch),
        "LABELSTACK_DEVICE": args.device,
        "LABELSTACK_SCORE_THRESHOLD": str(CONF),
        "LABELSTACK_IMAGE_CACHE_BYTES": "0",  # measure fetching too, as on first sight of a task
    }
    alone = model_alone(weights, pil, args)
    with run_backend(work, env, ready_timeout=600) as backend:
        session = requests.Session()

        def post(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
            r = session.post(
                f"{backend.url}/predict", json={"tasks": batch, "label_config": CONFIG}, timeout=600
            )
            r.raise_for_status()
            results: list[dict[str, Any]] = r.json()["results"]
            assert len(results) == len(batch) and all("result" in x for x in results), results
            return results

        runs: dict[str, Callable[[], object]] = {
            "one_request": lambda: post(tasks),
            "model_alone_batched": lambda: alone(args.batch),
            "one_per_request": lambda: [post([t]) for t in tasks],
            "model_alone_single": lambda: alone(1),
        }
        counts = [len(x["result"]) for x in post(tasks)]
        for run in runs.values():
            run()  # warm up
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():
                times[name].append(timed_s(run))
    out = {name: statistics.median(t) for name, t in times.items()}
    out["regions_per_image"] = statistics.median(counts)
    return out


ZERO_SHOT_MODELS = {
    "yolov8n-seg": {"LABELSTACK_SEG_MODEL_CONFIG": "yolov8n-seg.yaml"},
    "yoloe-11s-seg": {"LABELSTACK_SEG_MODEL": "yoloe", "LABELSTACK_SEG_MODEL_CONFIG": "yoloe-11s-seg.yaml"},
}


def zero_shot(
    work: Path, tasks: list[dict[str, Any]], args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    """Images/s of one /predict of every task, YOLOE-seg (classes from the label config) against
    YOLOv8n-seg, both random (demo) and keeping their 5 best objects, at batch 1 and the default."""
    out: dict[str, dict[str, float]] = {}
    for name, model_env in ZERO_SHOT_MODELS.items():
        for batch in (1, args.batch):
            env = {
                **model_env,
                "LABELSTACK_DEMO_MODEL": "1",
                "LABELSTACK_BATCH_SIZE": str(batch),
                "LABELSTACK_IMGSZ": str(args.imgsz),
                "LABELSTACK_DEVICE": args.device,
                "LABELSTACK_SCORE_THRESHOLD": "0.0001",
                "LABELSTACK_MAX_DETECTIONS": "5",
            }
            with run_backend(work / f"{name}-{batch}", env, ready_timeout=600) as backend:
                body = {"tasks": tasks, "label_config": CONFIG}

                def post(url: str = backend.url, body: dict[str, Any] = body) -> None:
                    requests.post(f"{url}/predict", json=body, timeout=600).raise_for_status()

                post()  # warm up (and, for YOLOE, the label set's classes)
                secs = statistics.median(timed_s(post) for _ in range(args.repeats))
            out.setdefault(name, {})[f"batch_{batch}_img_per_s"] = round(len(tasks) / secs, 2)
            print(f"{name}, batch {batch}: {len(tasks) / secs:.2f} images/s", flush=True)
    return out


def served_by(log_path: Path, runtime: str, timeout: float) -> None:
    """Until the backend's log says its model is served by ``runtime`` (its background export)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if f"now served by {runtime}" in text:
            return
        if "torch serves, not" in text:
            raise RuntimeError(f"the {runtime} export failed; see {log_path}")
        time.sleep(0.5)
    raise TimeoutError(f"no {runtime} export after {timeout:.0f}s; see {log_path}")


def runtimes(
    work: Path, weights: str, tasks: list[dict[str, Any]], args: argparse.Namespace
) -> dict[str, float]:
    """Images/s of one /predict of every task for each LABELSTACK_RUNTIME, on the same weights and
    images: one backend per runtime, started together, measured in turn, repeat after repeat."""
    names = args.runtimes.split(",")
    times: dict[str, list[float]] = {name: [] for name in names}
    with contextlib.ExitStack() as stack:
        urls = {}
        for name in names:
            env = {
                "LABELSTACK_SEG_WEIGHTS": weights,
                "LABELSTACK_RUNTIME": name,
                "LABELSTACK_IMGSZ": str(args.imgsz),
                "LABELSTACK_BATCH_SIZE": str(args.batch),
                "LABELSTACK_DEVICE": args.device,
                "LABELSTACK_SCORE_THRESHOLD": str(CONF),
            }
            backend = stack.enter_context(run_backend(work / f"runtime-{name}", env, ready_timeout=600))
            if name != "torch":
                served_by(backend.log_path, name, 600)
            urls[name] = backend.url
        body = {"tasks": tasks, "label_config": CONFIG}

        def post(url: str) -> None:
            requests.post(f"{url}/predict", json=body, timeout=600).raise_for_status()

        for url in urls.values():
            post(url)  # warm up, and the image cache
        for _ in range(args.repeats):
            for name, url in urls.items():
                times[name].append(timed_s(lambda u=url: post(u)))  # type: ignore[misc]
    out = {f"{name}_img_per_s": round(len(tasks) / statistics.median(t), 2) for name, t in times.items()}
    if "torch" in times:
        for name in names:
            out[f"{name}_vs_torch"] = round(
                statistics.median(times["torch"]) / statistics.median(times[name]), 2
            )
    return out


def profile(weights: str, jpegs: list[bytes], args: argparse.Namespace) -> dict[str, float]:
    """Milliseconds per image in each step of the backend's /predict, in process, one batch at a time."""
    from labelstack_backend import runtime
    from labelstack_backend.geometry import fitted_size
    from labelstack_backend.images import decode_image
    from labelstack_backend.labelconfig import build_label_map, parse_label_config
    from labelstack_backend.regions import detections_to_regions, prediction
    from labelstack_backend.yolo.model import SegmentationModel, raw_detections, scaled_bgr

    device = runtime.resolve_device(args.device)
    model = SegmentationModel.load(weights, "bench", device=device, half=False, imgsz=args.imgsz)
    maps = {
        form: build_label_map(parse_label_config(cfg).controls, model.names)
        for form, cfg in (("polygons", CONFIG), ("RLE", BRUSH_CONFIG))
    }
    batch = args.batch or 4
    steps: dict[str, list[float]] = {}

    def timed(step: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        out = fn()
        steps.setdefault(step, []).append(time.perf_counter() - t)
        return out

    for _ in range(args.repeats):
        for start in range(0, len(jpegs), batch):
            chunk = jpegs[start : start + batch]
            images = timed("decode", lambda c=chunk: [decode_image(b, 10**9) for b in c])
            arrays = timed(
                "scale",
                lambda i=images: [scaled_bgr(im, fitted_size((im.height, im.width), args.imgsz)) for im in i],
            )
            raws = model.forward(arrays, conf=CONF, max_det=300)
            for step, key in (("letterbox", "preprocess"), ("forward", "inference"), ("NMS", "postprocess")):
                steps.setdefault(step, []).append(sum(r.speed[key] for r in raws) / 1000)
            dets = timed(
                "masks",
                lambda r=raws, i=images: [
                    raw_detections(x, (im.height, im.width)) for x, im in zip(r, i, strict=True)
                ],
            )
            for form, label_map in maps.items():
                regions = timed(
                    form,
                    lambda d=dets, i=images, m=label_map: [
                        detections_to_regions(
                            x, m, width=im.width, height=im.height, threshold=CONF, tolerance=1.0, id_seed="b"
                        )
                        for x, im in zip(d, i, strict=True)
                    ],
                )
                timed(f"JSON ({form})", lambda r=regions: json.dumps([prediction(x, "v") for x in r]))
    images_seen = len(jpegs) * args.repeats
    ms = {step: 1000 * sum(v) / images_seen for step, v in steps.items()}
    ms["letterbox"] += ms.pop("scale")
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--objects", default="5,60", help="objects per image of the biased models")
    ap.add_argument("--weights", default="", help="a YOLOv8-seg .pt instead of the biased models")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=0, help="images per forward pass; 0: the backend's default")
    ap.add_argument("--out", default="", help="write the figures as JSON here")
    ap.add_argument("--zero-shot", action="store_true", help="YOLOE-seg against YOLOv8n-seg only")
    ap.add_argument(
        "--runtimes", default="", help="compare these LABELSTACK_RUNTIMEs only, e.g. torch,onnx,openvino"
    )
    args = ap.parse_args()

    from labelstack_backend import runtime
    from labelstack_backend.settings import Settings

    device = runtime.resolve_device(args.device)
    batch = args.batch or Settings.from_env({}).batch_for(device)
    work = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    images = work / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    jpegs = []
    for i in range(args.tasks):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
        jpegs.append(buf.getvalue())
        (images / f"{i}.jpg").write_bytes(jpegs[-1])
    pil = [Image.open(io.BytesIO(b)).convert("RGB") for b in jpegs]
    base = serve(images)
    tasks = [{"id": i, "data": {"image": f"{base}/{i}.jpg"}} for i in range(args.tasks)]

    if args.zero_shot:
        args.batch = batch
        found = {"device": device, "tasks": args.tasks, "imgsz": args.imgsz, **zero_shot(work, tasks, args)}
        if args.out:
            Path(args.out).write_text(json.dumps(found, indent=2))
        return
    cases = {"weights": args.weights} if args.weights else {}
    for n in (int(x) for x in args.objects.split(",")) if not args.weights else ():
        path = work / f"busy-{n}.pt"
        busy_model(path, n, imgsz=args.imgsz, calibration=pil[:4])
        cases[f"{n} objects"] = str(path)

    figures: dict[str, Any] = {"device": device, "tasks": args.tasks, "imgsz": args.imgsz, "batch": batch}
    args.batch = batch
    n = args.tasks
    for name, weights in cases.items():
        if args.runtimes:
            figures[name] = runtimes(work / name.replace(" ", "-"), weights, tasks, args)
            print(json.dumps({name: figures[name]}, indent=2), flush=True)
            continue
        secs = throughput(work / name.replace(" ", "-"), weights, tasks, pil, args)
        figures[name] = {
            "regions_per_image": secs["regions_per_image"],
            "one_request_img_per_s": n / secs["one_request"],
            "model_alone_batched_img_per_s": n / secs["model_alone_batched"],
            "vs_model_batched": secs["model_alone_batched"] / secs["one_request"],
            "one_per_request_img_per_s": n / secs["one_per_request"],
            "model_alone_single_img_per_s": n / secs["model_alone_single"],
            "vs_model_single": secs["model_alone_single"] / secs["one_per_request"],
            "profile_ms_per_image": profile(weights, jpegs, args),
        }
        print(json.dumps({name: figures[name]}, indent=2), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
