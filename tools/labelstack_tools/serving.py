"""The backend's command line, with the gunicorn of this Python environment."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from labelstack_common import contract


def backend_command() -> list[str]:
    """``contract.command()``, run by the gunicorn next to this interpreter (the project venv)
    rather than whichever one is first on the PATH."""
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    return contract.command(gunicorn)
