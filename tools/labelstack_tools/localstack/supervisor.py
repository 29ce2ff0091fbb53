"""Start local processes, wait until each answers, notice one that dies, and stop them all by PID.

Every process runs in its own session, so a Ctrl-C in the terminal reaches only
``labelstack up``, which then stops them and whatever they started.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from labelstack_common.errors import LabelStackError
from labelstack_tools.localstack import procs
from labelstack_tools.localstack.plan import ServiceSpec
from labelstack_tools.localstack.probes import ProbeFailed
from labelstack_tools.localstack.state import ProcessRecord

Probe = Callable[[], bool]


class ServiceFailed(LabelStackError, RuntimeError):
    """A process exited, or never answered; the message carries its log's tail."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def boot_failure(log_text: str) -> str | None:
    """The reason a backend gave for refusing to start (its CRITICAL line), if it gave one. Pure."""
    for line in reversed(log_text.splitlines()):
        for marker in ("cannot start the ", "invalid backend settings"):
            if marker in line:
                return line[line.index(marker) :].strip()
    return None


@dataclass
class Running:
    name: str
    title: str
    popen: subprocess.Popen[bytes]
    log: Path
    probe: Probe
    record: ProcessRecord
    ready: bool = False
    started_at: float = 0.0

    def failure(self) -> ServiceFailed:
        reason = boot_failure(tail(self.log, 200))
        code = self.popen.returncode
        head = f"{self.title} exited with code {code}" if code is not None else f"{self.title} failed"
        detail = reason or f"the end of its log ({self.log}):\n{tail(self.log)}"
        return ServiceFailed(self.name, f"{head}: {detail}")


class Supervisor:
    def __init__(self) -> None:
        self.running: list[Running] = []

    def start(self, spec: ServiceSpec, probe: Probe, base_env: Mapping[str, str] | None = None) -> Running:
        spec.log.parent.mkdir(parents=True, exist_ok=True)
        with spec.log.open("ab") as log:
            popen = subprocess.Popen(
                list(spec.argv),
                env=spec.environment(os.environ if base_env is None else base_env),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self.adopt(spec.name, spec.title, popen, spec.log, probe, spec.url)

    def adopt(
        self, name: str, title: str, popen: subprocess.Popen[bytes], log: Path, probe: Probe, url: str
    ) -> Running:
        """Supervise a process started elsewhere (Label Studio's own launcher)."""
        rec = procs.record(name, popen.pid, log=str(log), url=url)
        running = Running(name, title, popen, log, probe, rec, started_at=time.monotonic())
        self.running.append(running)
        return running

    def records(self) -> list[ProcessRecord]:
        return [r.record for r in self.running]

    def exited(self) -> Running | None:
        return next((r for r in self.running if r.popen.poll() is not None), None)

    def wait_ready(
        self,
        timeout: float,
        on_ready: Callable[[Running], None] = lambda _r: None,
        interval: float = 0.5,
    ) -> None:
        """Until every process answers its probe; raise :class:`ServiceFailed` when one exits first
        or says it never will."""
        deadline = time.monotonic() + timeout
        while True:
            dead = self.exited()
            if dead is not None:
                raise dead.failure()
            for r in self.running:
                try:
                    ready = r.ready or r.probe()
                except ProbeFailed as exc:
                    raise ServiceFailed(r.name, f"{r.title} failed: {exc}; its log: {r.log}") from None
                if ready and not r.ready:
                    r.ready = True
                    on_ready(r)
            waiting = [r for r in self.running if not r.ready]
            if not waiting:
                return
            if time.monotonic() > deadline:
                r = waiting[0]
                raise ServiceFailed(
                    r.name, f"{r.title} did not answer within {timeout:.0f} s; its log:\n{tail(r.log)}"
                )
            time.sleep(interval)

    def stop_all(self) -> list[str]:
        """Stop every process and what it started, all at once; return the names that were running."""
        stopped = procs.stop(reversed(self.records()))
        for r in self.running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                r.popen.wait(5)  # reap, so no zombie is left behind
        return stopped
