"""Label Studio in its own virtualenv, installed on first use (it pins Django and friends that
must not meet the backend's packages)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from labelstack_common.errors import LabelStackError

# The same pins as constraints-label-studio.txt, which scripts/bootstrap.sh installs (a test
# checks): Label Studio, and a sentry-sdk it can still start with (3.0 dropped an option it passes).
REQUIREMENTS = ("label-studio==1.23.2", "sentry-sdk>=2,<3")


class InstallError(LabelStackError, RuntimeError):
    pass


def install_commands(venv: Path, python: str = sys.executable) -> list[list[str]]:
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    return [[python, "-m", "venv", str(venv)], [*pip, "--upgrade", "pip"], [*pip, *REQUIREMENTS]]


def install(venv: Path, log: Path) -> None:
    """Create ``venv`` and install Label Studio into it; the output goes to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        for cmd in install_commands(venv):
            if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False).returncode != 0:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                raise InstallError(
                    f"installing Label Studio into {venv} failed ({' '.join(cmd[-2:])}):\n{tail}\n"
                    f"fix the cause, or install it yourself: scripts/bootstrap.sh label-studio"
                )
