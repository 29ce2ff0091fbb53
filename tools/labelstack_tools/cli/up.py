"""``labelstack up``: Label Studio, both ML backends and Redis as local processes, wired to a demo
project with sample images. Ctrl-C (or ``labelstack down``) stops them all and keeps the data.

This module parses the options and draws; :mod:`labelstack_tools.localstack.up` runs the stack."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from labelstack_common.contract import SAM_MODEL_TYPES, Env
from labelstack_tools.cli.common import COMMAND, console
from labelstack_tools.cli.stackopts import add_data_dir, data_dir
from labelstack_tools.localstack import credentials, demo, weights
from labelstack_tools.localstack.plan import Ports, StackOptions
from labelstack_tools.localstack.up import Ready, up

HELP = "run Label Studio and both ML backends locally, wired to a demo project with sample images"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "up",
        help=HELP,
        description=HELP + ". Without weights the backends run random demo weights (and say so). "
        "Runs in the foreground: Ctrl-C (or `./labelstack down`) stops everything it started and "
        "keeps the data; a second `up` reuses the data, the admin and the token, and wires nothing twice.",
    )
    add_data_dir(p)
    d = Ports()
    ports = p.add_argument_group("ports (all on 127.0.0.1)")
    ports.add_argument(
        "--port", type=int, default=d.label_studio, help=f"Label Studio (default {d.label_studio})"
    )
    ports.add_argument(
        "--seg-port",
        type=int,
        default=d.segmentation,
        help=f"segmentation backend (default {d.segmentation})",
    )
    ports.add_argument("--sam-port", type=int, default=d.sam, help=f"SAM backend (default {d.sam})")
    ports.add_argument("--redis-port", type=int, default=d.redis, help=f"Redis (default {d.redis})")
    ports.add_argument(
        "--postgres-port",
        type=int,
        default=d.postgres,
        help=f"PostgreSQL, with --postgres (default {d.postgres})",
    )
    models = p.add_argument_group(
        "models (default: YOLOv8n-seg and MobileSAM, fetched once into ~/.cache/labelstack/weights "
        "and checked against pinned sha256s; offline, random demo weights)"
    )
    models.add_argument(
        "--seg-weights",
        type=Path,
        default=os.environ.get(Env.SEG_WEIGHTS) or None,
        help="a YOLOv8-seg .pt file (default: $LABELSTACK_SEG_WEIGHTS)",
    )
    models.add_argument(
        "--sam-checkpoint",
        type=Path,
        default=os.environ.get(Env.SAM_CHECKPOINT) or None,
        help="a SAM or MobileSAM checkpoint (default: $LABELSTACK_SAM_CHECKPOINT)",
    )
    models.add_argument(
        "--sam-model-type",
        choices=SAM_MODEL_TYPES,
        help="the checkpoint's architecture (default: read from its file name)",
    )
    models.add_argument(
        "--demo",
        action="store_true",
        help="download nothing: random demo weights for what --seg-weights and --sam-checkpoint leave out",
    )
    what = p.add_argument_group("what to run")
    what.add_argument("--no-sam", action="store_true", help="leave the interactive SAM backend out")
    what.add_argument("--no-redis", action="store_true", help="run the backends without Redis")
    what.add_argument(
        "--postgres",
        action="store_true",
        help="Label Studio on PostgreSQL (the machine's Debian `postgresql`; its data in the data dir) "
        "instead of SQLite, as on Kubernetes",
    )
    what.add_argument("--cpu", action="store_true", help="run models and training on the CPU even with a GPU")
    p.set_defaults(run=run)


def options(args: argparse.Namespace) -> StackOptions:
    return StackOptions(
        data_dir=data_dir(args),
        ports=Ports(args.port, args.seg_port, args.sam_port, args.redis_port, args.postgres_port),
        seg_weights=Path(args.seg_weights).expanduser().resolve() if args.seg_weights else None,
        sam_checkpoint=Path(args.sam_checkpoint).expanduser().resolve() if args.sam_checkpoint else None,
        sam_model_type=args.sam_model_type,
        sam=not args.no_sam,
        redis=not args.no_redis,
        cpu=args.cpu,
        demo=args.demo,
        postgres=args.postgres,
    )


def print_ready(ready: Ready) -> None:
    opts, ls, report, took = ready.opts, ready.label_studio, ready.report, ready.took
    url = f"{ls.url}/projects/{report.id}/data"
    for line in report.lines():
        console.print(f"[green]✓[/] {line}")
    console.print(f"\n[bold]LabelStack is up[/] in {took:.0f} s: [bold]{url}[/]")
    console.print(f"  login     {ls.username}  /  {ls.password}")
    console.print(f"  API token {ls.token}   (all three kept in {opts.data_dir / credentials.FILE_NAME})")
    if opts.seg_demo or opts.sam_demo:
        which = [n for n, d in (("segmentation", opts.seg_demo), ("SAM", opts.sam_demo)) if d]
        them = "backends run" if len(which) > 1 else "backend runs"
        console.print(
            f"[yellow]demo mode:[/] the {' and '.join(which)} {them} random weights: the regions are noise. "
            "For real predictions run `up` online without --demo (it fetches YOLOv8n-seg and MobileSAM "
            "once), or pass --seg-weights and --sam-checkpoint (or set LABELSTACK_SEG_WEIGHTS / "
            "LABELSTACK_SAM_CHECKPOINT)."
        )
    console.print(
        "  try: open a task and see the predicted polygons. For a SAM mask: switch on Auto-Annotation "
        "and Auto-Accept Suggestions (under the image), pick toolbar → Auto-Detect (M) → keypoints, a "
        f"label in the “{demo.CLICK_CAPTION}” row, and click a garment. Submit a few tasks, then "
        "Settings → Model → Start Training"
    )
    console.print(
        f"  logs in {opts.data_dir / 'logs'}; `{COMMAND} status` shows what runs; Ctrl-C or "
        f"`{COMMAND} down` stops everything, keeping the data"
    )


class RichReporter:
    """``up``'s steps on the terminal: a line each, spinners while they run."""

    def line(self, text: str) -> None:
        console.print(text)

    def done(self, text: str) -> None:
        console.print(f"[green]✓[/] {text}")

    def warn(self, text: str) -> None:
        console.print(f"[yellow]note:[/] {text}")

    def error(self, text: str) -> None:
        console.print(f"[red]error:[/] {text}")

    @contextmanager
    def busy(self, text: str) -> Iterator[None]:
        with console.status(text):
            yield

    @contextmanager
    def tracking(self, steps: list[tuple[str, str]]) -> Iterator[Callable[[str], None]]:
        columns = (
            SpinnerColumn(finished_text="[green]✓[/]"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=True) as bar:
            tasks = {name: bar.add_task(what, total=1) for name, what in steps}
            yield lambda name: bar.update(tasks[name], completed=1)

    def ready(self, ready: Ready) -> None:
        print_ready(ready)

    @contextmanager
    def downloading(self) -> Iterator[weights.Progress]:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
        )
        # Started by the first byte only: a cached or offline start draws no (empty) bar.
        bar = Progress(*columns, console=console, transient=True)
        tasks: dict[str, TaskID] = {}

        def progress(file: weights.WeightFile, done: int, total: int) -> None:
            if not tasks:
                bar.start()
            if file.name not in tasks:
                tasks[file.name] = bar.add_task(f"downloading {file.title} ({file.name})", total=total)
            bar.update(tasks[file.name], completed=done, total=total)

        try:
            yield progress
        finally:
            if tasks:
                bar.stop()


def run(args: argparse.Namespace) -> int:
    return up(options(args), RichReporter())
