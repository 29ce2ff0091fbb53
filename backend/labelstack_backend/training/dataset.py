"""Fetch a project's finished annotations from Label Studio (label-studio-sdk)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from labelstack_common.labelstudio import LabelStudioClient


def _as_dict(item: Any) -> dict[str, Any]:
    if isinstance(item, dict):
        return item
    dump = getattr(item, "model_dump", None) or getattr(item, "dict", None)
    if dump is None:
        raise TypeError(f"unexpected task type {type(item).__name__}")
    data: dict[str, Any] = dump()
    return data


def annotated_tasks(ls: LabelStudioClient, project: str, page_size: int = 100) -> Iterator[dict[str, Any]]:
    """Every task of the project that has at least one annotation, with its annotations."""
    pager: Iterable[Any] = ls.call(
        f"list annotated tasks of project {project}",
        ls.sdk.tasks.list,
        project=int(project),
        fields="all",
        only_annotated=True,
        page_size=page_size,
    )
    for item in pager:
        yield _as_dict(item)


def project_label_config(ls: LabelStudioClient, project: str) -> str:
    proj = ls.call(f"get project {project}", ls.sdk.projects.get, id=int(project))
    return str(proj.label_config or "")
