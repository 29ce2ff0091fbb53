"""Training job state and the per-project training lock, in Redis, shared by every replica
(:class:`~labelstack_backend.coordination.records.RedisRecords`: ``<prefix>:job:<project>``,
``<prefix>:jobs`` and ``<prefix>:train-lock:<project>``)."""

from __future__ import annotations

from labelstack_backend.coordination.link import RedisLink
from labelstack_backend.coordination.records import RedisRecords
from labelstack_backend.training.state import JobState


class RedisJobStore(RedisRecords[JobState]):
    def __init__(self, link: RedisLink) -> None:
        super().__init__(
            link,
            record="job",
            index="jobs",
            lock="train-lock",
            from_json=JobState.from_json,
            empty=lambda project: JobState(project=project),
        )

    def lock_held(self, project: str) -> bool:
        return self.lock_holder(project) is not None
