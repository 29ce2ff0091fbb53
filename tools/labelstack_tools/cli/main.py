"""``labelstack``: the user's command line."""

from __future__ import annotations

import argparse
import sys

from labelstack_backend import __version__
from labelstack_backend.logsetup import configure_logging
from labelstack_common.errors import LabelStackError
from labelstack_tools.cli import down, export, importer, model, prelabel, serve, status, up
from labelstack_tools.cli.common import console

COMMANDS = (up, down, status, serve, importer, export, prelabel, model)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="labelstack",
        description="Semi-automatic image segmentation labelling on Label Studio.",
    )
    p.add_argument("--version", action="version", version=f"labelstack {__version__}")
    p.add_argument("--log-level", default="WARNING", help="log level for details (default WARNING)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130
    except (LabelStackError, ValueError) as exc:  # ours, and bad values from the standard library
        console.print(f"[red]error:[/] {exc}")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
