"""Processes by PID: who they are, whether they still run, and stopping them with
everything they started.

A backend's training job runs in its own session (so a worker's shutdown does not
kill it); it is still a descendant of the backend, so stopping a process here
collects its whole tree first and stops every member, whatever its session.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable

import psutil

from labelstack_tools.localstack.state import ProcessRecord

# psutil's create_time has a resolution of a clock tick; two reads of one process agree exactly,
# a reused PID differs by far more.
SAME_START_S = 0.05


def record(name: str, pid: int, *, log: str = "", url: str = "") -> ProcessRecord:
    return ProcessRecord(name=name, pid=pid, started=psutil.Process(pid).create_time(), log=log, url=url)


def process_of(rec: ProcessRecord) -> psutil.Process | None:
    """The live process a record names, or None (gone, a zombie, or its PID reused)."""
    try:
        proc = psutil.Process(rec.pid)
        if abs(proc.create_time() - rec.started) > SAME_START_S:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return proc


def alive(rec: ProcessRecord) -> bool:
    return process_of(rec) is not None


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _signal(procs: Iterable[psutil.Process], sig: int) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.send_signal(sig)


def stop(records: Iterable[ProcessRecord], timeout: float = 15.0) -> list[str]:
    """SIGTERM each live record's process tree, then SIGKILL what is left after ``timeout``.

    Returns the names of the records that were running. Trees are collected before any
    signal, because a dying parent hands its children to init and the tree is lost.
    """
    stopped: list[str] = []
    members: list[psutil.Process] = []
    for rec in records:
        proc = process_of(rec)
        if proc is None:
            continue
        stopped.append(rec.name)
        members.extend(_tree(proc))
    _signal(members, signal.SIGTERM)
    _, left = psutil.wait_procs(members, timeout=timeout)
    if left:
        _signal(left, signal.SIGKILL)
        psutil.wait_procs(left, timeout=5)
    return stopped


def stop_one(rec: ProcessRecord, timeout: float) -> bool:
    """SIGTERM one process (not its tree: it stops its own) and wait; True when it has gone."""
    proc = process_of(rec)
    if proc is None:
        return True
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process_of(rec) is None:
            return True
        time.sleep(0.2)
    return False


def current() -> ProcessRecord:
    return record("labelstack up", os.getpid())
