"""Which version of the YOLO-seg model serves each project.

Each project may have fine-tuned versions in the model registry; a new version
is loaded before it replaces the old, so a switch never fails a prediction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from labelstack_backend import metrics, runtime
from labelstack_backend.coordination.versions import Announcement, VersionBus
from labelstack_backend.errors import ModelLoadError
from labelstack_backend.registry.store import ModelStore, file_digest
from labelstack_backend.settings import Settings
from labelstack_backend.yolo.export import Exports
from labelstack_backend.yolo.model import SegmentationModel, WeightsSource, base_weights
from labelstack_backend.yolo.runtime import choose

log = logging.getLogger(__name__)

MAX_LOADED_MODELS = 4
# A version that failed to load (missing, unreadable) is tried again after this long.
RETRY_FAILED_VERSION_SECONDS = 5.0


class SegmentationModels:
    """The base model plus each project's fine-tuned versions, loaded on demand.

    Which version serves a project is decided here, and only switched once the
    new model is loaded, so a switch never fails or stalls a prediction:

    * one replica with models under MODEL_DIR: every request reads the
      registry's ``current`` file (a local read of a few bytes);
    * scaled out (Redis, or models in ``gs://``): requests use what this process
      serves, and :class:`VersionFollower` switches it when a new version is
      announced, or when a poll finds the pointer moved (a missed announcement).
    """

    def __init__(self, settings: Settings, registry: ModelStore) -> None:
        self.settings = settings
        self.registry = registry
        self.source = base_weights(settings)
        self.device = runtime.resolve_device(settings.device)
        self.half = runtime.use_half(self.device, settings.half)
        self.exports = Exports(
            choose(settings.runtime, self.device), imgsz=settings.imgsz, half=self.half, device=self.device
        )
        self.base: SegmentationModel | None = None
        self.per_request = registry.local_pointer and not settings.redis_url
        self._serving: dict[str, str] = {}  # project -> fine-tuned version served ("": the base model)
        self._seen: dict[str, str] = {}  # project -> the registry's pointer as last switched to
        self._failed: dict[str, float] = {}  # version -> when it last failed to load
        self._loaded: OrderedDict[str, SegmentationModel] = OrderedDict()
        self._lock = threading.Lock()
        self._load_locks: dict[str, threading.Lock] = {}

    def base_version(self) -> str:
        if self.source.kind == "config":
            return self.source.name
        path = Path(self.source.value)
        digest = file_digest(path) if path.is_file() else "default"
        return f"{self.source.name}-{digest}"

    def load_base(self) -> SegmentationModel:
        source = self.source.value
        model = SegmentationModel.load(
            source, "", device=self.device, half=self.half, imgsz=self.settings.imgsz
        )
        ckpt = getattr(model.yolo, "ckpt_path", None)  # where a downloaded default landed
        if self.source.kind == "default" and ckpt:
            self.source = WeightsSource("path", str(ckpt), self.source.name)
        model.version = self.base_version()
        self.base = model
        self.exports.schedule(model, self.settings.model_dir_resolved / "exports" / model.version)
        return model

    # -- which version serves ----------------------------------------------------
    def serving_projects(self) -> list[str]:
        with self._lock:
            return sorted(self._serving)

    def version_for(self, project: str | None) -> str:
        """The version a prediction for ``project`` carries (answered without loading a model)."""
        if project:
            name = None if self.per_request else self._serving.get(project)
            if name is None:
                name = self.registry.current_name(project) or ""
            if name:
                return name
        if self.base is None:
            return self.base_version()
        return self.base.version

    def _serving_name(self, project: str) -> str:
        if self.per_request or project not in self._serving:
            self.observe(project, self.registry.current_name(project) or "")
        return self._serving.get(project, "")

    def observe(self, project: str, name: str, *, published_at: float | None = None) -> bool:
        """The registry points ``project`` at ``name`` (a request, a poll, an announcement): load it,
        then serve it. The old version serves meanwhile; a version that cannot be loaded is
        logged and not switched to, and is tried again at the next observation."""
        with self._lock:
            if self._seen.get(project) == name and project in self._serving:
                return False
            failed_at = self._failed.get(name)
        if failed_at is not None and time.monotonic() - failed_at < RETRY_FAILED_VERSION_SECONDS:
            return False
        try:
            loaded = not name or self._model(project, name) is not None
        except Exception as exc:  # unreadable weights: keep serving what works
            reason = exc.reason if isinstance(exc, ModelLoadError) else f"{type(exc).__name__}: {exc}"
            log.error("project %s: not switching to %s: %s", project, name, reason)
            loaded = False
        if not loaded:
            with self._lock:
                self._failed[name] = time.monotonic()  # not on every request
            return False
        with self._lock:
            old = self._serving.get(project)
            self._serving[project] = name
            self._seen[project] = name
        if old is not None and old != name:
            waited = f" {time.time() - published_at:.2f} s after its publication" if published_at else ""
            if published_at:
                metrics.MODEL_SWITCH_SECONDS.observe(max(0.0, time.time() - published_at))
            log.info(
                "project %s now serves %s (was %s)%s",
                project,
                name or "the base model",
                old or "base",
                waited,
            )
        return old != name

    def resync(self) -> None:
        """Re-read the pointer of every project this process serves (for missed announcements)."""
        for project in self.serving_projects():
            try:
                name = self.registry.current_name(project) or ""
            except Exception as exc:  # the store may be briefly unreachable; the next poll tries again
                log.warning("could not read the serving version of project %s: %s", project, exc)
                continue
            with self._lock:
                if self._seen.get(project) == name:
                    continue
            self.observe(project, name)

    def model_for(self, project: str | None) -> SegmentationModel:
        base = self.base
        if base is None:
            raise ModelLoadError("the segmentation model is not loaded yet")
        name = self._serving_name(project) if project else ""
        if not name:
            return base
        return self._model(project or "", name) or base

    def _model(self, project: str, name: str) -> SegmentationModel | None:
        """Version ``name``, loaded once per process even when requests race; None if it is missing."""
        with self._lock:
            model = self._loaded.get(name)
            if model is not None:
                self._loaded.move_to_end(name)
                return model
            load_lock = self._load_locks.setdefault(name, threading.Lock())
        with load_lock:
            with self._lock:
                if name in self._loaded:
                    return self._loaded[name]
            version = self.registry.get(project, name)
            if version is None:
                log.error("project %s points at missing version %s; not switching to it", project, name)
                return None
            model = SegmentationModel.load(
                str(version.path), name, device=self.device, half=self.half, imgsz=self.settings.imgsz
            )
            self.exports.schedule(model, version.path.parent / "exports")
            with self._lock:
                self._loaded[name] = model
                while len(self._loaded) > MAX_LOADED_MODELS:
                    self._loaded.popitem(last=False)
            return model


class VersionFollower:
    """Keeps a scaled-out process on the current versions: announcements through Redis switch it
    within about a model load; a poll every ``LABELSTACK_VERSION_POLL_SECONDS`` catches what
    was missed (Redis down, a reconnect), and so bounds the switch time without Redis."""

    def __init__(self, models: SegmentationModels, bus: VersionBus | None, poll_seconds: float) -> None:
        self.models = models
        self.bus = bus
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        targets: list[tuple[str, Any]] = [("version-poll", self._poll)]
        if self.bus is not None:
            targets.append(("version-listen", self._listen))
        for name, target in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()

    def _announced(self, announcement: Announcement) -> None:
        self.models.observe(
            announcement.project, announcement.version, published_at=announcement.published_at
        )

    def _listen(self) -> None:
        assert self.bus is not None
        self.bus.listen(self._announced, self.models.resync, self._stop)

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.models.resync()
