"""scripts/images.sh's own logic (the builds themselves run in tests/container)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support import containers

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "images.sh"


def sourced(command: str) -> str:
    done = subprocess.run(
        ["bash", "-c", f'source "{SCRIPT}"; {command}'], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("given", "pulled"),
    [
        ("python:3.11-slim-bookworm", "docker.io/library/python:3.11-slim-bookworm"),
        ("nvidia/cuda:13.0.3-base-ubuntu24.04", "docker.io/nvidia/cuda:13.0.3-base-ubuntu24.04"),
        ("registry.example.com/team/python:3.11", "registry.example.com/team/python:3.11"),
        ("localhost:5000/python:3.11", "localhost:5000/python:3.11"),
        ("localhost/labelstack/debian-python:bookworm", "localhost/labelstack/debian-python:bookworm"),
    ],
)
def test_short_names_are_spelled_out_for_builders_that_do_not_search_docker_hub(
    given: str, pulled: str
) -> None:
    assert sourced(f"qualified {given}") == pulled


def test_the_bases_are_the_dockerfiles_own_defaults_and_the_tag_is_the_charts() -> None:
    assert sourced("dockerfile_default Dockerfile.backend BASE_IMAGE").startswith("nvidia/cuda:")
    cuda = sourced("dockerfile_default Dockerfile.backend CUDA_VERSION")
    assert (
        sourced("dockerfile_default Dockerfile.backend BASE_IMAGE") == f"nvidia/cuda:{cuda}-base-ubuntu24.04"
    )
    assert sourced("dockerfile_default Dockerfile.operator PYTHON_IMAGE") == "python:3.11-slim-bookworm"
    assert sourced('echo "$VERSION"') == containers.version()


@pytest.mark.parametrize(
    ("args", "env", "reason"),
    [
        (["bogus"], {}, "unknown image 'bogus' (backend, operator)"),
        (["operator"], {"LABELSTACK_BASE": "nope"}, "LABELSTACK_BASE is 'nope': upstream or local"),
        (
            ["operator"],
            {"LABELSTACK_BUILDER": "kaniko"},
            "LABELSTACK_BUILDER is 'kaniko': docker, podman or buildah",
        ),
    ],
)
def test_a_wrong_request_is_refused_with_its_reason_before_anything_runs(
    args: list[str], env: dict[str, str], reason: str
) -> None:
    done = subprocess.run(
        [str(SCRIPT), *args],
        check=False,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == f"images: {reason}"
