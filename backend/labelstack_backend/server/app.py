"""The WSGI app: thin Flask routes over :class:`BackendService`.

Routes parse the request, call the service and format the answer. Every error
leaves as JSON ``{"error": reason}`` with a 4xx/5xx status; no traceback ever
reaches the client, and no input can take the worker down.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import time
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from labelstack_backend import metrics
from labelstack_backend.errors import BackendError, BadRequest, Busy
from labelstack_backend.prelabel.report import PrelabelCollector
from labelstack_backend.protocol import PredictRequest, SetupRequest, WebhookEvent
from labelstack_backend.server.admission import WorkGate
from labelstack_backend.server.scrape import StateCollector
from labelstack_backend.server.service import BackendService
from labelstack_backend.server.workers import worker_threads
from labelstack_common.contract import Env

log = logging.getLogger(__name__)

# Only the probes answer without credentials; "/" (the same body as /health) follows the rule.
OPEN_ROUTES = frozenset({"/health", "/livez"})
# Probes and scrapes are not load: labelstack_inflight_requests counts the rest (autoscaling).
UNCOUNTED_ROUTES = frozenset({*OPEN_ROUTES, "/", "/metrics"})
MAX_BODY_BYTES = 64 * 1024 * 1024
# Only /predict waits on peers (image downloads) for long: it is the route the work gate bounds.
# /setup and webhooks stay admitted, so that a busy worker never loses a START_TRAINING or makes
# Label Studio mark the backend disconnected.
GATED_ROUTES = frozenset({"/predict"})


def _json_body(optional: bool = False) -> Any:
    if not request.get_data(cache=True):
        if optional:
            return {}
        raise BadRequest("the request has no body; send JSON")
    try:
        return json.loads(request.get_data(cache=True))
    except RecursionError:  # the C parser's own depth guard; Flask would make it a 500
        raise BadRequest("the request body is JSON nested too deeply") from None
    except ValueError:  # JSONDecodeError, and bytes that are not UTF-8
        raise BadRequest("the request body is not valid JSON") from None


def _authorized(expected: tuple[str, str]) -> bool:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return hmac.compare_digest(user, expected[0]) & hmac.compare_digest(password, expected[1])


def status_line(status: int, reason: str, limit: int = 200) -> str:
    """``"422 <reason>"``: the reason also as the HTTP reason phrase, because Label Studio
    drops an ML backend's error body and reports only ``str(HTTPError)``, which quotes the
    phrase. Printable ASCII only (a status line is latin-1, without CR/LF)."""
    phrase = "".join(c if " " <= c <= "~" else " " for c in reason).strip()
    if len(phrase) > limit:
        phrase = phrase[: limit - 3] + "..."
    return f"{status} {phrase or 'Error'}"


def _install_hooks(app: Flask, auth: tuple[str, str] | None, gate: WorkGate) -> None:
    """Auth, admission, metrics and the error handlers: what every route shares."""

    @app.before_request
    def _before() -> Response | None:
        g.started = time.perf_counter()
        if request.path not in UNCOUNTED_ROUTES:
            metrics.INFLIGHT.inc()
            g.inflight = True
        if auth and request.path not in OPEN_ROUTES and not _authorized(auth):
            resp = jsonify({"error": "authentication required"})
            resp.status_code = 401
            resp.headers["WWW-Authenticate"] = 'Basic realm="labelstack"'
            return resp
        if request.path in GATED_ROUTES:
            if not gate.try_enter():
                raise Busy(
                    f"all {gate.slots} request slots of this worker are busy "
                    f"({Env.MAX_CONCURRENT_REQUESTS}); retry in {gate.retry_after}s",
                    gate.retry_after,
                )
            g.admitted = True
        return None

    @app.after_request
    def _after(resp: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.REQUESTS.labels(route, str(resp.status_code)).inc()
        metrics.LATENCY.labels(route).observe(time.perf_counter() - g.get("started", time.perf_counter()))
        return resp

    @app.teardown_request
    def _teardown(_exc: BaseException | None) -> None:
        if g.pop("inflight", False):
            metrics.INFLIGHT.dec()
        if g.pop("admitted", False):
            gate.leave()

    @app.errorhandler(BackendError)
    def _backend_error(exc: BackendError) -> Response:
        log.log(
            logging.WARNING if exc.status < 500 else logging.ERROR,
            "%s %s -> %d: %s",
            request.method,
            request.path,
            exc.status,
            exc.reason,
        )
        resp = jsonify({"error": exc.reason})
        resp.status = status_line(exc.status, exc.reason)
        if isinstance(exc, Busy):
            resp.headers["Retry-After"] = str(exc.retry_after)
        return resp

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        return jsonify({"error": exc.description or exc.name}), exc.code or 500

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("%s %s failed", request.method, request.path)
        return jsonify({"error": f"internal error ({type(exc).__name__}); see the backend log"}), 500


def create_app(service: BackendService, threads: int | None = None) -> Flask:
    """The app for one worker with ``threads`` threads (default: gunicorn's, from ``THREADS``)."""
    app = Flask("labelstack_backend")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    collector = StateCollector(
        service.model_versions, service.jobs, service.shared_cache_stats, service.version_records
    )
    gate = WorkGate(service.settings.concurrent_requests(threads or worker_threads()))
    _install_hooks(app, service.settings.basic_auth, gate)

    @app.get("/")
    @app.get("/health")
    def health() -> tuple[Response, int]:
        status, body = service.health()
        return jsonify(body), status

    @app.get("/livez")
    def livez() -> tuple[Response, int]:
        status, body = service.live()
        return jsonify(body), status

    @app.post("/setup")
    def setup() -> Response:
        return jsonify(service.setup(SetupRequest.parse(_json_body())))

    @app.post("/validate")
    def validate() -> Response:
        return jsonify(service.validate(_json_body()))

    @app.post("/predict")
    def predict() -> Response:
        return jsonify(service.predict(PredictRequest.parse(_json_body())))

    @app.post("/webhook")
    def webhook() -> tuple[Response, int]:
        status, body = service.webhook(WebhookEvent.parse(_json_body()))
        return jsonify(body), status

    @app.post("/train")
    def train() -> tuple[Response, int]:
        # Label Studio without its webhook training flag posts the annotations here.
        body = _json_body()
        project = body.get("project") if isinstance(body, dict) else None
        status, out = service.webhook(WebhookEvent.parse({"action": "START_TRAINING", "project": project}))
        return jsonify(out), status

    @app.get("/versions")
    def versions() -> Response:
        body = _json_body(optional=True)
        project = request.args.get("project") or (body.get("project") if isinstance(body, dict) else None)
        return jsonify(service.versions(project))

    def project_and_version() -> tuple[Any, Any]:
        body = _json_body(optional=True)
        fields = body if isinstance(body, dict) else {}
        return (
            request.args.get("project") or fields.get("project"),
            request.args.get("version") or fields.get("version"),
        )

    @app.post("/versions/promote")
    def promote() -> Response:
        return jsonify(service.promote(*project_and_version()))

    @app.post("/versions/rollback")
    def rollback() -> Response:
        return jsonify(service.rollback(*project_and_version()))

    @app.post("/prelabel")
    def prelabel() -> tuple[Response, int]:
        body = _json_body(optional=True)
        project = request.args.get("project") or (body.get("project") if isinstance(body, dict) else None)
        status, out = service.prelabel(project)
        return jsonify(out), status

    @app.get("/prelabel")
    def prelabel_progress() -> Response:
        return jsonify(service.prelabel_progress(request.args.get("project")))

    @app.get("/metrics")
    def prometheus() -> Response:
        collectors = [collector, PrelabelCollector(service.prelabel_runs)]
        return Response(metrics.render(collectors), mimetype="text/plain; version=0.0.4")

    return app
