"""One pass of bulk pre-labeling over a project: page through its tasks, predict those lacking a
prediction of the serving version in the model's batches, and write each batch back in one
request. Label Studio is the only truth about what is done, so a pass that was killed is resumed
by simply running again: it skips what the dead one wrote, and writes nothing twice."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from labelstack_backend.errors import BackendError
from labelstack_backend.prelabel.progress import Progress, import_payload, to_predict
from labelstack_common.labelstudio import LabelStudioClient, TaskRow

log = logging.getLogger(__name__)

#: Tasks asked of Label Studio per page (ids, data and prediction versions: a few KB per page).
PAGE_SIZE = 100


class LockLost(BackendError):
    """Another run took the project's lock (ours expired): stop before writing anything more."""

    status = 409


@dataclass(frozen=True)
class JobParts:
    """What a pass needs, bound to one project by the service."""

    ls: LabelStudioClient
    project: int
    version: Callable[[], str]  # the version serving the project now
    predict: Callable[[Sequence[dict[str, Any]]], list[dict[str, Any]]]  # a batch, at background priority
    batch_size: int
    page_size: int = PAGE_SIZE


def run_pass(
    parts: JobParts,
    progress: Progress,
    save: Callable[[Progress], None],
    still_ours: Callable[[], bool] = lambda: True,
) -> Progress:
    """Predict every task of the project lacking a prediction of the serving version."""
    progress.version = parts.version()
    progress.done = progress.written = progress.failed = 0
    batch: list[TaskRow] = []

    def flush() -> None:
        if not batch:
            return
        results = parts.predict([t.as_task() for t in batch])
        payload = [p for t, r in zip(batch, results, strict=True) if (p := import_payload(t.id, r))]
        if not still_ours():
            raise LockLost(f"project {parts.project}: another run took the pre-labeling lock; stopping")
        created = parts.ls.import_predictions(parts.project, payload)
        progress.written += created
        progress.done += created
        progress.failed += len(batch) - len(payload)
        batch.clear()
        save(progress)

    for page in parts.ls.task_pages(parts.project, parts.page_size):
        progress.total = page.total
        missing, holding = to_predict(page.tasks, progress.version)
        progress.done += holding
        for task in missing:
            batch.append(task)
            if len(batch) >= parts.batch_size:
                flush()
    flush()
    progress.updated_at = time.time()
    save(progress)
    return progress
