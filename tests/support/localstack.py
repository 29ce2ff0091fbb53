"""Running ``labelstack up`` as a user does, in tests: the entry point as a subprocess, free ports,
a stand-in Label Studio, and a search for processes that a stack left behind."""

from __future__ import annotations

import os
import socket
import stat
import sys
from contextlib import ExitStack
from pathlib import Path

import psutil

from labelstack_tools.localstack.plan import Ports


def labelstack() -> str:
    """The ``labelstack`` console script of the running venv."""
    return str(Path(sys.executable).with_name("labelstack"))


def free_ports() -> Ports:
    """Five distinct free ports (held open together while picked, so none is picked twice)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(5)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return Ports(*(int(s.getsockname()[1]) for s in socks))


def up_command(data_dir: Path, ports: Ports, *extra: str, demo: bool = True) -> list[str]:
    """``labelstack up`` on these ports; with ``demo``, it downloads no default weights."""
    return [
        labelstack(), "up", "--data-dir", str(data_dir), "--port", str(ports.label_studio),
        "--seg-port", str(ports.segmentation), "--sam-port", str(ports.sam),
        "--redis-port", str(ports.redis), "--postgres-port", str(ports.postgres),
        *(["--demo"] if demo else []), *extra,
    ]  # fmt: skip


def fake_label_studio(folder: Path, script: str) -> Path:
    """A virtualenv-shaped folder whose ``bin/label-studio`` runs ``script`` (sh); for LABELSTACK_LS_VENV."""
    binary = folder / "bin" / "label-studio"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n" + script + "\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    return folder


def processes_of(data_dir: Path) -> list[str]:
    """Processes whose command line or environment names ``data_dir``: what a stack started."""
    mark = str(data_dir)
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.pid == os.getpid():
                continue
            text = " ".join(proc.info["cmdline"] or [])
            if mark in text or any(mark in v for v in proc.environ().values()):
                found.append(f"{proc.pid} {text[:120]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found
