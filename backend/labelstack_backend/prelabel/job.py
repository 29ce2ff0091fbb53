"""One pass of bulk pre-labeling over a project: page through its tasks, predict those lacking a
prediction of the serving version in the model's batches, and write each batch back in one
request. Label Studio is the only truth about what is done, so a pass that was killed is resumed
by simply running again: it skips what the dead one wrote, and writes nothing twice."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from labelstack_backend.errors import BackendError
from labelstack_backend.prelabel.progress import Progress, import_payload, to_predict
from labelstack_common.labelstudio import LabelStudioClient, TaskRow

log = logging.getLogger(__name__)

#: Tasks asked of Label Studio per page (ids, data and prediction versions: a few KB per page).
PAGE_SIZE = 100
#: Batches per predictor call and per bulk write: the predictor fetches a batch's images while
#: the one before it runs (one batch per call would leave the model idle during every fetch).
BATCHES_PER_WRITE = 4


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
    batch_size: int  # the model's own batch: images per forward pass
    page_size: int = PAGE_SIZE
    batches_per_write: int = BATCHES_PER_WRITE

    @property
    def chunk(self) -> int:
        return max(1, self.batch_size * self.batches_per_write)


def run_pass(
    parts: JobParts,
    progress: Progress,
    save: Callable[[Progress], None],
    still_ours: Callable[[], bool] = lambda: True,
) -> Progress:
    """Predict every task of the project lacking a prediction of the serving version, and write
    the predictions back every ``parts.chunk`` tasks. A write goes on while the next chunk is
    predicted (Label Studio's commit then costs the model nothing); one is in flight at most."""
    progress.version = parts.version()
    progress.done = progress.written = progress.failed = 0
    progress.predict_s = progress.write_s = 0.0
    lock = threading.Lock()  # the writer thread and this one both count
    chunk: list[TaskRow] = []

    def write(payload: list[dict[str, Any]], failed: int) -> None:
        started = time.monotonic()
        created = parts.ls.import_predictions(parts.project, payload)
        with lock:
            progress.write_s += time.monotonic() - started
            progress.written += created
            progress.done += created
            progress.failed += failed
            save(progress)

    with ThreadPoolExecutor(1, thread_name_prefix="prelabel-write") as writer:
        writing: Future[None] | None = None

        def flush() -> None:
            nonlocal writing
            if not chunk:
                return
            started = time.monotonic()
            results = parts.predict([t.as_task() for t in chunk])
            with lock:
                progress.predict_s += time.monotonic() - started
            payload = [p for t, r in zip(chunk, results, strict=True) if (p := import_payload(t.id, r))]
            failed = len(chunk) - len(payload)
            chunk.clear()
            if writing is not None:
                writing.result()  # a failed write stops the pass here
            if not still_ours():
                raise LockLost(f"project {parts.project}: another run took the pre-labeling lock; stopping")
            writing = writer.submit(write, payload, failed)

        for page in parts.ls.task_pages(parts.project, parts.page_size):
            missing, holding = to_predict(page.tasks, progress.version)
            with lock:
                progress.total = page.total
                progress.done += holding
            for task in missing:
                chunk.append(task)
                if len(chunk) >= parts.chunk:
                    flush()
        flush()
        if writing is not None:
            writing.result()
    progress.updated_at = time.time()
    save(progress)
    return progress
