"""``labelstack import``: images from a bucket or a folder into a project, once, with their metadata."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from labelstack_backend import gcs
from labelstack_tools.cli.common import (
    CommandError,
    add_label_studio_options,
    console,
    label_studio,
    resolve_project,
)
from labelstack_tools.datasets import metadata as sidecar
from labelstack_tools.datasets.importer import import_images

HELP = (
    "import images from gs://bucket/prefix or a folder, with a metadata sidecar; re-runs add only new images"
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "import",
        help=HELP,
        description=HELP + ". The images come in through a Label Studio storage on the source, so neither a "
        "re-run nor Label Studio's Sync button duplicates a task. Folders must lie inside Label Studio's "
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT.",
    )
    add_label_studio_options(p)
    p.add_argument("source", help="gs://bucket/prefix or a local folder")
    p.add_argument("--metadata", help="CSV or JSON Lines file (local or gs://), one row per image")
    p.add_argument(
        "--key-column", help="the sidecar column holding the file name (default: file, filename, ...)"
    )
    p.set_defaults(run=run)


def _read(path: str) -> str:
    if path.startswith("gs://"):
        bucket, key = gcs.parse_gs_uri(path)
        return str(gcs.client().bucket(bucket).blob(key).download_as_text())
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CommandError(f"cannot read the metadata file {path}: {exc.strerror}") from None


def run(args: argparse.Namespace) -> int:
    ls = label_studio(args)
    project = resolve_project(ls, args.project)
    meta = sidecar.parse(args.metadata, _read(args.metadata), args.key_column) if args.metadata else None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        report = import_images(ls, project, args.source, meta, progress)
    for line in report.lines():
        console.print(line)
    return 0
