"""Fixtures for the SAM unit tests: a tiny SAM, a predictor wired to a given model, task images."""

from __future__ import annotations

from typing import Any

import pytest

from labelstack_backend.sam.model import build_net


@pytest.fixture(scope="session")
def tiny_net() -> Any:
    """The tiny SAM of LABELSTACK_SAM_MODEL_TYPE=tiny, seeded: built once per session."""
    return build_net("tiny")
