"""The operator's own settings: one typed object, read from the environment at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_RESYNC_SECONDS = 60.0


class OperatorConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    resync_seconds: float = Field(
        default=DEFAULT_RESYNC_SECONDS, gt=0, validation_alias="LABELSTACK_RESYNC_SECONDS"
    )
    """How often every stack is checked for drift (hand edits, deleted children, readiness)."""
    label_studio_url: str = Field(
        "http://{service}.{namespace}.svc:8080", validation_alias="LABELSTACK_LABEL_STUDIO_URL"
    )
    """Where the operator reaches each stack's Label Studio; {service}, {namespace}, {name} are filled in.
    Change it only when the operator runs outside the cluster (development)."""
    wiring_timeout: float = Field(default=30.0, gt=0, validation_alias="LABELSTACK_WIRING_TIMEOUT")
    workers: int = Field(default=8, gt=0, validation_alias="LABELSTACK_WORKERS")
    """Threads for reconciling stacks in parallel."""
    kube_server: str = Field(default="", validation_alias="LABELSTACK_KUBE_SERVER")
    """Development only: an API server URL used without credentials (kubectl proxy, an emulator)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorConfig:
        env = os.environ if environ is None else environ
        return cls.model_validate({k: v for k, v in env.items() if k.startswith("LABELSTACK_") and v != ""})


def resync_seconds_from_env() -> float:
    """Read at import: kopf needs a timer's interval when the handler is registered."""
    return OperatorConfig.from_env().resync_seconds
