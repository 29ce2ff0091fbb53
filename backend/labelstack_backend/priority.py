"""A gate in front of a model: interactive callers go before background work.

SAM's encoder runs one call at a time (``exclusive``); the segmentation model lets interactive
requests share it as before and only makes bulk pre-labeling wait. Either way a background
caller starts only while no interactive one runs or waits, and a waiting interactive caller
goes next: it waits at most for the one background batch already running.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class PriorityGate:
    def __init__(self, *, exclusive: bool = True) -> None:
        self.exclusive = exclusive  # interactive callers also take turns among themselves
        self._cond = threading.Condition()
        self._background = False  # a background caller holds the gate
        self._active = 0  # interactive callers holding it
        self._waiting = 0  # interactive callers waiting

    def _blocked(self, background: bool) -> bool:
        if self._background:
            return True
        if background:
            return self._active > 0 or self._waiting > 0
        return self.exclusive and self._active > 0

    @contextmanager
    def hold(self, background: bool = False) -> Iterator[None]:
        with self._cond:
            if not background:
                self._waiting += 1
            try:
                while self._blocked(background):
                    self._cond.wait()
            finally:
                if not background:
                    self._waiting -= 1
            if background:
                self._background = True
            else:
                self._active += 1
        try:
            yield
        finally:
            with self._cond:
                if background:
                    self._background = False
                else:
                    self._active -= 1
                self._cond.notify_all()
