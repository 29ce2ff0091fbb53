"""Choose the job store: files under MODEL_DIR, or Redis when REDIS_URL is set."""

from __future__ import annotations

from labelstack_backend.settings import Settings
from labelstack_backend.training.state import FileJobStore, JobStore


def job_store(settings: Settings) -> JobStore:
    return FileJobStore(settings.model_dir_resolved)
