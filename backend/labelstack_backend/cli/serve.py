"""``labelstack serve``: run the ML backend under gunicorn with the repository's config."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

HELP = "run the ML backend (segmentation or SAM) under gunicorn"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help=HELP,
        description=HELP + "; every other setting comes from the environment (see the README).",
    )
    p.add_argument(
        "--predictor", choices=["segmentation", "sam"], default=os.environ.get("LABELSTACK_PREDICTOR")
    )
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--host", default=None)
    p.add_argument("--workers", type=int, default=None)
    p.set_defaults(run=run)


def command() -> list[str]:
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    return [
        gunicorn,
        "-c",
        "python:labelstack_backend.gunicorn_conf",
        "labelstack_backend.wsgi:create_app_from_env()",
    ]


def run(args: argparse.Namespace) -> int:
    for name, value in (
        ("LABELSTACK_PREDICTOR", args.predictor),
        ("PORT", args.port),
        ("HOST", args.host),
        ("WORKERS", args.workers),
    ):
        if value is not None:
            os.environ[name] = str(value)
    cmd = command()
    os.execv(cmd[0], cmd)  # noqa: S606 - replaces this process, so signals go straight to gunicorn
