"""Is it answering yet? One cheap check per kind of process."""

from __future__ import annotations

import redis
import requests


def http_ok(url: str) -> bool:
    """True when ``url`` answers 200 (a backend's /health says 200 only once its model is loaded)."""
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def redis_ok(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False
