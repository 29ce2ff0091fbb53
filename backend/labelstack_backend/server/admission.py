"""Admission of work requests, so that the probes always find a free thread.

A gthread worker has ``THREADS`` threads and queues every connection beyond them. Requests
that wait on slow images could take them all, and ``/health`` would then time out behind
them: Kubernetes would restart or unroute a pod that is only busy. The gate admits at most
``slots`` work requests at once (two fewer than the threads by default) and answers the
rest at once with 503 and ``Retry-After``, so a thread is always left for the probes.
"""

from __future__ import annotations

import threading


class WorkGate:
    """A non-blocking counter of the work requests a worker runs."""

    def __init__(self, slots: int, retry_after: int = 2) -> None:
        if slots < 1:
            raise ValueError("a worker admits at least one request")
        self.slots = slots
        self.retry_after = retry_after
        self._free = threading.BoundedSemaphore(slots)

    def try_enter(self) -> bool:
        """Take a slot if one is free; never waits."""
        return self._free.acquire(blocking=False)

    def leave(self) -> None:
        self._free.release()
