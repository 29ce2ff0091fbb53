"""Choose the job store: files under MODEL_DIR, or Redis when REDIS_URL is set."""

from __future__ import annotations

from labelstack_backend.coordination.link import RedisLink
from labelstack_backend.settings import Settings
from labelstack_backend.training.redis_store import RedisJobStore
from labelstack_backend.training.state import FileJobStore, JobStore


def job_store(settings: Settings, link: RedisLink | None = None) -> JobStore:
    """Redis when the backend scales out (replicas share the state and the lock), else files."""
    if link is not None:
        return RedisJobStore(link)
    return FileJobStore(settings.model_dir_resolved)
