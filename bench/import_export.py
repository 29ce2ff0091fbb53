"""Import 1,000 images from the GCS emulator (tasks per second), then export 1,000 annotated tasks (seconds).

Starts its own Label Studio and fake-gcs-server.

    python -m bench.import_export --images 1000
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from labelstack_backend import gcs
from labelstack_backend.imagecache import DiskCache
from labelstack_backend.images import ImageLoader
from labelstack_common.labelstudio import LabelStudioClient
from labelstack_tools.datasets.export import ExportOptions, export_project
from labelstack_tools.datasets.importer import import_images
from labelstack_tools.datasets.metadata import parse
from labelstack_tools.localstack.labelstudio import LabelStudioProcess, new_token
from labelstack_tools.localstack.ports import free_port
from tests.support.gcs_emulator import start_emulator

CONFIG = """<View><Header value="$designer"/><Image name="image" value="$image"/>
<PolygonLabels name="garment" toName="image"><Label value="dress"/><Label value="bag"/></PolygonLabels></View>"""

REGION = {
    "from_name": "garment",
    "to_name": "image",
    "type": "polygonlabels",
    "original_width": 320,
    "original_height": 240,
    "value": {"points": [[10, 10], [60, 12], [40, 70]], "polygonlabels": ["dress"]},
}


def jpeg(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (i % 255, (i * 7) % 255, 90)).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=1000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-io-"))
    emulator = start_emulator(work)
    ls_proc = LabelStudioProcess(
        data_dir=work / "ls",
        port=free_port(),
        username="bench@labelstack.dev",
        password="bench-password",
        token=new_token(),
        local_files_root=work / "files",
        extra_env={
            "STORAGE_EMULATOR_HOST": emulator.url,
            "LABEL_STUDIO_RESOLVER_PROXY_GCS_DOWNLOAD_URL": emulator.url
            + "/download/storage/v1/b/{bucket_name}/o/{blob_name}?alt=media",
        },
    )
    ls_proc.start()
    try:
        ls_proc.wait_ready(300)
        ls = LabelStudioClient(ls_proc.url, ls_proc.token, timeout=600)
        bucket = gcs.client().create_bucket("bench")
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda i: bucket.blob(f"a/{i:05d}.jpg").upload_from_string(jpeg(i)), range(args.images)
                )
            )
        meta = parse(
            "m.csv", "file,designer\n" + "".join(f"{i:05d}.jpg,D{i % 13}\n" for i in range(args.images))
        )
        project = ls.sdk.projects.create(title="bench", label_config=CONFIG)

        phases: dict[str, float] = {}
        t = time.perf_counter()
        report = import_images(
            ls,
            project.id,
            "gs://bench/a",
            meta,
            lambda what, _d, _n: phases.setdefault(what, time.perf_counter() - t),
        )
        import_s = time.perf_counter() - t
        assert report.created == args.images and report.updated == args.images, report.lines()
        t = time.perf_counter()
        again = import_images(ls, project.id, "gs://bench/a", meta)
        reimport_s = time.perf_counter() - t
        assert again.created == 0 and again.updated == 0

        tasks = ls.json("GET", f"/api/tasks/?project={project.id}&page_size={args.images}&fields=all")[
            "tasks"
        ]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda task: ls.sdk.annotations.create(id=task["id"], result=[REGION]), tasks))

        loader = ImageLoader(
            max_pixels=10**8, max_bytes=10**8, timeout=30, cache=DiskCache(work / "cache", 0)
        )
        t = time.perf_counter()
        result = export_project(ls, project.id, str(work / "export"), loader, ExportOptions("yolo"))
        export_s = time.perf_counter() - t
        t = time.perf_counter()
        same = export_project(ls, project.id, str(work / "export"), loader, ExportOptions("yolo"))
        reexport_s = time.perf_counter() - t
        assert not same.created and result.manifest["counts"]["images"] == args.images
        t = time.perf_counter()
        export_project(ls, project.id, str(work / "coco"), loader, ExportOptions("coco"))
        coco_s = time.perf_counter() - t
        fig = {
            "images": args.images,
            "import_s": round(import_s, 1),
            "import_tasks_per_s": round(args.images / import_s, 1),
            "reimport_noop_s": round(reimport_s, 1),
            "import_phase_starts_s": {k: round(v, 1) for k, v in phases.items()},
            "export_yolo_s": round(export_s, 1),
            "reexport_unchanged_s": round(reexport_s, 1),
            "export_coco_s": round(coco_s, 1),
        }
        print(json.dumps(fig, indent=2))
    finally:
        ls_proc.stop()
        emulator.stop()
        os.environ.pop("STORAGE_EMULATOR_HOST", None)


if __name__ == "__main__":
    main()
