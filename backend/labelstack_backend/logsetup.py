"""Logging: one line per event, to stderr, with the process id (gunicorn runs several)."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_labelstack", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        handler._labelstack = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level.upper())
    # Keep third-party chatter at WARNING unless we are debugging.
    if level.upper() != "DEBUG":
        for noisy in ("urllib3", "httpx", "PIL", "ultralytics", "google", "matplotlib"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
