"""``labelstack prelabel``: bulk pre-label a project through its segmentation backend, with a
progress bar. The backend runs the job (one per project across its replicas); this command asks
for it and follows ``GET /prelabel``, so stopping the command never stops the job."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import requests
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from labelstack_common.errors import LabelStackError
from labelstack_tools.cli.common import console

HELP = "pre-label every task of a project that lacks a prediction of the serving model version"
DEFAULT_BACKEND = "http://127.0.0.1:9090"  # the local stack's segmentation backend
ENDED = ("done", "failed")


class PrelabelFailed(LabelStackError):
    """The backend refused the job or cannot be reached."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("prelabel", help=HELP, description=HELP + ", in the backend's GPU-sized batches.")
    p.add_argument("--project", required=True, help="the Label Studio project id")
    p.add_argument(
        "--backend",
        default=os.environ.get("LABELSTACK_BACKEND_URL", DEFAULT_BACKEND),
        help=f"the segmentation backend's URL (LABELSTACK_BACKEND_URL; default {DEFAULT_BACKEND})",
    )
    p.add_argument("--no-wait", action="store_true", help="start the job and return")
    p.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    p.set_defaults(run=run)


def _auth() -> tuple[str, str] | None:
    user, password = os.environ.get("BASIC_AUTH_USER"), os.environ.get("BASIC_AUTH_PASS")
    return (user, password) if user and password else None


def _call(method: str, url: str) -> dict[str, Any]:
    try:
        resp = requests.request(method, url, auth=_auth(), timeout=30)
    except requests.RequestException as exc:
        raise PrelabelFailed(f"the backend does not answer at {url}: {type(exc).__name__}") from None
    body: dict[str, Any] = (
        resp.json() if resp.headers.get("Content-Type", "").startswith("application/json") else {}
    )
    if resp.status_code >= 400:
        raise PrelabelFailed(f"the backend answered {resp.status_code}: {body.get('error', resp.text[:200])}")
    return body


def run(args: argparse.Namespace) -> int:
    base = args.backend.rstrip("/")
    started = _call("POST", f"{base}/prelabel?project={args.project}")
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
            run_state = _call("GET", f"{base}/prelabel?project={args.project}")["prelabel"]
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
