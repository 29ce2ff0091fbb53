"""``labelstack prelabel``: bulk pre-label a project through its segmentation backend, with a
progress bar. The backend runs the job (one per project across its replicas); this command asks
for it and follows ``GET /prelabel``, so stopping the command never stops the job."""

from __future__ import annotations

import argparse
import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from labelstack_tools.cli.common import add_backend_options, call_backend, console

HELP = "pre-label every task of a project that lacks a prediction of the serving model version"
ENDED = ("done", "failed")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("prelabel", help=HELP, description=HELP + ", in the backend's GPU-sized batches.")
    p.add_argument("--project", required=True, help="the Label Studio project id")
    add_backend_options(p)
    p.add_argument("--no-wait", action="store_true", help="start the job and return")
    p.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    path = f"/prelabel?project={args.project}"
    started = call_backend(args, "POST", path)
    verb = "started" if started.get("status") == "started" else "already running; following it"
    console.print(f"pre-labeling project {args.project}: {verb}")
    if args.no_wait:
        return 0
    run_state = started["prelabel"]
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f} tasks/s"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(f"project {args.project}", total=None, rate=0.0)
        while True:
            bar.update(
                task, total=run_state["total"] or None, completed=run_state["done"], rate=run_state["rate"]
            )
            if run_state["status"] in ENDED and not run_state["pending"]:
                break
            time.sleep(args.interval)
            run_state = call_backend(args, "GET", path)["prelabel"]
    took = (run_state.get("finished_at") or time.time()) - (run_state.get("started_at") or time.time())
    console.print(
        f"project {args.project}: {run_state['done']}/{run_state['total']} tasks hold "
        f"{run_state['version']}; {run_state['written']} written, {run_state['failed']} failed, "
        f"in {took:.1f}s"
    )
    if run_state["status"] == "failed":
        console.print(f"[red]failed:[/] {run_state['reason']}")
        return 1
    return 0
