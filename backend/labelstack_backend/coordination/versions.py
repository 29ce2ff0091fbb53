"""Announcements of new model versions: the trainer publishes, every replica listens.

The registry's ``current`` pointer (under MODEL_DIR or at a ``gs://`` prefix) stays
the truth; an announcement only says "look now" so that replicas switch within
a second instead of at their next poll. A replica that misses one (Redis down,
a reconnect) catches up at its next poll or when Redis comes back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labelstack_backend.coordination.link import LINK_ERRORS, RedisLink, RedisUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Announcement:
    project: str
    version: str
    published_at: float  # wall clock of the publisher, for the switch-time metric

    def to_json(self) -> str:
        return json.dumps(
            {"project": self.project, "version": self.version, "published_at": self.published_at}
        )

    @classmethod
    def parse(cls, data: Any) -> Announcement | None:
        try:
            body = json.loads(data)
            return cls(str(body["project"]), str(body["version"]), float(body.get("published_at", 0.0)))
        except (ValueError, TypeError, KeyError):
            return None


class VersionBus:
    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.channel = link.key("versions")

    def announce(self, project: str, version: str) -> bool:
        """Tell every replica; False when Redis is down (they find it at their next poll)."""
        message = Announcement(project, version, time.time()).to_json()
        try:
            receivers = self.link.run("announce", lambda r: r.publish(self.channel, message))
        except RedisUnavailable as exc:
            log.warning("could not announce %s of project %s: %s", version, project, exc.reason)
            return False
        log.info("announced %s of project %s to %s listener(s)", version, project, receivers)
        return True

    def listen(
        self,
        on_announcement: Callable[[Announcement], None],
        on_subscribed: Callable[[], None],
        stop: threading.Event,
    ) -> None:
        """Deliver announcements until ``stop``; resubscribe after any failure.

        ``on_subscribed`` runs after every (re)subscription: announcements sent while
        this replica was not listening are lost, so the caller re-reads the truth.
        """
        delay = 0.25
        while not stop.is_set():
            pubsub = self.link.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(self.channel)
                on_subscribed()
                delay = 0.25
                while not stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    announcement = Announcement.parse(message["data"])
                    if announcement is None:
                        log.warning("ignoring a malformed version announcement: %r", message["data"])
                        continue
                    on_announcement(announcement)
            except LINK_ERRORS as exc:
                log.debug("version announcements interrupted (%s); resubscribing", exc)
                stop.wait(delay)
                delay = min(delay * 2, 5.0)
            except Exception:
                log.exception("handling a version announcement failed")
                stop.wait(delay)
            finally:
                with contextlib.suppress(*LINK_ERRORS):
                    pubsub.close()
