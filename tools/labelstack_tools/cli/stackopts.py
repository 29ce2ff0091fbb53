"""Options shared by ``up``, ``down`` and ``status``: where the local stack keeps its data."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from labelstack_tools.cli.common import CommandError
from labelstack_tools.localstack import state

DATA_DIR_ENV = "LABELSTACK_DATA_DIR"
DEFAULT_DATA_DIR = ".labelstack"


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR),
        help=f"the stack's data: Label Studio's database, images, models, logs, the admin's login "
        f"(default: ${DATA_DIR_ENV} or ./{DEFAULT_DATA_DIR})",
    )


def data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir).expanduser().resolve()


def read_state(root: Path) -> state.StackState | None:
    """The running stack's state file, or None; an unreadable one is a one-line error."""
    try:
        return state.read(root)
    except state.StateError as exc:
        raise CommandError(f"{exc}; stop its processes by hand, then delete the file") from None
