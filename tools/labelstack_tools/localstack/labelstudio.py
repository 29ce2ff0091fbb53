"""Run a real Label Studio as a local process (for ``labelstack up`` and the tests).

Label Studio picks another port silently when its port is busy, so we check the
port before starting and confirm afterwards that it answers where we asked.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

from labelstack_common import ssrf
from labelstack_common.errors import LabelStackError
from labelstack_tools.localstack.ports import port_in_use

log = logging.getLogger(__name__)

DEFAULT_VENV_ENV = "LABELSTACK_LS_VENV"


class LabelStudioStartError(LabelStackError, RuntimeError):
    """Label Studio did not start; the message says why, with its log's tail."""


def new_token() -> str:
    """A 40-character legacy API token, the form Label Studio's ``USER_TOKEN`` expects."""
    return secrets.token_hex(20)


def label_studio_bin(venv: Path | None = None) -> Path:
    venv = venv or Path(
        os.environ.get(DEFAULT_VENV_ENV, Path.home() / ".local/share/labelstack/label-studio")
    )
    return venv / "bin" / "label-studio"


@dataclass
class LabelStudioProcess:
    data_dir: Path
    port: int
    username: str
    password: str
    token: str
    binary: Path = field(default_factory=label_studio_bin)
    host: str = "127.0.0.1"
    local_files_root: Path | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    # "invite": only the organisation's invite link signs people up, as on Kubernetes.
    signup: str = "invite"
    proc: subprocess.Popen[bytes] | None = None
    log_file: Path | None = None  # default: label-studio.log in its data dir

    @property
    def log_path(self) -> Path:
        return self.log_file or self.data_dir / "label-studio.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "LABEL_STUDIO_USERNAME": self.username,
            "LABEL_STUDIO_PASSWORD": self.password,
            "LABEL_STUDIO_USER_TOKEN": self.token,
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            # SSRF protection stays on; only loopback, where the backends listen, is let through.
            **ssrf.label_studio_env(ssrf.LOOPBACK),
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": str(self.signup == "invite").lower(),
            "LABEL_STUDIO_HOST": self.url,
            "DJANGO_DB": "sqlite",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "COLLECT_ANALYTICS": "false",
            "LATEST_VERSION_CHECK": "false",
            "PYTHONUNBUFFERED": "1",
        }
        if self.local_files_root is not None:
            env["LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED"] = "true"
            env["LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"] = str(self.local_files_root)
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        if not self.binary.exists():
            raise LabelStudioStartError(
                f"Label Studio is not installed at {self.binary}; run `scripts/bootstrap.sh label-studio` "
                f"or set {DEFAULT_VENV_ENV} to its virtualenv"
            )
        if port_in_use(self.port, self.host):
            raise LabelStudioStartError(
                f"port {self.port} is already in use; stop what runs there or pick another port"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logfile = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                str(self.binary), "start", "--no-browser", "--internal-host", self.host,
                "--port", str(self.port), "--data-dir", str(self.data_dir),
                "--username", self.username, "--password", self.password, "--user-token", self.token,
                "--enable-legacy-api-token",
            ],
            env=self.env(),
            stdout=logfile,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        logfile.close()

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise LabelStudioStartError(
                    f"Label Studio exited with code {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(1.0)
        raise LabelStudioStartError(
            f"Label Studio did not answer on {self.url} within {timeout:.0f}s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        except ProcessLookupError:
            pass
