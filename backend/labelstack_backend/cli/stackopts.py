"""Options shared by ``up``, ``down`` and ``status``: where the local stack keeps its data."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

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
