"""What a full (or unwritable) disk means to the backend, in one place.

* :func:`disk_reason` turns the errno of a failed write into a reason that names the folder
  (``no space left on MODEL_DIR (/models)``), or None when the error is not about storage.
* :func:`storage_errors` raises that reason as :class:`InsufficientStorage` (HTTP 507): what
  training and publishing do, so a request or a job state says why instead of "OSError".
* :func:`write_via_temp` writes a file through a temporary name and one rename, and removes the
  temporary file whatever step fails (a full disk fails the write, the flush or the fsync).

Cache writes log the reason and go on; serving only reads, so a full disk never fails it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from labelstack_backend.errors import InsufficientStorage
from labelstack_common.contract import Env

# Write-only errors: whatever raised them, the disk is the cause.
_NO_SPACE = {errno.ENOSPC: "no space left on", errno.EDQUOT: "disk quota exceeded on"}
_READ_ONLY = {errno.EROFS: "is read-only"}
# Reads fail with these too: they count only for a path inside the folder.
_DENIED = {errno.EACCES: "is not writable (permission denied)", errno.EPERM: "is not writable"}


def _paths(exc: OSError) -> list[Path]:
    # shutil.copyfile puts the source in ``filename`` and the destination in ``filename2``.
    names = (exc.filename2, exc.filename)
    return [Path(os.fsdecode(n)).resolve() for n in names if isinstance(n, str | bytes | os.PathLike)]


def disk_reason(exc: OSError, folder: Path, label: str = Env.MODEL_DIR) -> str | None:
    """Why the write failed, naming ``folder`` (as ``label (folder)``), or None when ``exc`` is
    not a storage error. A path outside ``folder`` (training also writes to /dev/shm or HOME)
    is named itself, so the reason never blames the wrong disk."""
    root = folder.resolve()
    paths = _paths(exc)
    inside = not paths or any(p.is_relative_to(root) for p in paths)
    where = f"{label} ({root})" if inside else str(paths[0])
    code = exc.errno if exc.errno is not None else -1
    if code in _NO_SPACE:
        return f"{_NO_SPACE[code]} {where}"
    if code in _READ_ONLY:
        return f"{where} {_READ_ONLY[code]}"
    if code in _DENIED and paths and inside:
        return f"{where} {_DENIED[code]}"
    return None


def disk_reason_in(exc: BaseException, folder: Path, label: str = Env.MODEL_DIR) -> str | None:
    """:func:`disk_reason` of the first OSError in ``exc``'s chain (libraries such as
    ultralytics re-raise a failed write as their own error)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and (reason := disk_reason(current, folder, label)):
            return reason
        current = current.__cause__ or current.__context__
    return None


@contextlib.contextmanager
def storage_errors(folder: Path, label: str = Env.MODEL_DIR) -> Iterator[None]:
    """Raise a storage OSError of the block as :class:`InsufficientStorage` with its reason."""
    try:
        yield
    except OSError as exc:
        reason = disk_reason(exc, folder, label)
        if reason is None:
            raise
        raise InsufficientStorage(reason) from exc


def write_via_temp(path: Path, data: bytes, *, durable: bool = True, prefix: str | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file in its folder and one rename, so a
    reader sees the old file or the new one. ``durable`` fsyncs before the rename (job state and
    pointers; a cache does without). On any failure the temporary file is gone and the old
    ``path`` is untouched; the OSError is raised as it came."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix or f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on ``path`` (created, with its folder, if missing): one writer at a
    time across the processes sharing the folder. The OS drops it if the holder dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class FileLease:
    """An flock held on an open file: it lives as long as this process holds the descriptor, and
    the kernel drops it when the process dies, so a crashed holder cannot keep it."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def renew(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def try_flock(path: Path, note: str = "") -> FileLease | None:
    """An exclusive flock on ``path`` (created, with its folder, if missing) without waiting, or
    None while another process holds it. ``note`` (who holds it) is written into the file for
    whoever looks; the flock is the lock, so a full disk that refuses the note does not refuse
    the lock. Raises InsufficientStorage when the file cannot even be created."""
    with storage_errors(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    if note:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, note.encode())
    return FileLease(fd)
