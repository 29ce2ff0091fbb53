"""Bulk pre-labeling throughput, end to end, against /predict and the model alone.

A real Label Studio 1.23 holds N tasks (640x480 images in a local-files storage); the real
backend runs under gunicorn with a YOLOv8n-seg built from config and biased to find about 5
objects per image (``tests/support/busy_model.py``). Three figures per image, on the same images:

* ``bulk``: ``POST /prelabel`` until the run is done (from the backend's own start and end
  times): paging the tasks through label-studio-sdk, fetching each image from Label Studio,
  predicting in the backend's batches, and writing each batch back through the
  import-predictions endpoint;
* ``predict``: one ``POST /predict`` of every task, as Label Studio's "Retrieve predictions"
  sends it (images fetched from Label Studio, nothing written);
* ``model alone``: ultralytics on the decoded images, in the backend's batches.

Each repeat pre-labels a fresh project over the same images; ``noop`` is a second run over a
project already done (it pages through the tasks and writes nothing).

    python -m bench.prelabel --tasks 24 --repeats 2                       # CPU
    python -m bench.prelabel --ls-url http://127.0.0.1:8080 --ls-token T  # an existing Label Studio
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))  # ultralytics would set 1
os.environ.setdefault("YOLO_OFFLINE", "1")

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import requests
from PIL import Image

from bench.predict_throughput import model_alone, timed_s
from labelstack_common.labelstudio import LabelStudioClient
from tests.support.backend import run_backend
from tests.support.busy_model import CONF, busy_model
from tests.support.fixtures import running_label_studio

CONFIG = (
    '<View><Image name="image" value="$image"/><PolygonLabels name="p" toName="image">'
    '<Label value="person"/></PolygonLabels></View>'
)


@contextmanager
def label_studio(args: argparse.Namespace, work: Path) -> Iterator[Any]:
    if args.ls_url:
        yield SimpleNamespace(
            url=args.ls_url, token=args.ls_token, client=LabelStudioClient(args.ls_url, args.ls_token),
            files_root=Path(args.ls_files_root),
        )  # fmt: skip
        return
    (work / "label-studio").mkdir()
    with running_label_studio(work / "label-studio") as ls:
        yield ls


def project_over(ls: Any, folder: Path, n: int) -> int:
    sdk = ls.client.sdk
    project = sdk.projects.create(title=f"bench prelabel {uuid.uuid4().hex[:6]}", label_config=CONFIG)
    storage = sdk.import_storage.local.create(
        project=project.id, path=str(folder), regex_filter=r".*\.jpg", use_blob_urls=True, title="bench"
    )
    sdk.import_storage.local.sync(id=storage.id)
    assert sum(len(p.tasks) for p in ls.client.task_pages(project.id)) == n
    return int(project.id)


def bulk_seconds(url: str, project: int) -> dict[str, Any]:
    """Start a run and wait for it; the backend's own start and end times."""
    requests.post(f"{url}/prelabel?project={project}", timeout=30).raise_for_status()
    while True:
        run: dict[str, Any] = requests.get(f"{url}/prelabel?project={project}", timeout=30).json()["prelabel"]
        if run["status"] in ("done", "failed") and not run["pending"]:
            assert run["status"] == "done" and run["failed"] == 0, run
            run["seconds"] = run["finished_at"] - run["started_at"]
            return run
        time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=0, help="images per forward pass; 0: the backend's default")
    ap.add_argument(
        "--runtime", default="torch", help="the backend's LABELSTACK_RUNTIME (torch: as measured)"
    )
    ap.add_argument("--ls-url", default="")
    ap.add_argument("--ls-token", default="")
    ap.add_argument("--ls-files-root", default="", help="LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT of --ls-url")
    ap.add_argument("--out", default="")
    args = ap.parse_args()

    from labelstack_backend import runtime
    from labelstack_backend.settings import Settings

    device = runtime.resolve_device(args.device)
    args.batch = args.batch or Settings.from_env({}).batch_for(device)
    work = Path(tempfile.mkdtemp(prefix="bench-prelabel-"))
    with label_studio(args, work) as ls:
        folder = ls.files_root / f"bench-{uuid.uuid4().hex[:8]}"
        folder.mkdir(parents=True)
        rng = np.random.default_rng(0)
        pil = []
        for i in range(args.tasks):
            img = Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))
            img.save(folder / f"{i:03d}.jpg", quality=90)
            pil.append(Image.open(folder / f"{i:03d}.jpg").convert("RGB"))
        weights = busy_model(work / "busy-5.pt", 5, imgsz=args.imgsz, calibration=pil[:4])
        projects = [project_over(ls, folder, args.tasks) for _ in range(args.repeats + 1)]
        env = {
            "LABELSTACK_SEG_WEIGHTS": str(weights),
            "LABELSTACK_IMGSZ": str(args.imgsz),
            "LABELSTACK_BATCH_SIZE": str(args.batch),
            "LABELSTACK_DEVICE": args.device,
            "LABELSTACK_RUNTIME": args.runtime,
            "LABELSTACK_SCORE_THRESHOLD": str(CONF),
            "LABELSTACK_IMAGE_CACHE_BYTES": "0",  # first sight of every image
            "LABEL_STUDIO_URL": ls.url,
            "LABEL_STUDIO_API_KEY": ls.token,
            "WORKERS": "1",
        }
        alone = model_alone(str(weights), pil, args)
        with run_backend(work / "backend", env, ready_timeout=600) as backend:
            tasks = [t.as_task() for p in ls.client.task_pages(projects[0]) for t in p.tasks]

            def predict() -> None:
                body = {"tasks": tasks, "label_config": CONFIG, "project": f"{projects[0]}.1"}
                r = requests.post(f"{backend.url}/predict", json=body, timeout=600)
                r.raise_for_status()
                assert all("result" in x for x in r.json()["results"])

            predict()  # warm up the backend and the model alone
            alone(args.batch)
            bulk, via_predict, model = [], [], []
            for k in range(args.repeats):
                bulk.append(bulk_seconds(backend.url, projects[k + 1]))
                via_predict.append(timed_s(predict))
                model.append(timed_s(lambda: alone(args.batch)))
            noop = bulk_seconds(backend.url, projects[1])
            assert noop["written"] == 0
    n = args.tasks
    bulk_s = statistics.median(b["seconds"] for b in bulk)
    figures = {
        "device": device,
        "tasks": n,
        "imgsz": args.imgsz,
        "batch": args.batch,
        "repeats": args.repeats,
        "bulk_ms_per_image": 1000 * bulk_s / n,
        "predict_ms_per_image": 1000 * statistics.median(via_predict) / n,
        "model_alone_ms_per_image": 1000 * statistics.median(model) / n,
        "bulk_vs_model": statistics.median(model) / bulk_s,
        "bulk_vs_predict": statistics.median(via_predict) / bulk_s,
        "bulk_vs_predict_per_repeat": [
            round(v / b["seconds"], 3) for v, b in zip(via_predict, bulk, strict=True)
        ],
        "bulk_s_per_repeat": [round(b["seconds"], 2) for b in bulk],
        "predict_s_per_repeat": [round(v, 2) for v in via_predict],
        "model_alone_s_per_repeat": [round(m, 2) for m in model],
        "bulk_predict_s_per_repeat": [round(b["predict_s"], 2) for b in bulk],
        "bulk_write_s_per_repeat": [round(b["write_s"], 2) for b in bulk],
        "noop_run_s": noop["seconds"],
        "written_per_run": [b["written"] for b in bulk],
    }
    print(json.dumps(figures, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
