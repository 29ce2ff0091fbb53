"""Run the helm binary: find it, render a chart, lint it. Used by the generator and the tests.

helm is not a Python package; ``scripts/bootstrap.sh helm`` puts one in ``.tools/bin``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "labelstack"

Manifest = dict[str, Any]


class HelmNotFoundError(RuntimeError):
    pass


class HelmError(RuntimeError):
    """helm exited non-zero; ``str()`` is its error output."""


def find_helm() -> str:
    """$LABELSTACK_HELM, then the one bootstrap installs, then helm on PATH."""
    candidates = [os.environ.get("LABELSTACK_HELM", ""), str(REPO / ".tools" / "bin" / "helm")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("helm")
    if found:
        return found
    raise HelmNotFoundError("helm not found: run scripts/bootstrap.sh helm (or set LABELSTACK_HELM)")


def run(args: Sequence[str]) -> str:
    """helm ARGS; its standard output, or HelmError with its error output."""
    proc = subprocess.run([find_helm(), *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise HelmError(proc.stderr.strip() or proc.stdout.strip())
    return proc.stdout


def _values_args(values: Iterable[Mapping[str, Any] | Path], tmp: Path) -> list[str]:
    args: list[str] = []
    for i, value in enumerate(values):
        if isinstance(value, Path):
            args += ["-f", str(value)]
        else:
            path = tmp / f"values-{i}.yaml"
            path.write_text(yaml.safe_dump(dict(value)))
            args += ["-f", str(path)]
    return args


def template_text(
    values: Iterable[Mapping[str, Any] | Path] = (),
    *,
    release: str = "labelstack",
    namespace: str = "labelstack",
    show_only: Sequence[str] = (),
    chart: Path = CHART,
    include_crds: bool = False,
) -> str:
    with tempfile.TemporaryDirectory(prefix="labelstack-helm-") as tmp:
        args = ["template", release, str(chart), "--namespace", namespace]
        if include_crds:
            args.append("--include-crds")
        args += _values_args(values, Path(tmp))
        for template in show_only:
            args += ["--show-only", template]
        return run(args)


def template(
    values: Iterable[Mapping[str, Any] | Path] = (),
    *,
    release: str = "labelstack",
    namespace: str = "labelstack",
    show_only: Sequence[str] = (),
    chart: Path = CHART,
    include_crds: bool = False,
) -> list[Manifest]:
    """The rendered objects (empty documents dropped), in helm's install order."""
    text = template_text(
        values,
        release=release,
        namespace=namespace,
        show_only=show_only,
        chart=chart,
        include_crds=include_crds,
    )
    return [doc for doc in yaml.safe_load_all(text) if doc]


def lint(values: Iterable[Mapping[str, Any] | Path] = (), *, chart: Path = CHART) -> str:
    with tempfile.TemporaryDirectory(prefix="labelstack-helm-") as tmp:
        return run(["lint", "--strict", str(chart), *_values_args(values, Path(tmp))])
