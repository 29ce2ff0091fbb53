"""The kopf handlers: thin, they parse nothing and decide nothing (see reconcile.py).

create, update and resume run a reconcile pass at once; a timer runs one every
LABELSTACK_RESYNC_SECONDS to restore deleted or hand-edited children, follow
readiness and finish the wiring. A pass that changes nothing writes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from labelstack_operator import constants as c
from labelstack_operator import reconcile as reconciler
from labelstack_operator.collisions import Claim, claim_of
from labelstack_operator.config import OperatorConfig, resync_seconds_from_env
from labelstack_operator.kube import Kube
from labelstack_operator.login import login

log = logging.getLogger(__name__)

RESYNC_SECONDS = resync_seconds_from_env()
FINALIZER = f"{c.GROUP}/finalizer"


def _context(memo: Any) -> reconciler.Context:
    return memo.context  # type: ignore[no-any-return]


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = OperatorConfig.from_env()
    # Progress and diff-base in our own annotations: status belongs to the schema we publish.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=c.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=c.GROUP)
    # kopf puts a finalizer on stacks (to stop their timers before they go); name it after us.
    settings.persistence.finalizer = FINALIZER
    # We post our own Events with specific reasons (events.py), not kopf's handler chatter.
    settings.posting.enabled = False
    settings.execution.max_workers = config.workers
    # Watch exactly the namespaces given (or all): no cluster-wide namespace or CRD scans to grant.
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    # A stack deleted while a resync pass runs keeps kopf's finalizer until the pass ends, and kopf
    # looks again only after cancellation_polling (60 s by default): the deletion hung a minute.
    settings.background.cancellation_polling = 1.0
    memo.context = reconciler.Context(kube=Kube(lambda: login(config)), config=config)
    log.info("resync every %.0fs; Label Studio at %s", RESYNC_SECONDS, config.label_studio_url)


@kopf.on.login()
def authenticate(memo: kopf.Memo, **kwargs: Any) -> kopf.ConnectionInfo:
    context = getattr(memo, "context", None)
    return login(context.config if context is not None else OperatorConfig.from_env(), **kwargs)


@kopf.index(c.GROUP, c.VERSION, c.PLURAL)
def stack_claims(body: kopf.Body, **_: Any) -> dict[str, Claim]:
    """The child names of every stack, by namespace: kopf keeps it current from its watch."""
    claim = claim_of(body)
    return {body["metadata"]["namespace"]: claim} if claim is not None else {}


def _neighbours(body: kopf.Body, kwargs: dict[str, Any]) -> list[Claim]:
    # kopf passes each index by its function's name (kopf's handler types do not list it).
    index: kopf.Index[str, Claim] = kwargs["stack_claims"]
    return list(index.get(body["metadata"]["namespace"], []))


@kopf.on.resume(c.GROUP, c.VERSION, c.PLURAL, id="reconcile")
@kopf.on.create(c.GROUP, c.VERSION, c.PLURAL, id="reconcile")
@kopf.on.update(c.GROUP, c.VERSION, c.PLURAL, id="reconcile")
def on_change(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    reconciler.reconcile(_context(memo), body, _neighbours(body, kwargs))


@kopf.timer(c.GROUP, c.VERSION, c.PLURAL, id="resync", interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
def resync(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    reconciler.reconcile(_context(memo), body, _neighbours(body, kwargs))


@kopf.on.delete(c.GROUP, c.VERSION, c.PLURAL, optional=True)
def on_delete(uid: str, **_: Any) -> None:
    # Children go with their owner references (garbage collector); PVCs stay unless asked.
    reconciler.forget(uid)
