"""Processes by PID: a record matches only its own process, and stopping takes the whole tree,
including a child that left for its own session (as a training job does)."""

from __future__ import annotations

import subprocess
import sys

import psutil

from labelstack_tools.localstack import procs
from labelstack_tools.localstack.state import ProcessRecord

# A parent that starts a child in a new session (like a backend's training job), then waits.
TREE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
print(child.pid, flush=True)
time.sleep(600)
"""


def test_stop_takes_the_whole_tree_whatever_the_session(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        rec = procs.record("tree", parent.pid)
        child = procs.record("child", child_pid)
        assert procs.alive(rec) and procs.alive(child)
        assert procs.stop([rec]) == ["tree"]
        parent.wait(5)
        assert not procs.alive(child) and not procs.alive(rec)
    finally:
        if parent.poll() is None:
            parent.kill()


def test_a_record_whose_pid_was_reused_matches_nothing():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        real = procs.record("sleep", proc.pid)
        reused = ProcessRecord("sleep", proc.pid, real.started - 3600)
        assert procs.alive(real) and not procs.alive(reused)
        assert procs.stop([reused]) == []
        assert proc.poll() is None, "a stale record must never signal the process that has its PID now"
        assert procs.stop_one(real, timeout=10)
        assert proc.wait(5) is not None
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_process_that_ignores_sigterm_is_killed():
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(600)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline()
        assert procs.stop([procs.record("stubborn", proc.pid)], timeout=1) == ["stubborn"]
        proc.wait(5)
        assert not psutil.pid_exists(proc.pid)
    finally:
        if proc.poll() is None:
            proc.kill()
