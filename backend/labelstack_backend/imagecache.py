"""A bounded on-disk byte cache keyed by stable identity, safe across processes.

Files are written to a temporary name and renamed into place, so a reader never
sees half a file. Writes are best effort: one that fails (a full disk) is logged, leaves no
temporary file, and the request goes on uncached. Eviction removes the least recently used files (by mtime,
which a hit refreshes) once the folder grows past its byte budget.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from pathlib import Path

from labelstack_backend.diskspace import disk_reason, write_via_temp

log = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"
WARN_EVERY_SECONDS = 60.0


class DiskCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._written_since_sweep = 0
        self.hits = 0
        self.misses = 0
        self._warned_at = -WARN_EVERY_SECONDS

    def _path(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.root / digest[:2] / digest

    def get(self, key: str) -> bytes | None:
        if self.max_bytes <= 0:
            return None
        path = self._path(key)
        try:
            data = path.read_bytes()
        except OSError:
            self.misses += 1
            return None
        with contextlib.suppress(OSError):
            os.utime(path)
        self.hits += 1
        return data

    def put(self, key: str, data: bytes) -> None:
        if self.max_bytes <= 0 or len(data) > self.max_bytes // 4:
            return
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # The temporary file goes when the write fails; ``_entries`` skips the ".tmp-" prefix.
            write_via_temp(path, data, durable=False, prefix=TMP_PREFIX)
        except OSError as exc:
            self._warn(exc)
            return
        with self._lock:
            self._written_since_sweep += len(data)
            due = self._written_since_sweep > self.max_bytes // 10
            if due:
                self._written_since_sweep = 0
        if due:
            self.sweep()

    def _warn(self, exc: OSError) -> None:
        """One line per failed write (the request goes on), at most one a minute: a full disk
        fails every write, and one line a fetched image would drown the log."""
        now = time.monotonic()
        with self._lock:
            quiet = now - self._warned_at < WARN_EVERY_SECONDS
            if not quiet:
                self._warned_at = now
        reason = disk_reason(exc, self.root, "the image cache") or str(exc)
        log.log(
            logging.DEBUG if quiet else logging.WARNING,
            "image cache write failed: %s; continuing without caching",
            reason,
        )

    def size(self) -> int:
        return sum(size for _, size, _ in self._entries())

    def _entries(self) -> list[tuple[float, int, Path]]:
        out: list[tuple[float, int, Path]] = []
        if not self.root.exists():
            return out
        for sub in self.root.iterdir():
            if not sub.is_dir():
                continue
            for entry in os.scandir(sub):
                if entry.name.startswith(TMP_PREFIX):
                    continue
                with contextlib.suppress(OSError):
                    st = entry.stat()
                    out.append((st.st_mtime, st.st_size, Path(entry.path)))
        return out

    def sweep(self) -> int:
        """Evict least recently used files until the cache fits; return bytes freed."""
        entries = self._entries()
        total = sum(size for _, size, _ in entries)
        freed = 0
        for _, size, path in sorted(entries):
            if total - freed <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                freed += size
        return freed
