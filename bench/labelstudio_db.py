"""Label Studio on PostgreSQL against SQLite: ``labelstack import`` of N images from the GCS emulator,
then L labelers at once, each reading a task and writing an annotation, R rounds, against one
Label Studio process (SQLite, PostgreSQL) and two (PostgreSQL only: SQLite refuses replicas).

Starts its own fake-gcs-server, PostgreSQL (loopback, as in the tests) and Label Studios.

    python -m bench.labelstudio_db --images 1000 --labelers 20 --rounds 10
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import requests

from bench.import_export import CONFIG, REGION, jpeg
from labelstack_backend import gcs
from labelstack_common.labelstudio import LabelStudioClient
from labelstack_tools.datasets.importer import import_images
from labelstack_tools.datasets.metadata import parse
from labelstack_tools.localstack.labelstudio import LabelStudioProcess, new_token
from labelstack_tools.localstack.ports import free_port
from tests.support.gcs_emulator import GcsEmulator, start_emulator
from tests.support.postgres import PostgresServer, postgres_bin


@contextmanager
def label_studio(
    work: Path, name: str, token: str, emulator: GcsEmulator, db: dict[str, str]
) -> Iterator[str]:
    proc = LabelStudioProcess(
        data_dir=work / name,
        port=free_port(),
        username="bench@labelstack.dev",
        password="bench-password",
        token=token,
        extra_env={
            **db,
            "STORAGE_EMULATOR_HOST": emulator.url,
            "LABEL_STUDIO_RESOLVER_PROXY_GCS_DOWNLOAD_URL": emulator.download_url_template,
        },
    )
    proc.start()
    try:
        proc.wait_ready(300)
        yield proc.url
    finally:
        proc.stop()


def import_once(url: str, token: str, images: int, metadata: bool) -> tuple[int, float]:
    """A new project, then ``labelstack import`` of the bucket; (project, seconds)."""
    ls = LabelStudioClient(url, token, timeout=600)
    project = ls.sdk.projects.create(title="bench", label_config=CONFIG)
    meta = None
    if metadata:
        meta = parse("m.csv", "file,designer\n" + "".join(f"{i:05d}.jpg,D{i % 13}\n" for i in range(images)))
    t = time.perf_counter()
    report = import_images(ls, project.id, "gs://bench/a", meta)
    took = time.perf_counter() - t
    assert report.created == images, report.lines()
    return int(project.id), took


def labelers(
    urls: list[str], token: str, tasks: list[int], count: int, rounds: int, offset: int
) -> dict[str, Any]:
    """``count`` labelers at once (labeler i on ``urls[i % len(urls)]``), each ``rounds`` times:
    read a task, write an annotation on it."""
    reads: list[float] = []
    writes: list[float] = []

    def labeler(i: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        url = urls[i % len(urls)]
        for r in range(rounds):
            task = tasks[(offset + i + count * r) % len(tasks)]
            t = time.perf_counter()
            session.get(f"{url}/api/tasks/{task}", timeout=120).raise_for_status()
            reads.append(time.perf_counter() - t)
            t = time.perf_counter()
            session.post(
                f"{url}/api/tasks/{task}/annotations/", json={"result": [REGION]}, timeout=120
            ).raise_for_status()
            writes.append(time.perf_counter() - t)

    t = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(labeler, range(count)))
    wall = time.perf_counter() - t

    def ms(values: list[float], q: int) -> float:
        return round(1000 * statistics.quantiles(values, n=100)[q - 1], 0)

    return {
        "processes": len(urls),
        "ops_per_s": round((len(reads) + len(writes)) / wall, 1),
        "read_p50_ms": ms(reads, 50),
        "read_p95_ms": ms(reads, 95),
        "write_p50_ms": ms(writes, 50),
        "write_p95_ms": ms(writes, 95),
    }


def task_ids(url: str, token: str, project: int, images: int) -> list[int]:
    ls = LabelStudioClient(url, token, timeout=600)
    body = ls.json("GET", f"/api/tasks/?project={project}&page_size={images}&fields=all")
    return [int(t["id"]) for t in body["tasks"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--labelers", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--metadata", action="store_true", help="import with a metadata sidecar (slower)")
    args = ap.parse_args()
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL is not installed: install Debian's `postgresql`")
    work = Path(tempfile.mkdtemp(prefix="bench-lsdb-"))
    token = new_token()
    fig: dict[str, Any] = {"images": args.images, "labelers": args.labelers, "rounds": args.rounds}
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        emulator = start_emulator(work)
        stack.callback(emulator.stop)
        stack.callback(os.environ.pop, "STORAGE_EMULATOR_HOST", None)
        bucket = gcs.client().create_bucket("bench")
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda i: bucket.blob(f"a/{i:05d}.jpg").upload_from_string(jpeg(i)), range(args.images)
                )
            )
        pg = PostgresServer(bin_dir).start()
        stack.callback(pg.stop)
        pg.create_database("bench")
        n, rounds = args.labelers, args.rounds

        with label_studio(work, "sqlite", token, emulator, {}) as url:
            project, fig["sqlite_import_s"] = import_once(url, token, args.images, args.metadata)
            tasks = task_ids(url, token, project, args.images)
            fig["sqlite_1"] = labelers([url], token, tasks, n, rounds, 0)
        with label_studio(work, "pg-a", token, emulator, pg.env("bench")) as first:
            project, fig["postgres_import_s"] = import_once(first, token, args.images, args.metadata)
            tasks = task_ids(first, token, project, args.images)
            fig["postgres_1"] = labelers([first], token, tasks, n, rounds, 0)
            # Started after the first: each start creates the admin when missing, and two at once race.
            with label_studio(work, "pg-b", token, emulator, pg.env("bench")) as second:
                fig["postgres_2"] = labelers([first, second], token, tasks, n, rounds, n * rounds)
    fig["import_ratio_postgres_over_sqlite"] = round(fig["postgres_import_s"] / fig["sqlite_import_s"], 2)
    fig["throughput_ratio_postgres_1_over_sqlite_1"] = round(
        fig["postgres_1"]["ops_per_s"] / fig["sqlite_1"]["ops_per_s"], 2
    )
    fig["throughput_ratio_postgres_2_over_postgres_1"] = round(
        fig["postgres_2"]["ops_per_s"] / fig["postgres_1"]["ops_per_s"], 2
    )
    for key in ("sqlite_import_s", "postgres_import_s"):
        fig[key] = round(fig[key], 1)
    print(json.dumps(fig, indent=2))


if __name__ == "__main__":
    main()
