"""The container tests run the images that `make images` built; `make test` builds them first
wherever buildah is installed (CI installs it), and they are skipped only where it is absent."""

from __future__ import annotations

import pytest

from tests.support import containers


def built(part: str) -> str:
    if not containers.BUILDAH:
        pytest.skip("no buildah to run the images (scripts/bootstrap.sh containers)")
    name = containers.image(part)
    assert containers.present(name), f"{name} is not built; run `make images`"
    return name


@pytest.fixture
def backend_image() -> str:
    return built("backend")


@pytest.fixture
def operator_image() -> str:
    return built("operator")
