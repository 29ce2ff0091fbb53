"""``labelstack down``: stop what ``labelstack up`` started from a data dir, by PID; keep the data."""

from __future__ import annotations

import argparse

from labelstack_tools.cli.common import console
from labelstack_tools.cli.stackopts import add_data_dir, data_dir, read_state
from labelstack_tools.localstack import procs, state

HELP = "stop the local stack that `./labelstack up` runs from a data dir; the data stays"
# `up` stops its processes itself when told to; give it the time gunicorn and Label Studio take.
UP_STOP_TIMEOUT_S = 60


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("down", help=HELP, description=HELP + ".")
    add_data_dir(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    root = data_dir(args)
    current = read_state(root)
    if current is None:
        console.print(f"nothing is running from {root}")
        return 0
    # Ask `up` first, so it stops its processes as after a Ctrl-C; then stop whatever is left.
    up_stopped = procs.stop_one(current.supervisor, UP_STOP_TIMEOUT_S)
    left = procs.stop(current.processes)
    if not up_stopped:
        procs.stop([current.supervisor], timeout=5)
    state.remove(root)
    if left:
        console.print(f"stopped {', '.join(left)} by PID")
    console.print(f"the local stack is down; the data stays in {root}")
    return 0
