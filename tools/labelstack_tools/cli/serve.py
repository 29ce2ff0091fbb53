"""``labelstack serve``: run the ML backend under gunicorn with the repository's config."""

from __future__ import annotations

import argparse
import os

from labelstack_common.contract import Env, PredictorKind
from labelstack_tools.serving import backend_command

HELP = "run the ML backend (segmentation or SAM) under gunicorn"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help=HELP,
        description=HELP + "; every other setting comes from the environment (see the README).",
    )
    p.add_argument(
        "--predictor", choices=[k.value for k in PredictorKind], default=os.environ.get(Env.PREDICTOR)
    )
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--host", default=None)
    p.add_argument("--workers", type=int, default=None)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for name, value in (
        (Env.PREDICTOR, args.predictor),
        (Env.PORT, args.port),
        (Env.HOST, args.host),
        (Env.WORKERS, args.workers),
    ):
        if value is not None:
            os.environ[name] = str(value)
    cmd = backend_command()
    os.execv(cmd[0], cmd)  # noqa: S606 - replaces this process, so signals go straight to gunicorn
