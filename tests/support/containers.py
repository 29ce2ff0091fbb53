"""Run the built images as containers, without a daemon: buildah's chroot isolation.

``podman run`` fails on this kind of machine (``setrlimit``: operation not permitted), while
``buildah run --isolation chroot`` works: it runs a command in a working container made from the
image, as the image's user, with its environment and working directory, on the host's network
(so loopback servers on either side reach each other). The command is the image's own
ENTRYPOINT and CMD, read from the image, unless a test names another.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[2]
BUILDAH = shutil.which("buildah")
# What `buildah run` itself writes into a container's layer.
RUNTIME_FILES = frozenset({"/etc/hosts", "/etc/resolv.conf", "/etc/hostname", "/run/.containerenv"})


def version() -> str:
    """The images' tag: the chart's appVersion, as scripts/images.sh tags them."""
    text = (REPO / "charts" / "labelstack" / "Chart.yaml").read_text()
    found = re.search(r'^appVersion:\s*"?([^"\s]+)"?\s*$', text, re.MULTILINE)
    assert found, "Chart.yaml has no appVersion"
    return found.group(1)


def image(part: str) -> str:
    return f"localhost/labelstack/{part}:{version()}"


def _buildah(*args: str, timeout: float = 300) -> str:
    assert BUILDAH, "no buildah"
    done = subprocess.run([BUILDAH, *args], check=False, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"buildah {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def present(name: str) -> bool:
    if not BUILDAH:
        return False
    return (
        subprocess.run(
            [BUILDAH, "inspect", "--type", "image", name], check=False, capture_output=True
        ).returncode
        == 0
    )


@dataclass(frozen=True)
class ImageConfig:
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    user: str
    env: dict[str, str]
    workdir: str
    healthcheck: tuple[str, ...]
    exposed: tuple[str, ...]


def config(name: str) -> ImageConfig:
    """What the image says about how to run it (its Docker-format config)."""
    raw: dict[str, Any] = json.loads(_buildah("inspect", "--type", "image", name))["Docker"]["config"]
    health = raw.get("Healthcheck") or {}
    return ImageConfig(
        entrypoint=tuple(raw.get("Entrypoint") or ()),
        cmd=tuple(raw.get("Cmd") or ()),
        user=raw.get("User") or "",
        env=dict(item.split("=", 1) for item in raw.get("Env") or ()),
        workdir=raw.get("WorkingDir") or "",
        healthcheck=tuple(health.get("Test") or ()),
        exposed=tuple(raw.get("ExposedPorts") or {}),
    )


@dataclass
class Running:
    """A command running in a container; ``log_path`` has its output."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None


class Container:
    """One working container made from an image; its writable layer lives until :meth:`remove`,
    like a container that is stopped and started again. A new :class:`Container` is a new one."""

    def __init__(self, image_name: str) -> None:
        self.name = f"labelstack-test-{uuid.uuid4().hex[:10]}"
        _buildah("from", "--pull-never", "--name", self.name, image_name)
        self.config = config(image_name)

    def _run_args(self, env: Mapping[str, str], volumes: Mapping[Path, str], user: str | None) -> list[str]:
        assert BUILDAH
        args = [BUILDAH, "run", "--isolation", "chroot"]
        if user is not None:
            args += ["--user", user]
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]
        for host, inside in volumes.items():
            args += ["--volume", f"{host}:{inside}"]
        return [*args, self.name, "--"]

    def command(self, argv: Sequence[str] | None = None) -> list[str]:
        """``argv``, or the image's ENTRYPOINT + CMD, as ``docker run IMAGE`` would run it."""
        return list(argv) if argv is not None else [*self.config.entrypoint, *self.config.cmd]

    def exec(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        volumes: Mapping[Path, str] | None = None,
        user: str | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command to its end; its output is captured."""
        return subprocess.run(
            [*self._run_args(env or {}, volumes or {}, user), *argv],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(
        self,
        log_path: Path,
        *,
        argv: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        volumes: Mapping[Path, str] | None = None,
    ) -> Running:
        """Start the image's entry point (or ``argv``) in the background."""
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [*self._run_args(env or {}, volumes or {}, None), *self.command(argv)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return Running(proc, log_path)

    def written(self) -> list[str]:
        """The files this container wrote into its own layer (overlay's upper folder), leaving out
        the ones the runtime itself puts there. Empty when every write went to a volume, as under
        a pod's read-only root filesystem."""
        merged = Path(_buildah("mount", self.name).strip())
        try:
            upper = merged.parent / "diff"
            assert merged.name == "merged" and upper.is_dir(), f"not an overlay container: {merged}"
            files = ("/" + str(p.relative_to(upper)) for p in upper.rglob("*") if not p.is_dir())
            return sorted(f for f in files if f not in RUNTIME_FILES)
        finally:
            _buildah("umount", self.name)

    def remove(self) -> None:
        with suppress(RuntimeError):
            _buildah("rm", self.name)


def entry_process(running: Running) -> psutil.Process | None:
    """The container's first process (its PID 1 under a runtime): the highest descendant of
    ``buildah run`` that is not buildah itself."""
    with suppress(psutil.Error):
        for child in psutil.Process(running.proc.pid).children(recursive=True):
            with suppress(psutil.Error):
                argv = child.cmdline()
                # buildah re-executes itself as buildah-chroot-runtime and buildah-chroot-exec.
                if argv and not Path(argv[0]).name.startswith("buildah"):
                    return child
    return None


def stop(running: Running, timeout: float = 30) -> int:
    """SIGTERM to the container's first process, as ``docker stop`` sends it (buildah itself
    would kill it outright); SIGKILL to all of it after ``timeout``. Returns its exit status."""
    if running.proc.poll() is None:
        first = entry_process(running)
        if first is not None:
            with suppress(psutil.Error):
                first.send_signal(signal.SIGTERM)
        try:
            running.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(running.proc.pid, signal.SIGKILL)
            running.proc.wait(10)
    return running.proc.returncode


@contextmanager
def container(image_name: str) -> Iterator[Container]:
    made = Container(image_name)
    try:
        yield made
    finally:
        made.remove()


def owned_by(path: Path, user: str) -> Path:
    """``path`` made, and handed to the image's numeric ``uid:gid``, as a volume's fsGroup would."""
    path.mkdir(parents=True, exist_ok=True)
    uid, _, gid = user.partition(":")
    os.chown(path, int(uid), int(gid or uid))
    return path
