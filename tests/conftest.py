"""Shared test setup.

Ultralytics must never reach the network in tests, and reads its settings when
first imported, so the environment is set here, before any test imports it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="labelstack-yolo-"))
os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
# Served models stay on torch unless a test asks for a runtime: a background export per loaded
# model would cost every test seconds of CPU (tests/unit/test_seg_runtimes.py covers them).
os.environ.setdefault("LABELSTACK_RUNTIME", "torch")
# Label Studio lives in its own venv, set up by scripts/bootstrap.sh.
os.environ.setdefault(
    "LABELSTACK_LS_VENV", str(Path(__file__).resolve().parent.parent / ".venvs" / "label-studio")
)

import pytest

pytest_plugins = [
    "tests.support.gcs_emulator",
    "tests.support.fixtures",
    "tests.support.shapes_model",
    "tests.support.redis_server",
    "tests.support.postgres",
]

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave files worth looking at (screenshots, logs): test-output/, not committed."""
    path = REPO / "test-output"
    path.mkdir(exist_ok=True)
    return path
