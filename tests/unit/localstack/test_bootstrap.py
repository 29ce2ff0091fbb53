"""scripts/bootstrap.sh says what it does: one line per stage with its size and first-time cost,
then its time and size; pip's own output only in a log, whose end is shown when a step fails; and
nothing at all when there is nothing to do. A stand-in Python keeps this to milliseconds."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

# `python -m venv DIR` makes DIR/bin/python, a copy of this script; `python -m pip ...` prints
# pip-like noise and fails when $FAIL_PIP is set.
FAKE_PYTHON = """#!/bin/sh
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && touch "$3/bin/label-studio"
  chmod +x "$3/bin/label-studio"; exit 0
fi
echo "Collecting label-studio==1.23.2"
echo "WARNING: some pip noise"
if [ -n "$FAIL_PIP" ]; then echo "ERROR: No matching distribution found for label-studio==1.23.2"; exit 1; fi
"""


def bootstrap(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    python = tmp_path / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    full = {
        "PATH": os.environ["PATH"],
        "PYTHON": str(python),
        "LABELSTACK_VENVS": str(tmp_path / "venvs"),
        **env,
    }
    return subprocess.run(
        [str(REPO / "scripts" / "bootstrap.sh"), "label-studio"],
        env=full, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip


def test_a_stage_is_one_line_with_its_size_then_its_time_and_a_rerun_is_silent(tmp_path):
    first = bootstrap(tmp_path)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert len(lines) == 2 and first.stderr == ""
    assert lines[0].startswith("==> Label Studio") and "about 1 GB" in lines[0] and "min" in lines[0]
    assert lines[1].strip().startswith("done in ") and "on disk" in lines[1]
    assert "Collecting" in (tmp_path / "venvs" / "logs" / "label-studio.log").read_text()
    again = bootstrap(tmp_path)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")


def test_a_failing_step_shows_the_end_of_its_log(tmp_path):
    done = bootstrap(tmp_path, FAIL_PIP="1")
    assert done.returncode == 1
    assert "Collecting" not in done.stdout and "pip noise" not in done.stdout
    assert "failed:" in done.stderr and "No matching distribution found" in done.stderr
    assert str(tmp_path / "venvs" / "logs" / "label-studio.log") in done.stderr
