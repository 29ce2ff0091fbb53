"""The Label Studio ML-backend protocol: request parsing and validation. Pure.

Label Studio 1.23 sends (see ``label_studio/ml/api_connector.py``):

* ``POST /setup``   ``{project: "<id>.<created_ts>", schema, hostname, access_token, extra_params}``
* ``POST /predict`` ``{tasks: [...], project, label_config, params: {login, password, context}}``
* ``POST /webhook`` ``{action, project: {...}, annotation?, task?}`` (every project event, and
  ``START_TRAINING`` from the train button)
* ``GET /versions`` with a JSON body ``{project}`` (yes, a GET with a body)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from labelstack_backend.errors import BadRequest


def project_id(value: Any) -> str | None:
    """Label Studio's project identity -> our project key.

    ``"12.1700000000"`` (setup/predict), ``12`` or ``{"id": 12, ...}`` (webhooks) -> ``"12"``.
    """
    if value is None or value == "":
        return None
    if isinstance(value, Mapping):
        return project_id(value.get("id"))
    if isinstance(value, bool):
        raise BadRequest("'project' must be an id, not a boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        head = value.split(".", 1)[0].strip()
        if head.isdigit():
            return head
        raise BadRequest(f"'project' should look like '<id>.<timestamp>', got {value!r}")
    raise BadRequest(f"'project' has an unexpected type: {type(value).__name__}")


def _require_object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise BadRequest("the request body must be a JSON object")
    return body


def _optional_str(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"'{key}' must be a string")
    return value


@dataclass(frozen=True)
class SetupRequest:
    project: str | None
    label_config: str
    hostname: str = ""
    access_token: str = ""
    extra_params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, body: Any) -> SetupRequest:
        body = _require_object(body)
        schema = _optional_str(body, "schema") or _optional_str(body, "label_config")
        if not schema:
            raise BadRequest("missing 'schema': the project's label config")
        extra = body.get("extra_params") or {}
        if not isinstance(extra, Mapping):
            raise BadRequest("'extra_params' must be an object")
        return cls(
            project=project_id(body.get("project")),
            label_config=schema,
            hostname=_optional_str(body, "hostname"),
            access_token=_optional_str(body, "access_token"),
            extra_params=extra,
        )


@dataclass(frozen=True)
class PredictRequest:
    tasks: tuple[Mapping[str, Any], ...]
    project: str | None
    label_config: str
    context: Mapping[str, Any] | None

    @classmethod
    def parse(cls, body: Any) -> PredictRequest:
        body = _require_object(body)
        tasks = body.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            raise BadRequest("'tasks' must be a non-empty list of tasks")
        for i, task in enumerate(tasks):
            if not isinstance(task, Mapping) or not isinstance(task.get("data"), Mapping):
                raise BadRequest(f"task #{i} must be an object with a 'data' object")
        params = body.get("params") or {}
        if not isinstance(params, Mapping):
            raise BadRequest("'params' must be an object")
        context = params.get("context")
        if context is not None and not isinstance(context, Mapping):
            raise BadRequest("'params.context' must be an object")
        return cls(
            tasks=tuple(tasks),
            project=project_id(body.get("project")),
            label_config=_optional_str(body, "label_config"),
            context=context or None,
        )


PRELABEL_ACTION = "PRELABEL"  # {"action": "PRELABEL", "project": <id>}: bulk pre-labeling
TRAIN_ACTIONS = frozenset({"START_TRAINING"})
ANNOTATION_ACTIONS = frozenset({"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED"})
DELETE_ACTIONS = frozenset({"ANNOTATION_DELETED", "ANNOTATIONS_DELETED"})


@dataclass(frozen=True)
class WebhookEvent:
    action: str
    project: str | None
    payload: Mapping[str, Any]

    @classmethod
    def parse(cls, body: Any) -> WebhookEvent:
        body = _require_object(body)
        action = body.get("action")
        if not isinstance(action, str) or not action:
            raise BadRequest("missing 'action'")
        project = body.get("project")
        if project is None:
            for key in ("annotation", "task"):
                inner = body.get(key)
                if isinstance(inner, Mapping) and inner.get("project") is not None:
                    project = inner["project"]
                    break
        return cls(action=action, project=project_id(project), payload=body)

    @property
    def annotation_count(self) -> int:
        """How many annotations the event carries (``ANNOTATIONS_CREATED`` carries a list)."""
        annotation = self.payload.get("annotation")
        if isinstance(annotation, list):
            return len(annotation)
        return 1

    @property
    def cancelled(self) -> bool:
        annotation = self.payload.get("annotation")
        return isinstance(annotation, Mapping) and bool(annotation.get("was_cancelled"))
