"""Fixtures for the SAM unit tests: a tiny SAM, a predictor wired to a given model, task images."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from labelstack_backend.images import ImageLoader
from labelstack_backend.predictors.sam import SamPredictor
from labelstack_backend.sam.model import build_net
from tests.support.sam_models import CountingModel, sam_settings


@pytest.fixture(scope="session")
def tiny_net() -> Any:
    """The tiny SAM of LABELSTACK_SAM_MODEL_TYPE=tiny, seeded: built once per session."""
    return build_net("tiny")


@pytest.fixture
def make_predictor(
    tiny_net: Any, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., tuple[SamPredictor, CountingModel]]:
    def make(
        net: Any = None, *, cache_bytes: int = 64 << 20, linger: float = 0.0, **env: str
    ) -> tuple[SamPredictor, CountingModel]:
        settings = sam_settings(LABELSTACK_SAM_CACHE_BYTES=str(cache_bytes), **env)
        loader = ImageLoader(
            max_pixels=10_000_000,
            max_bytes=10 << 20,
            timeout=5.0,
            local_roots=(tmp_path_factory.getbasetemp(),),
        )
        predictor = SamPredictor(settings, loader)
        model = CountingModel(
            tiny_net if net is None else net, linger=linger, version=predictor.weights.version
        )
        predictor.use_model(model)
        return predictor, model

    return make
