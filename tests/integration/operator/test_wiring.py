"""Wiring against a real Label Studio 1.23 and real backends: idempotent, found by title and URL.

The interactive registration uses a second instance of the real segmentation
backend registered with is_interactive=True (the SAM predictor is being built
separately); Label Studio only checks /health and /setup when registering.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

from labelstack_common.labelstudio import LabelStudioError
from labelstack_common.wiring import BackendLink, ProjectPlan, plan_hash, wire
from tests.support.backend import BackendServer, run_backend
from tests.support.stacks import GARMENT_CONFIG

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def backends(
    tmp_path_factory: pytest.TempPathFactory, label_studio
) -> Iterator[tuple[BackendServer, BackendServer]]:
    """Two real backends (demo weights), started side by side."""
    env = {
        "LABELSTACK_DEMO_MODEL": "1",
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.token,
    }
    with ExitStack() as stack:
        servers = [
            stack.enter_context(run_backend(tmp_path_factory.mktemp(f"backend{i}"), env, wait_ready=False))
            for i in range(2)
        ]
        deadline = time.monotonic() + 180
        for server in servers:
            while not _healthy(server):
                assert server.alive(), server.log()[-3000:]
                assert time.monotonic() < deadline, server.log()[-3000:]
                time.sleep(0.3)
        yield servers[0], servers[1]


def _healthy(server: BackendServer) -> bool:
    try:
        return requests.get(f"{server.url}/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def projects_titled(client, title: str) -> list:
    return [p for p in client.call("list", client.sdk.projects.list, page_size=100) if p.title == title]


def test_two_runs_create_one_project_and_one_connection_per_backend(label_studio, backends):
    seg, sam = backends
    client = label_studio.client
    plans = [
        ProjectPlan(
            title="Runway garments",
            label_config=GARMENT_CONFIG,
            backends=(BackendLink("seg", seg.url), BackendLink("sam", sam.url, interactive=True)),
            retrieve_predictions_on_load=True,
        )
    ]
    first = wire(client, plans)
    assert first.projects[0].changes == ["created project", "connected backend seg", "connected backend sam"]
    second = wire(client, plans)
    assert not second.changed and second.projects[0].id == first.projects[0].id

    (project,) = projects_titled(client, "Runway garments")
    assert project.evaluate_predictions_automatically is True
    assert project.show_collab_predictions is True
    ml = client.call("ml", client.sdk.ml.list, project=project.id)
    assert sorted((m.title, m.url.rstrip("/"), bool(m.is_interactive)) for m in ml) == [
        ("sam", sam.url, True),
        ("seg", seg.url, False),
    ]
    # Label Studio reached both backends (health and setup) when they were registered.
    assert all(m.state == "CO" for m in ml), [(m.title, m.state, m.error_message) for m in ml]


def test_a_changed_plan_updates_in_place_and_leaves_hand_made_things_alone(label_studio, backends):
    seg, sam = backends
    client = label_studio.client
    plan = ProjectPlan(
        title="Street style", label_config=GARMENT_CONFIG, backends=(BackendLink("seg", seg.url),)
    )
    project_id = wire(client, [plan]).projects[0].id
    # A labeller connects a backend by hand (another URL): the operator must leave it be.
    by_hand = seg.url.replace("127.0.0.1", "localhost")
    client.call("hand", client.sdk.ml.create, project=project_id, url=by_hand, title="by hand")

    changed = ProjectPlan(
        title="Street style",
        label_config=GARMENT_CONFIG.replace("coat", "jacket"),
        backends=(BackendLink("seg", seg.url), BackendLink("sam", sam.url, interactive=True)),
        retrieve_predictions_on_load=False,
    )
    result = wire(client, [changed])
    assert result.projects[0].id == project_id
    assert result.projects[0].changes == [
        "updated evaluate_predictions_automatically, label_config, show_collab_predictions",
        "connected backend sam",
    ]
    assert len(projects_titled(client, "Street style")) == 1
    project = client.call("get", client.sdk.projects.get, project_id)
    assert "jacket" in project.label_config and project.evaluate_predictions_automatically is False
    ml = client.call("ml", client.sdk.ml.list, project=project_id)
    assert sorted((m.title, bool(m.is_interactive)) for m in ml) == [
        ("by hand", False),
        ("sam", True),
        ("seg", False),
    ]
    assert not wire(client, [changed]).changed

    # Found by URL: a connection whose settings drifted is updated, not duplicated.
    flipped = ProjectPlan(
        title="Street style",
        label_config=changed.label_config,
        backends=(
            BackendLink("seg", seg.url, interactive=True),
            BackendLink("sam", sam.url, interactive=True),
        ),
        retrieve_predictions_on_load=False,
    )
    assert wire(client, [flipped]).projects[0].changes == ["updated backend seg"]
    ml = client.call("ml", client.sdk.ml.list, project=project_id)
    assert sorted((m.title, bool(m.is_interactive)) for m in ml) == [
        ("by hand", False),
        ("sam", True),
        ("seg", True),
    ]


def test_an_unreachable_backend_is_a_label_studio_error_not_a_silent_success(label_studio, tmp_path: Path):
    plan = ProjectPlan(
        title="Unreachable",
        label_config=GARMENT_CONFIG,
        backends=(BackendLink("ghost", "http://127.0.0.1:9"),),
    )
    with pytest.raises(LabelStudioError) as err:
        wire(label_studio.client, [plan])
    assert err.value.status == 400 and "ghost" in err.value.what


def test_plan_hash_is_stable_and_sensitive():
    a = ProjectPlan(title="A title", label_config="<View/>")
    assert plan_hash([a]) == plan_hash([ProjectPlan(title="A title", label_config="<View/>")])
    assert plan_hash([a]) != plan_hash(
        [ProjectPlan(title="A title", label_config="<View/>", description="x")]
    )
