"""Every command the README and ``up``'s banner show runs as written from the repository root:
one form (``./labelstack COMMAND`` or ``make TARGET``), each naming something that exists, and
``status`` answering on stdout so that it pipes into grep."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from labelstack_tools.cli import main as cli
from labelstack_tools.cli.up import print_ready
from labelstack_tools.localstack.labelstudio import LabelStudioProcess
from labelstack_tools.localstack.plan import StackOptions
from labelstack_tools.localstack.project import ProjectReport
from labelstack_tools.localstack.up import Ready

REPO = Path(__file__).resolve().parents[3]
WRAPPER = re.compile(r"(?<![\w/.-])(\./)?labelstack ([a-z][a-z-]*)")
MAKE = re.compile(r"\bmake ([a-z][a-z-]*)")


def subcommands() -> set[str]:
    action = next(a for a in cli.parser()._actions if a.dest == "command")
    return set(action.choices)  # type: ignore[arg-type]


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), re.M))


def check_commands(text: str) -> None:
    """Each ``labelstack X`` is written ``./labelstack X``; each ``make T`` names a target."""
    for match in WRAPPER.finditer(text):
        if match.group(2) in subcommands():  # not "helm install labelstack charts/..."
            assert match.group(1) == "./", f"{match.group(0)!r}: not on the PATH; write ./labelstack"
    for target in MAKE.findall(text):
        assert target in make_targets(), f"make {target}: no such target"


def banner(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> str:
    ls = LabelStudioProcess(tmp_path, 8080, "admin@labelstack.local", "pw", "t" * 40)
    print_ready(Ready(StackOptions(data_dir=tmp_path), ls, ProjectReport(id=1), 12.0))
    captured = capsys.readouterr()
    return captured.out + captured.err


def readme_sections() -> str:
    """The README's shell blocks and inline code, where commands are written."""
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S)
    inline = re.findall(r"`([^`\n]+)`", text)
    return "\n".join([*blocks, *inline])


def test_the_readme_writes_commands_that_run_from_the_repository_root():
    check_commands(readme_sections())


def test_the_banner_writes_commands_that_run_from_the_repository_root(capsys, tmp_path):
    text = banner(capsys, tmp_path)
    assert "./labelstack down" in text and "./labelstack status" in text
    check_commands(text)


def test_the_wrapper_runs_the_project_venvs_cli_with_its_label_studio(tmp_path):
    cli_bin = tmp_path / "backend" / "bin" / "labelstack"
    cli_bin.parent.mkdir(parents=True)
    cli_bin.write_text('#!/bin/sh\necho "$LABELSTACK_LS_VENV $*"\n')
    cli_bin.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "LABELSTACK_VENVS": str(tmp_path)}
    done = subprocess.run(
        [str(REPO / "labelstack"), "status"], env=env, capture_output=True, text=True, check=True
    )
    # Not a second Label Studio installed in the home folder: the one bootstrap made.
    assert done.stdout.strip() == f"{tmp_path / 'label-studio'} status"


def test_status_answers_on_stdout(capsys, tmp_path):
    assert cli.main(["status", "--data-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "not running" in captured.out and captured.err == ""
