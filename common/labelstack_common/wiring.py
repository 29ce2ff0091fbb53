"""Wiring: make a Label Studio hold the declared projects, backends and storages, idempotently.

This is what users otherwise click through by hand: create a project, "Add
Model" for each backend (SAM as interactive), turn on "retrieve predictions on
load", connect cloud storage and sync it. It knows nothing about Kubernetes:
the operator maps a LabelingStack to :class:`ProjectPlan` values
(:mod:`labelstack_operator.plans`), and the local stack builds its own plans,
both then call :func:`wire`.

Idempotent by lookup, never by memory: projects are found by title, ML
backends by URL, storages by bucket and prefix. A second run with the same
plans changes nothing; a changed plan updates what differs. Objects a user
added by hand are left alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from labelstack_common.labelstudio import LabelStudioClient, LabelStudioError, UserSession

log = logging.getLogger(__name__)

# Syncing a large bucket runs inside the request when Label Studio has no worker queue.
SYNC_TIMEOUT_S = 600


@dataclass(frozen=True)
class BackendLink:
    """An ML backend to connect: Label Studio calls it at ``url`` (its /health and /setup first)."""

    title: str
    url: str
    interactive: bool = False


@dataclass(frozen=True)
class GcsStorage:
    """A GCS bucket (and prefix) as an import source or an export target."""

    bucket: str
    prefix: str = ""
    credentials_json: str | None = None  # a service-account key; None: application default credentials
    project_id: str | None = None
    regex_filter: str | None = None  # source only
    use_blob_urls: bool = True  # source only: each object is one image task
    presign: bool = True  # source only

    @property
    def title(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}".rstrip("/")


@dataclass(frozen=True)
class ProjectPlan:
    title: str
    label_config: str
    description: str = ""
    backends: tuple[BackendLink, ...] = ()
    retrieve_predictions_on_load: bool = True
    gcs_source: GcsStorage | None = None
    gcs_target: GcsStorage | None = None


@dataclass
class ProjectResult:
    title: str
    id: int
    changes: list[str] = field(default_factory=list)
    """What this run changed, in words ("created project", "connected backend seg"...)."""
    synced: list[str] = field(default_factory=list)
    """Storages synced this run (syncing is incremental, so it is not a change)."""


@dataclass
class WiringResult:
    projects: list[ProjectResult] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(p.changes for p in self.projects)

    def summary(self) -> str:
        parts = [f"{p.title}: {', '.join(p.changes)}" for p in self.projects if p.changes]
        return "; ".join(parts) or "nothing to change"


def plan_hash(plans: Sequence[ProjectPlan]) -> str:
    """A stable digest of the plans (credentials included, so a rotated key is wired again)."""
    text = json.dumps([dataclasses.asdict(p) for p in plans], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _url_key(url: str) -> str:
    return url.rstrip("/")


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


class _Wirer:
    def __init__(self, client: LabelStudioClient) -> None:
        self.client = client
        self.sdk = client.sdk

    def project(self, plan: ProjectPlan) -> ProjectResult:
        project = self._find_project(plan.title)
        settings = {
            "label_config": plan.label_config,
            "description": plan.description,
            # Both flags: the data manager reads the first, opening a task reads either.
            "evaluate_predictions_automatically": plan.retrieve_predictions_on_load,
            "show_collab_predictions": plan.retrieve_predictions_on_load,
        }
        if project is None:
            created = self.client.call(
                f"create project {plan.title!r}", self.sdk.projects.create, title=plan.title, **settings
            )
            result = ProjectResult(plan.title, int(created.id), ["created project"])
        else:
            result = ProjectResult(plan.title, int(project.id))
            stale = {k: v for k, v in settings.items() if _get(project, k) != v}
            if stale:
                self.client.call(
                    f"update project {plan.title!r}", self.sdk.projects.update, result.id, **stale
                )
                result.changes.append(f"updated {', '.join(sorted(stale))}")
        for backend in plan.backends:
            self._backend(result, backend)
        if plan.gcs_source is not None:
            self._gcs(result, plan.gcs_source, source=True)
        if plan.gcs_target is not None:
            self._gcs(result, plan.gcs_target, source=False)
        return result

    def _find_project(self, title: str) -> Any:
        # The title filter matches substrings: compare exactly; the oldest wins over hand-made copies.
        pager = self.client.call(
            f"find project {title!r}", self.sdk.projects.list, title=title, page_size=100
        )
        matches = sorted((p for p in pager if p.title == title), key=lambda p: int(p.id))
        if len(matches) > 1:
            log.warning(
                "%d projects are titled %r; wiring the oldest (id %s)", len(matches), title, matches[0].id
            )
        return matches[0] if matches else None

    def _backend(self, result: ProjectResult, link: BackendLink) -> None:
        existing = self.client.call(
            f"list ML backends of {result.title!r}", self.sdk.ml.list, project=result.id
        )
        match = next((m for m in existing if _url_key(m.url or "") == _url_key(link.url)), None)
        if match is None:
            self.client.call(
                f"connect backend {link.title} to {result.title!r}",
                self.sdk.ml.create,
                project=result.id,
                url=link.url,
                title=link.title,
                is_interactive=link.interactive,
            )
            result.changes.append(f"connected backend {link.title}")
        elif bool(match.is_interactive) != link.interactive or match.title != link.title:
            self.client.call(
                f"update backend {link.title} of {result.title!r}",
                self.sdk.ml.update,
                match.id,
                # Label Studio 1.23 answers 500 to an update that leaves out the URL or the project.
                url=link.url,
                project=result.id,
                title=link.title,
                is_interactive=link.interactive,
            )
            result.changes.append(f"updated backend {link.title}")

    @staticmethod
    def _key_marker(gcs: GcsStorage) -> str:
        # Label Studio never returns a storage's key, so its digest rides in the description.
        digest = hashlib.sha256((gcs.credentials_json or "").encode()).hexdigest()[:12]
        return f"labelstack key {digest}"

    @staticmethod
    def _same_place(storage: Any, gcs: GcsStorage) -> bool:
        return bool(storage.bucket == gcs.bucket and (storage.prefix or "") == gcs.prefix)

    def _gcs(self, result: ProjectResult, gcs: GcsStorage, *, source: bool) -> None:
        """Connect a source (import) or target (export) storage once, then sync it."""
        role = "source" if source else "target"
        api = self.sdk.import_storage.gcs if source else self.sdk.export_storage.gcs
        existing = self.client.call(f"list GCS {role}s of {result.title!r}", api.list, project=result.id)
        storage = next((s for s in existing if self._same_place(s, gcs)), None)
        if storage is None:
            args: dict[str, Any] = {"project": result.id, "bucket": gcs.bucket, "prefix": gcs.prefix}
            args["title"] = gcs.title
            if gcs.credentials_json:
                args["google_application_credentials"] = gcs.credentials_json
                args["description"] = self._key_marker(gcs)
            if gcs.project_id:
                args["google_project_id"] = gcs.project_id
            if source:
                args.update(use_blob_urls=gcs.use_blob_urls, presign=gcs.presign)
                if gcs.regex_filter:
                    args["regex_filter"] = gcs.regex_filter
            storage = self.client.call(f"connect {role} {gcs.title}", api.create, **args)
            result.changes.append(f"connected {role} {gcs.title}")
        elif gcs.credentials_json and getattr(storage, "description", None) != self._key_marker(gcs):
            # A rotated key reaches the storage that already exists.
            self.client.call(
                f"update the key of {role} {gcs.title}",
                api.update,
                storage.id,
                google_application_credentials=gcs.credentials_json,
                description=self._key_marker(gcs),
            )
            result.changes.append(f"updated the key of {role} {gcs.title}")
        # Syncing is incremental: objects already imported (or exported) are skipped.
        self.client.call(
            f"sync {role} {gcs.title}",
            api.sync,
            storage.id,
            request_options={"timeout_in_seconds": SYNC_TIMEOUT_S},
        )
        result.synced.append(gcs.title)


def sync_sources(client: LabelStudioClient, plans: Sequence[ProjectPlan]) -> list[str]:
    """Sync the source storages of wired projects (new bucket objects become tasks); nothing is
    created, and tasks already imported are left as they are. Returns the storages synced."""
    wirer = _Wirer(client)
    synced: list[str] = []
    for plan in plans:
        source = plan.gcs_source
        project = wirer._find_project(plan.title) if source is not None else None
        if source is None or project is None:
            continue
        api = client.sdk.import_storage.gcs
        existing = client.call(f"list GCS sources of {plan.title!r}", api.list, project=int(project.id))
        storage = next((s for s in existing if _Wirer._same_place(s, source)), None)
        if storage is not None:
            client.call(
                f"sync source {source.title}",
                api.sync,
                storage.id,
                request_options={"timeout_in_seconds": SYNC_TIMEOUT_S},
            )
            synced.append(source.title)
    return synced


def wire(client: LabelStudioClient, plans: Sequence[ProjectPlan]) -> WiringResult:
    """Bring Label Studio in line with ``plans``; raises ``LabelStudioError`` on the first failure."""
    wirer = _Wirer(client)
    return WiringResult(projects=[wirer.project(plan) for plan in plans])


@dataclass(frozen=True)
class UserResult:
    email: str
    created: bool
    """Signed up by this call (through the organisation's invite link)."""
    token: str | None = None
    """The user's API token, when asked for."""
    rotated: bool = False
    """The token given was not the user's any more: a new one was issued, the old one revoked."""


def ensure_user(
    client: LabelStudioClient,
    email: str,
    password: str,
    *,
    want_token: bool = False,
    token: str | None = None,
) -> UserResult:
    """Make sure ``email`` has an account, created once with ``password``; never logs the password.

    With ``want_token``, the user's own API token is returned; when ``token`` is given and is not
    the user's current one (its Secret was edited or emptied), a new token is issued, which
    revokes the old. A declared user who changed their password is left alone; a token is only
    read with the password the caller keeps.
    """
    session = UserSession(client.url, email, password, timeout=client.timeout)
    try:
        created = False
        if not session.log_in():
            created = session.sign_up(client.invite_token())
            if not created and want_token:
                raise LabelStudioError(
                    f"log in as {email}", 403, "the account exists but its password is not the one kept"
                )
            if created:
                log.info("created Label Studio user %s", email)
        if not want_token or not (created or session.log_in()):
            return UserResult(email, created)
        current = session.token()
        if token is not None and token != current:
            current = session.reset_token()
            log.info("issued a new API token for %s (the old one is revoked)", email)
            return UserResult(email, created, current, rotated=True)
        return UserResult(email, created, current)
    finally:
        session.close()
