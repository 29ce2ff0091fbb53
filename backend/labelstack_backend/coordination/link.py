"""One Redis connection per process, with honest health and reconnection by itself.

Every Redis call goes through :meth:`RedisLink.run`, which turns connection
failures into :class:`RedisUnavailable` (a 503 with a reason) and records the
outage. While Redis is down, calls fail at once instead of each paying a
connect timeout, so a click never waits on a dead Redis; a monitor thread pings
it and announces its return to whoever listens (the version follower resyncs).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import redis

from labelstack_backend import metrics
from labelstack_backend.errors import BackendError
from labelstack_backend.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# Failures that mean "Redis is not there" (refused, reset, timed out, wrong password).
LINK_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


class RedisUnavailable(BackendError):
    """Redis cannot be reached: coordination (not serving) is what is lost."""

    status = 503

    def __init__(self, cause: str) -> None:
        super().__init__(f"Redis is unreachable ({cause})")
        self.cause = cause


@dataclass(frozen=True)
class LinkStatus:
    state: str  # "up", "down" or "off" (no REDIS_URL)
    reason: str = ""
    since: float = 0.0

    @property
    def degraded(self) -> bool:
        return self.state == "down"

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"status": self.state}
        if self.reason:
            out["reason"] = self.reason
        if self.since:
            out["since"] = round(self.since, 3)
        return out


OFF = LinkStatus("off")


class RedisLink:
    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "labelstack",
        *,
        monitor_interval: float = 2.0,
    ) -> None:
        self.client = client
        self.prefix = prefix.rstrip(":")
        self.monitor_interval = monitor_interval
        self._lock = threading.Lock()
        self._status = LinkStatus("up", since=time.time())
        self._retry_at = 0.0
        self._backoff = 0.25
        self._listeners: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None
        metrics.REDIS_UP.set(1)

    @classmethod
    def connect(
        cls, url: str, *, password: str = "", prefix: str = "labelstack", timeout: float = 0.5
    ) -> RedisLink:
        client = redis.Redis.from_url(
            url,
            password=password or None,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=15,
        )
        return cls(client, prefix)

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # -- health ---------------------------------------------------------------
    def status(self) -> LinkStatus:
        return self._status

    @property
    def up(self) -> bool:
        return self._status.state == "up"

    def on_reconnect(self, listener: Callable[[], None]) -> None:
        """``listener`` runs (on the monitor thread) each time Redis comes back."""
        self._listeners.append(listener)

    def _mark_down(self, what: str, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}".strip()
        with self._lock:
            was_up = self.up
            if was_up:
                self._status = LinkStatus("down", reason, time.time())
                self._backoff = 0.25
            else:
                self._status = LinkStatus("down", reason, self._status.since)
                self._backoff = min(self._backoff * 2, 8.0)
            self._retry_at = time.monotonic() + self._backoff
        metrics.REDIS_UP.set(0)
        metrics.REDIS_ERRORS.labels(what).inc()
        if was_up:
            log.warning("Redis is unreachable (%s during %s); serving on without coordination", reason, what)

    def _mark_up(self) -> None:
        with self._lock:
            if self.up:
                return
            down_for = time.time() - self._status.since
            self._status = LinkStatus("up", since=time.time())
        metrics.REDIS_UP.set(1)
        log.info("Redis is back after %.1f s; coordination resumes", down_for)
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("a Redis reconnect listener failed")

    def run(self, what: str, call: Callable[[redis.Redis], T]) -> T:
        """``call(client)``, or :class:`RedisUnavailable` when Redis cannot be reached."""
        if not self.up and time.monotonic() < self._retry_at:
            raise RedisUnavailable(self._status.reason)
        try:
            result = call(self.client)
        except LINK_ERRORS as exc:
            self._mark_down(what, exc)
            raise RedisUnavailable(self._status.reason) from None
        if not self.up:
            self._mark_up()
        return result

    def ping(self) -> bool:
        try:
            self.run("ping", lambda r: r.ping())
        except RedisUnavailable:
            return False
        return True

    # -- monitor --------------------------------------------------------------
    def start_monitor(self) -> None:
        """Ping in the background, so health is true without traffic and a return is noticed."""
        if self._monitor is not None:
            return
        self._monitor = threading.Thread(target=self._watch, name="redis-monitor", daemon=True)
        self._monitor.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.monitor_interval if self.up else min(self._backoff, 1.0)):
            if not self.up:
                self._retry_at = 0.0  # the monitor always gets to try
            self.ping()

    def close(self) -> None:
        self._stop.set()
        self.client.close()


def coordination_link(settings: Settings) -> RedisLink:
    """The link for ``REDIS_URL`` (the caller checks that it is set)."""
    return RedisLink.connect(
        settings.redis_url,
        password=settings.redis_password,
        prefix=settings.redis_prefix,
        timeout=settings.redis_timeout,
    )
