"""The model registry: versioned fine-tuned models under MODEL_DIR (:mod:`.local`) or in a
``gs://`` prefix (:mod:`.gcs`), both behind :class:`~.store.ModelStore`."""

from __future__ import annotations

from labelstack_backend.registry.local import ModelRegistry
from labelstack_backend.registry.store import ModelStore, ModelVersion, file_digest, safe_name
from labelstack_backend.settings import Settings

__all__ = ["ModelRegistry", "ModelStore", "ModelVersion", "file_digest", "open_registry", "safe_name"]


def open_registry(settings: Settings) -> ModelStore:
    """MODEL_DIR, or a ``gs://`` prefix with MODEL_DIR as its local mirror."""
    local = ModelRegistry(settings.model_dir_resolved)
    if settings.model_store:
        from labelstack_backend.registry.gcs import GcsModelRegistry

        return GcsModelRegistry.from_uri(settings.model_store, local)
    return local
