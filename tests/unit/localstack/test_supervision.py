"""Pure parts of supervision and installation."""

from __future__ import annotations

from pathlib import Path

from labelstack_tools.localstack.install import REQUIREMENTS, install_commands
from labelstack_tools.localstack.supervisor import boot_failure

LOG = """[2025-01-01 10:00:00 +0000] [7] [INFO] Booting worker with pid: 8
2025-01-01 10:00:01 CRITICAL labelstack: cannot start the sam backend: LABELSTACK_SAM_CHECKPOINT=/w/sam.pth does not exist
[2025-01-01 10:00:01 +0000] [7] [ERROR] Worker (pid:8) exited with code 3
"""


def test_a_backends_boot_failure_is_read_from_its_log():
    assert (
        boot_failure(LOG)
        == "cannot start the sam backend: LABELSTACK_SAM_CHECKPOINT=/w/sam.pth does not exist"
    )
    assert boot_failure("[INFO] Booting worker\n") is None


def test_label_studio_is_installed_with_the_pin_bootstrap_uses(repo_root: Path):
    lines = (repo_root / "constraints-label-studio.txt").read_text().splitlines()
    pins = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert pins == list(REQUIREMENTS)
    cmds = install_commands(Path("/venvs/ls"), "/usr/bin/python3")
    assert cmds[0] == ["/usr/bin/python3", "-m", "venv", "/venvs/ls"]
    assert cmds[-1][0] == "/venvs/ls/bin/python" and tuple(cmds[-1][-2:]) == REQUIREMENTS
