"""Is it answering yet? One cheap check per kind of process."""

from __future__ import annotations

import redis
import requests

from labelstack_common.errors import LabelStackError


class ProbeFailed(LabelStackError, RuntimeError):
    """The process answers, and says it will never be ready (a backend whose model failed to load)."""


def http_ok(url: str) -> bool:
    """True when ``url`` answers 200."""
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def backend_ready(url: str) -> bool:
    """A backend's /health: 200 once its model is loaded, 503 LOADING before; 503 FAILED (with the
    reason) after a failed load raises :class:`ProbeFailed`, as the process stays up regardless."""
    try:
        resp = requests.get(f"{url}/health", timeout=2)
    except requests.RequestException:
        return False
    if resp.status_code == 200:
        return True
    try:
        body = resp.json()
    except ValueError:
        return False
    if isinstance(body, dict) and body.get("status") == "FAILED":
        raise ProbeFailed(f"its model failed to load: {body.get('reason', 'no reason given')}")
    return False


def redis_ok(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False
