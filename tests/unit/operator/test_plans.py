"""The spec-to-plans adapter: the wiring module sees plain dataclasses only."""

from __future__ import annotations

import pytest

from labelstack_common.wiring import BackendLink, GcsStorage, plan_hash
from labelstack_operator.plans import SecretError, project_plans
from labelstack_operator.render import Stack
from labelstack_operator.spec import parse_spec
from tests.support import stacks


def stack(spec: dict) -> Stack:
    return Stack(name="garments", namespace="labelling", uid="u", spec=parse_spec(spec))


def secrets(name: str, key: str) -> str:
    return f'{{"secret": "{name}/{key}"}}'


def test_backends_are_linked_by_in_cluster_url_and_sam_is_interactive():
    (plan,) = project_plans(stack(stacks.FULL), secrets)
    assert plan.title == "Runway garments"
    assert plan.backends == (
        BackendLink("seg", "http://garments-seg.labelling.svc:9090", interactive=False),
        BackendLink("sam", "http://garments-sam.labelling.svc:9090", interactive=True),
    )
    assert plan.retrieve_predictions_on_load is True


def test_gcs_storages_carry_the_credentials_from_their_secrets():
    (plan,) = project_plans(stack(stacks.FULL), secrets)
    assert plan.gcs_source == GcsStorage(
        bucket="runway-images",
        prefix="2026/ss",
        credentials_json='{"secret": "gcs-reader/credentials.json"}',
        regex_filter=r".*\.(jpe?g|png)$",
    )
    assert plan.gcs_target is not None and plan.gcs_target.bucket == "runway-labels"


def test_backends_not_ready_are_left_out_and_change_the_plan_hash():
    full = project_plans(stack(stacks.FULL), secrets)
    partial = project_plans(stack(stacks.FULL), secrets, skip_backends={"sam"})
    assert [b.title for b in partial[0].backends] == ["seg"]
    assert plan_hash(full) != plan_hash(partial)
    assert plan_hash(full) == plan_hash(project_plans(stack(stacks.FULL), secrets))


def test_a_missing_secret_stops_planning():
    def missing(name: str, key: str) -> str:
        raise SecretError(f"Secret {name} does not exist")

    with pytest.raises(SecretError, match="gcs-reader"):
        project_plans(stack(stacks.FULL), missing)
