"""The backend's exceptions. The HTTP layer maps each to a status and a reason."""

from __future__ import annotations

from labelstack_common.errors import LabelStackError


class BackendError(LabelStackError):
    """Base class; ``status`` is the HTTP status the client gets."""

    status = 500

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadRequest(BackendError):
    """The request is malformed or misses a field."""

    status = 400


class UnprocessableConfig(BackendError):
    """The label config has nothing this predictor can fill."""

    status = 422


class UnknownProject(BackendError):
    status = 404


class NotReady(BackendError):
    """The model is still loading (or failed to load)."""

    status = 503


class ImageError(BackendError):
    """One image could not be fetched or decoded; fails its own task only."""

    status = 422


class ModelLoadError(BackendError):
    """Weights are missing or unreadable; the backend cannot serve."""

    status = 503


class TrainingError(BackendError):
    status = 500


class TrainingBusy(BackendError):
    status = 409


class TooManyTasks(BackendError):
    """A /predict asks for more tasks than LABELSTACK_MAX_TASKS_PER_REQUEST."""

    status = 413


class Busy(BackendError):
    """Every work slot of this worker is taken; ``retry_after`` is the client's wait, seconds."""

    status = 503

    def __init__(self, reason: str, retry_after: int = 2) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class InsufficientStorage(BackendError):
    """A write to the backend's disk failed: full, over quota or read-only. The reason names the
    folder (see :mod:`labelstack_backend.diskspace`)."""

    status = 507
