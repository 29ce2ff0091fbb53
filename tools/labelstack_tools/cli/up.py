"""``labelstack up``: Label Studio, both ML backends and Redis as local processes, wired to a demo
project with sample images. Ctrl-C (or ``labelstack down``) stops them all and keeps the data."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from types import FrameType

from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from labelstack_common.labelstudio import LabelStudioClient
from labelstack_tools.cli.common import CommandError, console
from labelstack_tools.cli.stackopts import add_data_dir, data_dir
from labelstack_tools.localstack import credentials, install, probes, procs, project, samples, state
from labelstack_tools.localstack.files import private_dir
from labelstack_tools.localstack.labelstudio import (
    DEFAULT_VENV_ENV,
    LabelStudioProcess,
    LabelStudioStartError,
    label_studio_bin,
)
from labelstack_tools.localstack.plan import (
    HOST,
    Layout,
    PlanError,
    Ports,
    ServiceSpec,
    StackOptions,
    backend_spec,
    check_weights,
    port_claims,
    redis_spec,
)
from labelstack_tools.localstack.ports import port_in_use
from labelstack_tools.localstack.supervisor import Running, ServiceFailed, Supervisor

HELP = "run Label Studio and both ML backends locally, wired to a demo project with sample images"
READY_TIMEOUT_S = 600  # a first start migrates Label Studio's database while two models load


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "up",
        help=HELP,
        description=HELP + ". Without weights the backends run random demo weights (and say so). "
        "Runs in the foreground: Ctrl-C stops everything it started and keeps the data; a second "
        "`up` reuses the data, the admin and the token, and wires nothing twice.",
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
    models = p.add_argument_group("models (default: random demo weights)")
    models.add_argument(
        "--seg-weights",
        type=Path,
        default=os.environ.get("LABELSTACK_SEG_WEIGHTS") or None,
        help="a YOLOv8-seg .pt file (default: $LABELSTACK_SEG_WEIGHTS)",
    )
    models.add_argument(
        "--sam-checkpoint",
        type=Path,
        default=os.environ.get("LABELSTACK_SAM_CHECKPOINT") or None,
        help="a SAM or MobileSAM checkpoint (default: $LABELSTACK_SAM_CHECKPOINT)",
    )
    models.add_argument(
        "--sam-model-type",
        choices=["vit_h", "vit_l", "vit_b", "mobile_sam", "tiny"],
        help="the checkpoint's architecture (default: read from its file name)",
    )
    what = p.add_argument_group("what to run")
    what.add_argument("--no-sam", action="store_true", help="leave the interactive SAM backend out")
    what.add_argument("--no-redis", action="store_true", help="run the backends without Redis")
    what.add_argument("--cpu", action="store_true", help="run models and training on the CPU even with a GPU")
    p.set_defaults(run=run)


def options(args: argparse.Namespace) -> StackOptions:
    return StackOptions(
        data_dir=data_dir(args),
        ports=Ports(args.port, args.seg_port, args.sam_port, args.redis_port),
        seg_weights=Path(args.seg_weights).expanduser().resolve() if args.seg_weights else None,
        sam_checkpoint=Path(args.sam_checkpoint).expanduser().resolve() if args.sam_checkpoint else None,
        sam_model_type=args.sam_model_type,
        sam=not args.no_sam,
        redis=not args.no_redis,
        cpu=args.cpu,
    )


class Stop(Exception):
    """SIGTERM (from ``labelstack down``) or SIGINT (Ctrl-C)."""


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


@contextmanager
def stop_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into :class:`Stop` while the stack runs."""
    old = {s: signal.signal(s, _raise_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextmanager
def ignored_signals() -> Iterator[None]:
    """While stopping: a second Ctrl-C must not leave processes behind."""
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def check_not_running(root: Path) -> None:
    """One stack per data dir; leftovers of a stack that was killed are stopped first."""
    try:
        previous = state.read(root)
    except state.StateError:
        previous = None  # unreadable: nothing to find by PID
    if previous is None:
        return
    if procs.alive(previous.supervisor):
        raise CommandError(
            f"a stack is already running from {root} (pid {previous.supervisor.pid}, "
            f"{previous.label_studio_url or 'starting'}); stop it with Ctrl-C there or "
            f"`labelstack down --data-dir {root}`, or pass another --data-dir"
        )
    left = procs.stop(previous.processes)
    if left:
        console.print(f"stopped what a previous `up` left running: {', '.join(left)}")
    state.remove(root)


def check_ports(opts: StackOptions, redis: bool) -> None:
    for port, what, flag in port_claims(opts, redis):
        if port_in_use(port, HOST):
            raise CommandError(
                f"port {port} ({what}) is already in use: stop what runs there, or pick another "
                f"port with {flag} N"
            )


def ensure_label_studio(binary: Path, layout: Layout) -> None:
    if binary.exists():
        return
    venv = binary.parent.parent
    with console.status(
        f"installing Label Studio into {venv} (about 1 GB; a few minutes, once; set {DEFAULT_VENV_ENV} "
        "to use another)"
    ):
        started = time.monotonic()
        install.install(venv, layout.logs / "install-label-studio.log")
    console.print(f"[green]✓[/] Label Studio installed in {time.monotonic() - started:.0f} s")


def _empty(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def start_services(
    sup: Supervisor, opts: StackOptions, layout: Layout, ls: LabelStudioProcess, redis_binary: str | None
) -> list[tuple[Running, str]]:
    """Start every process; return each with what the progress display says while it gets ready."""
    started: list[tuple[Running, str]] = []
    redis_url = None
    if redis_binary is not None:
        spec = redis_spec(opts, layout, redis_binary)
        redis_url = spec.url
        started.append((sup.start(spec, partial(probes.redis_ok, spec.url)), "starting Redis"))
    first = not (layout.label_studio / "label_studio.sqlite3").exists()
    ls.start()
    assert ls.proc is not None
    health = f"{ls.url}/health"
    running = sup.adopt(
        "label-studio", "Label Studio", ls.proc, ls.log_path, partial(probes.http_ok, health), ls.url
    )
    doing = "first start: creating its database (about 40 s)" if first else "starting"
    started.append((running, f"Label Studio: {doing}"))
    specs: list[ServiceSpec] = [
        backend_spec(kind, opts, layout, label_studio_url=ls.url, token=ls.token, redis_url=redis_url)
        for kind in ("segmentation", "sam")
        if kind == "segmentation" or opts.sam
    ]
    for spec in specs:
        demo = opts.seg_demo if spec.name == "segmentation" else opts.sam_demo
        weights = "random demo weights" if demo else "its weights"
        started.append(
            (
                sup.start(spec, partial(probes.backend_ready, spec.url)),
                f"{spec.title}: loading {weights}",
            )
        )
    return started


def wait_ready(sup: Supervisor, started: list[tuple[Running, str]]) -> None:
    columns = (
        SpinnerColumn(finished_text="[green]✓[/]"),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        tasks = {r.name: bar.add_task(what, total=1) for r, what in started}

        def ready(r: Running) -> None:
            bar.update(tasks[r.name], completed=1)
            console.print(f"[green]✓[/] {r.title} ready in {time.monotonic() - r.started_at:.0f} s")

        sup.wait_ready(READY_TIMEOUT_S, ready)


def print_ready(
    opts: StackOptions, ls: LabelStudioProcess, report: project.ProjectReport, took: float
) -> None:
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
            "For real predictions pass --seg-weights yolov8n-seg.pt and --sam-checkpoint "
            "sam_vit_b_01ec64.pth (or set LABELSTACK_SEG_WEIGHTS / LABELSTACK_SAM_CHECKPOINT)."
        )
    console.print(
        "  try: open a task and see the predicted polygons; pick Click, switch on Auto-Annotation and "
        "click a garment for a SAM mask; submit a few tasks, then Settings → Model → Start Training"
    )
    console.print(
        f"  logs in {opts.data_dir / 'logs'}; Ctrl-C or `labelstack down` stops everything, keeping the data"
    )


def watch(sup: Supervisor) -> None:
    """Block until a process dies (a failure) or a stop signal arrives."""
    while True:
        dead = sup.exited()
        if dead is not None:
            raise dead.failure()
        time.sleep(1.0)


def validated(args: argparse.Namespace) -> StackOptions:
    opts = options(args)
    try:
        check_weights(opts)
        port_claims(opts, opts.redis)
    except PlanError as exc:
        raise CommandError(str(exc)) from None
    return opts


def find_redis(opts: StackOptions) -> str | None:
    binary = shutil.which("redis-server") if opts.redis else None
    if opts.redis and binary is None:
        console.print(
            "[yellow]note:[/] redis-server is not installed; the backends run without Redis "
            "(apt-get install redis-server, or scripts/bootstrap.sh system)"
        )
    return binary


def prepare_data(layout: Layout, port: int, binary: Path) -> LabelStudioProcess:
    """The admin login, folders and sample images; Label Studio's process, not started yet."""
    try:
        creds, generated = credentials.load_or_create(layout.root)
    except credentials.CredentialsError as exc:
        raise CommandError(str(exc)) from None
    where = layout.root / credentials.FILE_NAME
    console.print(("generated" if generated else "reusing") + f" the admin login in {where}")
    for folder in (layout.logs, layout.files):
        folder.mkdir(parents=True, exist_ok=True)
    _empty(layout.run)
    samples.write_samples(layout.samples)
    return LabelStudioProcess(
        data_dir=layout.label_studio,
        port=port,
        username=creds.username,
        password=creds.password,
        token=creds.token,
        binary=binary,
        host=HOST,
        local_files_root=layout.files,
    )


def supervise(opts: StackOptions, layout: Layout, ls: LabelStudioProcess, redis_binary: str | None) -> int:
    """Start, wire, report, then watch until a stop signal or a failure; always stop everything."""
    sup = Supervisor()
    began = time.monotonic()
    current = state.StackState(supervisor=procs.current(), label_studio_url=ls.url)
    code = 0
    with stop_signals():
        try:
            started = start_services(sup, opts, layout, ls, redis_binary)
            current.processes = sup.records()
            state.write(layout.root, current)
            wait_ready(sup, started)
            with console.status(
                "wiring the demo project, importing the sample images, retrieving predictions"
            ):
                client = LabelStudioClient(ls.url, ls.token, timeout=60)
                sam_url = f"http://{HOST}:{opts.ports.sam}" if opts.sam else None
                seg_url = f"http://{HOST}:{opts.ports.segmentation}"
                report = project.prepare(client, layout.samples, seg_url, sam_url)
            current.status, current.project_id = state.READY, report.id
            state.write(layout.root, current)
            print_ready(opts, ls, report, time.monotonic() - began)
            watch(sup)
        except Stop:
            console.print("\nstopping…")
        except (ServiceFailed, LabelStudioStartError) as exc:
            console.print(f"[red]error:[/] {exc}")
            code = 1
        finally:
            with ignored_signals():
                stopped = sup.stop_all()
                state.remove(layout.root)
            if stopped:
                console.print(f"stopped {', '.join(stopped)}; the data stays in {layout.root}")
    return code


def run(args: argparse.Namespace) -> int:
    opts = validated(args)
    layout = Layout(private_dir(opts.data_dir))
    check_not_running(layout.root)
    redis_binary = find_redis(opts)
    check_ports(opts, redis_binary is not None)
    binary = label_studio_bin()
    ensure_label_studio(binary, layout)
    ls = prepare_data(layout, opts.ports.label_studio, binary)
    return supervise(opts, layout, ls, redis_binary)
