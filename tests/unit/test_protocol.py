from __future__ import annotations

import pytest

from labelstack_backend.errors import BadRequest
from labelstack_backend.protocol import PredictRequest, SetupRequest, WebhookEvent, project_id


@pytest.mark.parametrize(
    ("value", "expected"),
    [("12.1700000000", "12"), (12, "12"), ({"id": 12, "title": "x"}, "12"), (None, None), ("", None)],
)
def test_project_ids(value, expected):
    assert project_id(value) == expected


@pytest.mark.parametrize("value", ["abc", True, [1], 1.5])
def test_bad_project_ids(value):
    with pytest.raises(BadRequest):
        project_id(value)


def test_setup_as_label_studio_sends_it():
    req = SetupRequest.parse(
        {
            "project": "3.1718000000",
            "schema": "<View/>",
            "hostname": "http://ls:8080",
            "access_token": "t" * 40,
            "extra_params": None,
        }
    )
    assert (req.project, req.label_config, req.hostname) == ("3", "<View/>", "http://ls:8080")


@pytest.mark.parametrize(
    "body",
    [None, [], "x", {}, {"schema": 5}, {"schema": "<View/>", "extra_params": "bad"}],
)
def test_bad_setup_bodies(body):
    with pytest.raises(BadRequest):
        SetupRequest.parse(body)


def test_predict_keeps_all_tasks_in_order_and_reads_the_context():
    req = PredictRequest.parse(
        {
            "tasks": [{"id": 2, "data": {"image": "a"}}, {"id": 1, "data": {"image": "b"}}],
            "project": "4.1",
            "label_config": "<View/>",
            "params": {"login": None, "password": None, "context": {"result": [{"type": "keypointlabels"}]}},
        }
    )
    assert [t["id"] for t in req.tasks] == [2, 1]
    assert req.context == {"result": [{"type": "keypointlabels"}]}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({}, "non-empty list"),
        ({"tasks": []}, "non-empty list"),
        ({"tasks": [{"id": 1}]}, "'data' object"),
        ({"tasks": [{"data": {}}], "params": "x"}, "'params'"),
        ({"tasks": [{"data": {}}], "params": {"context": "x"}}, "context"),
    ],
)
def test_bad_predict_bodies(body, reason):
    with pytest.raises(BadRequest, match=reason):
        PredictRequest.parse(body)


def test_webhook_events():
    start = WebhookEvent.parse({"action": "START_TRAINING", "project": {"id": 9}})
    assert (start.action, start.project) == ("START_TRAINING", "9")
    ann = WebhookEvent.parse(
        {"action": "ANNOTATION_CREATED", "annotation": {"id": 1, "project": 5}, "task": {}}
    )
    assert ann.project == "5" and ann.annotation_count == 1 and not ann.cancelled
    many = WebhookEvent.parse({"action": "ANNOTATIONS_CREATED", "annotation": [{}, {}], "project": {"id": 5}})
    assert many.annotation_count == 2
    with pytest.raises(BadRequest, match="action"):
        WebhookEvent.parse({"project": 1})
