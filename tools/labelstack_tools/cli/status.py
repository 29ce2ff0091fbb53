"""``labelstack status``: what the local stack runs, where, and whether each process is alive; on
stdout, so that ``./labelstack status | grep`` works."""

from __future__ import annotations

import argparse

from labelstack_tools.cli.common import answer
from labelstack_tools.cli.stackopts import add_data_dir, data_dir, read_state
from labelstack_tools.localstack import credentials, procs

HELP = "show the local stack's processes, URLs and login"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help=HELP, description=HELP + ". Exits 1 when it is not running.")
    add_data_dir(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    root = data_dir(args)
    current = read_state(root)
    if current is None or not procs.alive(current.supervisor):
        answer.print(f"the local stack is not running from {root}")
        return 1
    answer.print(f"the local stack is {current.status} (labelstack up: pid {current.supervisor.pid})")
    for rec in current.processes:
        mark = "[green]up[/]  " if procs.alive(rec) else "[red]down[/]"
        answer.print(f"  {mark} {rec.name:<13} pid {rec.pid:<7} {rec.url}")
    if current.project_id is not None:
        answer.print(f"  open {current.label_studio_url}/projects/{current.project_id}/data")
    try:
        creds, _ = credentials.load_or_create(root)
        answer.print(f"  login {creds.username} / {creds.password}")
    except credentials.CredentialsError:
        pass
    return 0
