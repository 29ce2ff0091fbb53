"""``labelstack up``'s orchestration: check, prepare, start, wire, watch, and always stop.

The display is the caller's: every step reports through a :class:`Reporter`, so the command
line (``labelstack_tools.cli.up``) only parses options and draws.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Protocol

from labelstack_common.contract import PredictorKind
from labelstack_common.errors import LabelStackError
from labelstack_common.labelstudio import LabelStudioClient
from labelstack_tools.localstack import (
    credentials,
    install,
    postgres,
    probes,
    procs,
    project,
    samples,
    state,
    weights,
)
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
    ServiceSpec,
    StackOptions,
    backend_spec,
    check_weights,
    port_claims,
    redis_spec,
)
from labelstack_tools.localstack.ports import port_in_use
from labelstack_tools.localstack.supervisor import Running, ServiceFailed, Supervisor

READY_TIMEOUT_S = 600  # a first start migrates Label Studio's database while two models load
POSTGRES_READY_TIMEOUT_S = 60


class StackError(LabelStackError):
    """The stack cannot start as asked; the message names the fix."""


@dataclass(frozen=True)
class Ready:
    """What the stack is, once it is up: for the banner."""

    opts: StackOptions
    label_studio: LabelStudioProcess
    report: project.ProjectReport
    took: float


class Reporter(Protocol):
    """How ``up`` shows what it does."""

    def line(self, text: str) -> None:
        """A plain line."""

    def done(self, text: str) -> None:
        """A finished step."""

    def warn(self, text: str) -> None:
        """Something the user should know, that does not stop the stack."""

    def error(self, text: str) -> None:
        """Why the stack stopped."""

    def busy(self, text: str) -> contextlib.AbstractContextManager[None]:
        """While one slow step runs."""

    def tracking(
        self, steps: list[tuple[str, str]]
    ) -> contextlib.AbstractContextManager[Callable[[str], None]]:
        """While several processes get ready, ``(name, what it is doing)`` each; the callable
        marks one ready by name."""

    def ready(self, ready: Ready) -> None:
        """The banner: where to go, how to log in."""

    def downloading(self) -> contextlib.AbstractContextManager[weights.Progress]:
        """While default weights download: the callable reports each file's bytes so far."""


class Stop(Exception):
    """SIGTERM (from ``labelstack down``) or SIGINT (Ctrl-C)."""


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


@contextmanager
def _signals(handler: Callable[[int, FrameType | None], None] | signal.Handlers) -> Iterator[None]:
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, previous in old.items():
            signal.signal(s, previous)


def stop_signals() -> contextlib.AbstractContextManager[None]:
    """Turn SIGINT and SIGTERM into :class:`Stop` while the stack runs."""
    return _signals(_raise_stop)


def ignored_signals() -> contextlib.AbstractContextManager[None]:
    """While stopping: a second Ctrl-C must not leave processes behind."""
    return _signals(signal.SIG_IGN)


def validated(opts: StackOptions) -> StackOptions:
    try:
        check_weights(opts)
        port_claims(opts, opts.redis)
    except PlanError as exc:
        raise StackError(str(exc)) from None
    return opts


def check_not_running(root: Path, out: Reporter) -> None:
    """One stack per data dir; leftovers of a stack that was killed are stopped first."""
    try:
        previous = state.read(root)
    except state.StateError:
        previous = None  # unreadable: nothing to find by PID
    if previous is None:
        return
    if procs.alive(previous.supervisor):
        raise StackError(
            f"a stack is already running from {root} (pid {previous.supervisor.pid}, "
            f"{previous.label_studio_url or 'starting'}); stop it with Ctrl-C there or "
            f"`./labelstack down --data-dir {root}`, or pass another --data-dir"
        )
    left = procs.stop(previous.processes)
    if left:
        out.line(f"stopped what a previous `up` left running: {', '.join(left)}")
    state.remove(root)


def check_ports(opts: StackOptions, redis: bool) -> None:
    for port, what, flag in port_claims(opts, redis):
        if port_in_use(port, HOST):
            raise StackError(
                f"port {port} ({what}) is already in use: stop what runs there, or pick another "
                f"port with {flag} N"
            )


def wanted_weights(opts: StackOptions) -> list[weights.WeightFile]:
    """The default files to fetch: for each backend given no weights, unless told --demo."""
    if opts.demo:
        return []
    seg = [weights.YOLO_SEG] if opts.seg_weights is None else []
    sam = [weights.MOBILE_SAM] if opts.sam and opts.sam_checkpoint is None else []
    return seg + sam


def with_default_weights(opts: StackOptions, out: Reporter) -> StackOptions:
    """``opts`` with the default weights, verified, for what it leaves out; what cannot be had
    stays the demo's random weights, with the reason in one line."""
    wanted = wanted_weights(opts)
    if not wanted:
        return opts
    with out.downloading() as progress:
        for file in wanted:
            try:
                path, fresh = weights.fetch(file, progress)
            except weights.WeightsError as exc:
                out.warn(
                    f"demo mode: {exc}; random weights for what has none (pass --seg-weights and "
                    f"--sam-checkpoint, or set {weights.BASE_URL_ENV} to a mirror)"
                )
                break  # offline, the next file fails the same way
            how = "downloaded and" if fresh else "in the cache,"
            out.done(f"{file.title} weights {how} sha256 verified: {path}")
            if file is weights.YOLO_SEG:
                opts = replace(opts, seg_weights=path)
            else:
                opts = replace(opts, sam_checkpoint=path, sam_model_type=None)
    return opts


def find_redis(opts: StackOptions, out: Reporter) -> str | None:
    binary = shutil.which("redis-server") if opts.redis else None
    if opts.redis and binary is None:
        out.warn(
            "redis-server is not installed; the backends run without Redis "
            "(apt-get install redis-server, or scripts/bootstrap.sh system)"
        )
    return binary


def find_postgres(opts: StackOptions) -> Path | None:
    """PostgreSQL's bin directory with ``--postgres``; None without it."""
    if not opts.postgres:
        return None
    found = postgres.bin_dir()
    if found is None:
        raise StackError(postgres.INSTALL_HINT)
    return found


def prepare_postgres(
    layout: Layout, ls: LabelStudioProcess, binaries: Path, port: int, out: Reporter
) -> None:
    """The cluster (made once), and Label Studio pointed at it."""
    try:
        creds, _ = credentials.load_or_create(layout.root)
        creds = credentials.with_postgres_password(layout.root, creds)
        with out.busy(f"PostgreSQL: checking its cluster in {layout.postgres}"):
            made = postgres.ensure_cluster(layout, binaries, creds.postgres_password, os.geteuid() == 0)
    except (credentials.CredentialsError, postgres.PostgresError) as exc:
        raise StackError(str(exc)) from None
    out.line(("created" if made else "reusing") + f" the PostgreSQL cluster in {layout.postgres}")
    ls.extra_env = postgres.label_studio_env(port, creds.postgres_password)


def start_postgres(sup: Supervisor, layout: Layout, binaries: Path, port: int, password: str) -> bool:
    """Start PostgreSQL and wait for it, then create Label Studio's database unless it exists
    (before Label Studio starts: it migrates at once); True when the database is new."""
    spec = postgres.server_spec(layout, binaries, port, os.geteuid() == 0)
    sup.start(spec, partial(postgres.ready, binaries, port))
    sup.wait_ready(POSTGRES_READY_TIMEOUT_S)
    try:
        return postgres.ensure_database(binaries, port, password)
    except postgres.PostgresError as exc:
        raise ServiceFailed("postgres", f"PostgreSQL: {exc}; its log: {spec.log}") from None


def ensure_label_studio(binary: Path, layout: Layout, out: Reporter) -> None:
    if binary.exists():
        return
    venv = binary.parent.parent
    with out.busy(
        f"installing Label Studio into {venv} (about 1 GB; a few minutes, once; set {DEFAULT_VENV_ENV} "
        "to use another)"
    ):
        started = time.monotonic()
        install.install(venv, layout.logs / "install-label-studio.log")
    out.done(f"Label Studio installed in {time.monotonic() - started:.0f} s")


def _empty(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def prepare_data(layout: Layout, port: int, binary: Path, out: Reporter) -> LabelStudioProcess:
    """The admin login, folders and sample images; Label Studio's process, not started yet."""
    try:
        creds, generated = credentials.load_or_create(layout.root)
    except credentials.CredentialsError as exc:
        raise StackError(str(exc)) from None
    where = layout.root / credentials.FILE_NAME
    out.line(("generated" if generated else "reusing") + f" the admin login in {where}")
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
        log_file=layout.logs / "label-studio.log",  # beside the backends' logs, where the README says
    )


def start_services(
    sup: Supervisor,
    opts: StackOptions,
    layout: Layout,
    ls: LabelStudioProcess,
    redis_binary: str | None,
    pg_binaries: Path | None = None,
) -> list[tuple[Running, str]]:
    """Start every process; return each with what the display says while it gets ready."""
    started: list[tuple[Running, str]] = []
    first = not (layout.label_studio / "label_studio.sqlite3").exists()
    if pg_binaries is not None:
        password = ls.extra_env["POSTGRE_PASSWORD"]
        first = start_postgres(sup, layout, pg_binaries, opts.ports.postgres, password)
    redis_url = None
    if redis_binary is not None:
        spec = redis_spec(opts, layout, redis_binary)
        redis_url = spec.url
        started.append((sup.start(spec, partial(probes.redis_ok, spec.url)), "starting Redis"))
    ls.start()
    assert ls.proc is not None
    health = f"{ls.url}/health"
    running = sup.adopt(
        "label-studio", "Label Studio", ls.proc, ls.log_path, partial(probes.http_ok, health), ls.url
    )
    doing = "first start: creating its database (about 40 s)" if first else "starting"
    started.append((running, f"Label Studio: {doing}"))
    kinds = [PredictorKind.SEGMENTATION, *([PredictorKind.SAM] if opts.sam else [])]
    specs: list[ServiceSpec] = [
        backend_spec(kind, opts, layout, label_studio_url=ls.url, token=ls.token, redis_url=redis_url)
        for kind in kinds
    ]
    for spec in specs:
        demo = opts.seg_demo if spec.name == PredictorKind.SEGMENTATION else opts.sam_demo
        weights = "random demo weights" if demo else "its weights"
        started.append(
            (sup.start(spec, partial(probes.backend_ready, spec.url)), f"{spec.title}: loading {weights}")
        )
    return started


def wait_ready(sup: Supervisor, started: list[tuple[Running, str]], out: Reporter) -> None:
    with out.tracking([(r.name, what) for r, what in started]) as mark:

        def ready(r: Running) -> None:
            mark(r.name)
            out.done(f"{r.title} ready in {time.monotonic() - r.started_at:.0f} s")

        sup.wait_ready(READY_TIMEOUT_S, ready)


def watch(sup: Supervisor) -> None:
    """Block until a process dies (a failure) or a stop signal arrives."""
    while True:
        dead = sup.exited()
        if dead is not None:
            raise dead.failure()
        time.sleep(1.0)


def supervise(
    opts: StackOptions,
    layout: Layout,
    ls: LabelStudioProcess,
    redis_binary: str | None,
    out: Reporter,
    pg_binaries: Path | None = None,
) -> int:
    """Start, wire, report, then watch until a stop signal or a failure; always stop everything."""
    sup = Supervisor()
    began = time.monotonic()
    current = state.StackState(supervisor=procs.current(), label_studio_url=ls.url)
    code = 0
    with stop_signals():
        try:
            started = start_services(sup, opts, layout, ls, redis_binary, pg_binaries)
            current.processes = sup.records()
            state.write(layout.root, current)
            wait_ready(sup, started, out)
            with out.busy("wiring the demo project, importing the sample images, retrieving predictions"):
                client = LabelStudioClient(ls.url, ls.token, timeout=60)
                sam_url = f"http://{HOST}:{opts.ports.sam}" if opts.sam else None
                seg_url = f"http://{HOST}:{opts.ports.segmentation}"
                report = project.prepare(client, layout.samples, seg_url, sam_url)
            current.status, current.project_id = state.READY, report.id
            state.write(layout.root, current)
            out.ready(Ready(opts, ls, report, time.monotonic() - began))
            watch(sup)
        except Stop:
            out.line("\nstopping…")
        except (ServiceFailed, LabelStudioStartError) as exc:
            out.error(str(exc))
            code = 1
        finally:
            with ignored_signals():
                stopped = sup.stop_all()
                state.remove(layout.root)
            if stopped:
                out.line(f"stopped {', '.join(stopped)}; the data stays in {layout.root}")
    return code


def up(opts: StackOptions, out: Reporter) -> int:
    """Run the local stack in the foreground until Ctrl-C, ``labelstack down`` or a failure."""
    opts = validated(opts)
    layout = Layout(private_dir(opts.data_dir))
    check_not_running(layout.root, out)
    redis_binary = find_redis(opts, out)
    pg_binaries = find_postgres(opts)
    check_ports(opts, redis_binary is not None)
    opts = with_default_weights(opts, out)
    binary = label_studio_bin()
    ensure_label_studio(binary, layout, out)
    ls = prepare_data(layout, opts.ports.label_studio, binary, out)
    if pg_binaries is not None:
        prepare_postgres(layout, ls, pg_binaries, opts.ports.postgres, out)
    return supervise(opts, layout, ls, redis_binary, out, pg_binaries)
