"""`labelstack up` fails clearly, with the fix, and leaves nothing running: a port in use, a missing
weight file, Label Studio not starting, a backend refusing to boot or to load its model.

A stand-in Label Studio (a shell script) keeps these fast; the backends are the real ones."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from labelstack_tools.localstack import procs, state
from tests.support.localstack import fake_label_studio, free_ports, processes_of, up_command

pytestmark = pytest.mark.integration


def up(tmp_path: Path, *extra: str, ls_script: str = "exec sleep 600", env: dict | None = None):
    """Run `labelstack up` to its end; return (exit code, everything it printed)."""
    venv = fake_label_studio(tmp_path / "fake-ls", ls_script)
    full_env = {**os.environ, "LABELSTACK_LS_VENV": str(venv), **(env or {})}
    done = subprocess.run(
        up_command(tmp_path / "stack", free_ports(), *extra),
        env=full_env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def test_a_port_in_use_is_named_with_the_option_that_moves_it(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out = up(tmp_path, "--seg-port", str(port))
    assert code == 1
    assert f"port {port} (the segmentation backend) is already in use" in out and "--seg-port N" in out
    assert "Traceback" not in out and not processes_of(tmp_path / "stack")


def test_a_missing_weight_file_fails_before_anything_starts(tmp_path):
    code, out = up(tmp_path, "--sam-checkpoint", str(tmp_path / "sam_vit_b.pth"))
    assert code == 1
    assert "sam_vit_b.pth: no such file" in out and "LABELSTACK_SAM_CHECKPOINT" in out
    assert not (tmp_path / "stack" / "label-studio").exists()


def test_label_studio_that_cannot_start_shows_the_end_of_its_log(tmp_path):
    script = 'echo "django.db.utils.OperationalError: unable to open database file"; exit 1'
    code, out = up(tmp_path, "--no-redis", "--no-sam", ls_script=script)
    assert code == 1
    assert "Label Studio exited with code 1" in out and "unable to open database file" in out
    assert "Traceback" not in out
    assert not processes_of(tmp_path / "stack"), "the backend that had started is stopped too"
    assert state.read(tmp_path / "stack") is None


def test_a_backend_that_refuses_to_boot_is_reported_with_its_reason(tmp_path):
    code, out = up(tmp_path, "--no-redis", "--no-sam", env={"LABELSTACK_MAX_DETECTIONS": "0"})
    assert code == 1
    assert "segmentation backend exited with code" in out
    assert "invalid backend settings: LABELSTACK_MAX_DETECTIONS" in out
    assert not processes_of(tmp_path / "stack"), "Label Studio is stopped too"


def test_a_model_that_cannot_load_is_reported_with_its_reason(tmp_path):
    weights = tmp_path / "sam_vit_b_01ec64.pth"
    weights.write_bytes(b"not a checkpoint")
    code, out = up(tmp_path, "--no-redis", "--sam-checkpoint", str(weights))
    assert code == 1
    assert "SAM backend failed: its model failed to load" in out and "sam_vit_b_01ec64.pth" in out
    assert not processes_of(tmp_path / "stack")


def test_a_second_up_on_a_running_stack_says_how_to_stop_it(tmp_path):
    root = tmp_path / "stack"
    root.mkdir()
    state.write(root, state.StackState(supervisor=procs.record("labelstack up", os.getpid())))
    code, out = up(tmp_path)
    assert code == 1
    assert f"a stack is already running from {root} (pid {os.getpid()}" in out
    assert "labelstack down" in out
