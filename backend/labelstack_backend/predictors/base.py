"""What the protocol server needs from a predictor: the whole interface, so that the service
never probes a predictor for what it has."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from labelstack_backend.coordination.blobcache import BlobCacheStats
from labelstack_backend.labelconfig import LabelConfig
from labelstack_backend.protocol import WebhookEvent
from labelstack_common.labelstudio import LabelStudioClient


@dataclass(frozen=True)
class PredictCall:
    """One /predict call, parsed: the tasks, the project's config, how to reach Label Studio."""

    tasks: Sequence[Mapping[str, Any]]
    project: str | None
    config: LabelConfig
    context: Mapping[str, Any] | None
    ls: LabelStudioClient | None
    background: bool = False  # bulk pre-labeling: the model serves interactive calls first


class Predictor(Protocol):
    name: str
    interactive: bool

    def load(self) -> None:
        """Load the model (slow; runs in the background after the process starts)."""

    def check_config(self, config: LabelConfig, project: str | None = None) -> None:
        """Raise UnprocessableConfig when the config has nothing this predictor can fill; at
        /setup, ``project`` is the project the config is Label Studio's for."""

    def model_version(self, project: str | None) -> str: ...

    def versions(self, project: str | None) -> list[str]: ...

    def predict(self, call: PredictCall) -> list[dict[str, Any]]:
        """One entry per task, in order."""

    def webhook(self, event: WebhookEvent, ls: LabelStudioClient | None) -> tuple[int, dict[str, Any]] | None:
        """(status, body) for a project event this predictor acts on; None leaves it to the
        service (training) or acknowledges it as ignored."""

    def trained_projects(self) -> list[str]:
        """Projects with fine-tuned versions of their own ([] for a predictor that does not train)."""

    def shared_cache_stats(self) -> BlobCacheStats | None:
        """The replicas' shared cache (Redis), for /metrics; None when there is none. May raise
        :class:`~labelstack_backend.coordination.link.RedisUnavailable`."""
