"""The adapter from a LabelingStack to wiring plans (the wiring module itself knows no CRD)."""

from __future__ import annotations

from collections.abc import Callable, Collection

from labelstack_common.errors import LabelStackError
from labelstack_common.wiring import BackendLink, GcsStorage, ProjectPlan
from labelstack_operator.render import Stack
from labelstack_operator.spec import GcsStorage as GcsSpec
from labelstack_operator.spec import Project

# (secret name, key) -> the value; raises SecretError when it is not there.
ReadSecret = Callable[[str, str], str]


class SecretError(LabelStackError, LookupError):
    """A Secret the spec names is missing or lacks the key."""


def _gcs(spec: GcsSpec | None, read_secret: ReadSecret) -> GcsStorage | None:
    if spec is None:
        return None
    credentials = None
    if spec.credentials_secret is not None:
        credentials = read_secret(spec.credentials_secret.name, spec.credentials_secret.key)
    return GcsStorage(
        bucket=spec.bucket,
        prefix=spec.prefix,
        credentials_json=credentials,
        project_id=spec.project_id,
        regex_filter=spec.regex_filter,
        use_blob_urls=spec.use_blob_urls,
        presign=spec.presign,
    )


def _plan(stack: Stack, project: Project, read_secret: ReadSecret, skip: Collection[str]) -> ProjectPlan:
    links = tuple(
        BackendLink(title=b.name, url=stack.backend_url(b), interactive=b.interactive)
        for b in (stack.spec.backend(name) for name in project.backends)
        if b.name not in skip
    )
    return ProjectPlan(
        title=project.title,
        label_config=project.label_config,
        description=project.description,
        backends=links,
        retrieve_predictions_on_load=project.retrieve_predictions_on_load,
        gcs_source=_gcs(project.gcs.source, read_secret),
        gcs_target=_gcs(project.gcs.target, read_secret),
    )


def project_plans(
    stack: Stack, read_secret: ReadSecret, *, skip_backends: Collection[str] = ()
) -> list[ProjectPlan]:
    """One plan per declared project; backends in ``skip_backends`` (not ready yet) are left out."""
    return [_plan(stack, p, read_secret, skip_backends) for p in stack.spec.projects]


def referenced_backends(stack: Stack) -> set[str]:
    return {name for p in stack.spec.projects for name in p.backends}
