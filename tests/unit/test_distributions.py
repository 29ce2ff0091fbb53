"""The four distributions and what each one pulls in: the serving image installs common and the
backend only, so neither may depend, even indirectly, on the operator, kopf or the Kubernetes
client; the operator image installs common and the operator, so nothing there needs torch."""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]


def closure(dist: str) -> set[str]:
    """Every distribution ``dist`` installs, itself included (extras are not installed)."""
    seen: set[str] = set()
    todo = [canonicalize_name(dist)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for line in md.requires(name) or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            todo.append(canonicalize_name(req.name))
    return seen


def test_the_backend_installs_neither_the_operator_nor_the_tools_nor_kopf_nor_kubernetes():
    installed = closure("labelstack-backend")
    assert "labelstack-common" in installed and "torch" in installed
    assert installed.isdisjoint({"labelstack-operator", "labelstack-tools", "kopf", "kubernetes"})
    # What only the tools need is not the backend's to ask for (ultralytics brings psutil and
    # label-studio-sdk's typer brings rich anyway); COCO export stays out of the image.
    own = {canonicalize_name(Requirement(r).name) for r in md.requires("labelstack-backend") or []}
    assert own.isdisjoint({"psutil", "rich", "pycocotools"})
    assert "pycocotools" not in installed


def test_the_operator_installs_no_torch_and_no_backend():
    installed = closure("labelstack-operator")
    assert {"labelstack-common", "kopf"} <= installed
    assert installed.isdisjoint({"torch", "ultralytics", "labelstack-backend", "labelstack-tools"})


def test_common_is_light():
    installed = closure("labelstack-common")
    assert "label-studio-sdk" in installed
    assert installed.isdisjoint({"torch", "kopf", "kubernetes", "labelstack-operator", "labelstack-backend"})


def test_pip_show_of_the_backend_lists_neither_kopf_nor_kubernetes():
    out = subprocess.run(
        [sys.executable, "-m", "pip", "show", "labelstack-backend"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (requires,) = [line for line in out.splitlines() if line.startswith("Requires:")]
    names = {canonicalize_name(n) for n in re.split(r",\s*", requires.removeprefix("Requires:").strip()) if n}
    assert "labelstack-common" in names
    assert names.isdisjoint({"kopf", "kubernetes", "labelstack-operator"})


@pytest.mark.parametrize(
    ("dockerfile", "copied", "never"),
    [
        ("Dockerfile.backend", {"common/", "backend/"}, {"operator/", "tools/"}),
        ("Dockerfile.operator", {"common/", "operator/"}, {"backend/", "tools/"}),
    ],
)
def test_each_image_copies_only_its_plane(dockerfile, copied, never):
    text = (REPO / dockerfile).read_text()
    sources = set(re.findall(r"^COPY (?!--from)(\S+)", text, flags=re.M))
    assert copied <= sources
    assert sources.isdisjoint(never)
