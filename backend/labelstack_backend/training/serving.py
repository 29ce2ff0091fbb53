"""Which trained version serves a project, by hand: promote, roll back, list, and retention.

A switch is the registry's atomic pointer move (a rename under MODEL_DIR, one object write in
GCS), then an announcement so that every worker of every replica loads and serves it (with Redis;
without it, one replica reads the pointer per request, and a bucket's readers at their poll).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from labelstack_backend.errors import BackendError
from labelstack_backend.registry.store import ModelStore
from labelstack_backend.training.promotion import expired, rollback_target

log = logging.getLogger(__name__)

Announce = Callable[[str, str], object]


class UnknownVersion(BackendError):
    status = 404


class NothingToRollBack(BackendError):
    status = 409


class ServingControl:
    def __init__(self, registry: ModelStore, keep: int, announce: Announce = lambda p, v: None) -> None:
        self.registry = registry
        self.keep = keep
        self.announce = announce

    def _existing(self, project: str) -> list[str]:
        return [v.name for v in self.registry.versions(project)]

    def switch(self, project: str, name: str, action: str, reason: str) -> dict[str, Any]:
        existing = self._existing(project)
        if name not in existing:
            known = ", ".join(existing[-5:]) or "none"
            raise UnknownVersion(f"project {project} has no version {name!r} (latest: {known})")
        before = self.registry.current_name(project)
        if before != name:
            self.registry.switch(project, name, {"action": action, "reason": reason, "was": before or ""})
            self.announce(project, name)
        log.info("project %s: %s %s (was %s): %s", project, action, name, before or "the base model", reason)
        return {"project": project, "action": action, "serving": name, "was": before, "reason": reason}

    def promote(self, project: str, name: str, reason: str = "promoted by hand") -> dict[str, Any]:
        return self.switch(project, name, "promote", reason)

    def rollback(self, project: str, name: str | None = None) -> dict[str, Any]:
        """Back to ``name``, or to the version that served before the current one."""
        current = self.registry.current_name(project)
        target = name or rollback_target(
            self.registry.history(project), current, set(self._existing(project))
        )
        if target is None:
            raise NothingToRollBack(
                f"project {project}: no earlier version to roll back to from {current or 'the base model'}"
            )
        return self.switch(project, target, "rollback", f"rolled back from {current or 'the base model'}")

    def prune(self, project: str) -> list[str]:
        """Keep the newest ``keep`` versions and the serving one; delete the rest."""
        gone = expired(self._existing(project), self.registry.current_name(project), self.keep)
        for name in gone:
            self.registry.delete(project, name)
        if gone:
            log.info("project %s: retention removed %s (keeping %d)", project, ", ".join(gone), self.keep)
        return gone

    def describe(self, project: str) -> dict[str, Any]:
        """Every kept version with its validation scores and why it was or was not promoted."""
        serving = self.registry.current_name(project)
        details = [
            {
                "version": v.name,
                "created_at": v.meta.get("created_at"),
                "serving": v.name == serving,
                "validation": v.meta.get("validation"),
                "promotion": v.meta.get("promotion"),
            }
            for v in self.registry.versions(project)
        ]
        return {"serving": serving, "details": details, "history": self.registry.history(project)[-10:]}
