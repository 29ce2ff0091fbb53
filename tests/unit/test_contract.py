"""The contract between the planes: every variable the operator or the local stack gives a
backend is one the backend reads, and the kinds and types each side offers are the same."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import get_args

import pytest

from labelstack_backend.settings import Settings
from labelstack_common import contract
from labelstack_common.contract import Env, PredictorKind, SamModelType
from labelstack_operator.render import backends as backend_render
from labelstack_operator.spec import Backend, parse_spec
from labelstack_tools.localstack.plan import Layout, Ports, StackOptions, backend_spec
from tests.support import stacks
from tests.unit.operator.test_render import rendered

READ_BY_BACKEND = Settings.env_names() | contract.SERVER_ENV | contract.LIBRARY_ENV


def backend_env_names(spec: dict) -> dict[str, set[str]]:
    """The variables each backend container gets from the operator, the user's own env left out."""
    spec = copy.deepcopy(spec)
    for backend in spec.get("backends", []):
        backend.pop("env", None)
    out: dict[str, set[str]] = {}
    for obj in rendered(spec):
        if (
            obj["kind"] != "Deployment"
            or obj["spec"]["template"]["spec"]["containers"][0]["name"] != "backend"
        ):
            continue
        (container,) = obj["spec"]["template"]["spec"]["containers"]
        out[obj["metadata"]["name"]] = {e["name"] for e in container["env"]}
    return out


@pytest.mark.parametrize("spec", [stacks.SMALL, stacks.FULL], ids=["small", "full"])
def test_every_variable_the_operator_renders_is_one_the_backend_reads(spec):
    names = backend_env_names(spec)
    assert names, "the spec renders backends"
    for deployment, env in names.items():
        assert env - READ_BY_BACKEND == set(), f"{deployment} gets variables nothing reads"


def test_the_full_stack_exercises_every_optional_variable():
    every = set().union(*backend_env_names(stacks.FULL).values())
    assert {
        Env.SEG_WEIGHTS,
        Env.SAM_CHECKPOINT,
        Env.SAM_MODEL_TYPE,
        Env.DEMO_MODEL,
        Env.SCORE_THRESHOLD,
        Env.REDIS_URL,
        Env.REDIS_PASSWORD,
        Env.SAM_REDIS_BYTES,
        Env.MODEL_STORE,
        Env.GOOGLE_APPLICATION_CREDENTIALS,
    } <= every


@pytest.mark.parametrize("kind", list(PredictorKind))
def test_every_variable_the_local_stack_sets_is_one_the_backend_reads(kind, tmp_path):
    opts = StackOptions(data_dir=tmp_path, ports=Ports())
    spec = backend_spec(
        kind, opts, Layout(tmp_path), label_studio_url="http://127.0.0.1:8080", token="t", redis_url=None
    )
    extra = set(spec.env) | set(spec.defaults)
    # The interpreter's and CUDA's own variables are the process's, not the backend's.
    assert extra - READ_BY_BACKEND - {"PYTHONUNBUFFERED", "CUDA_VISIBLE_DEVICES"} == set()
    assert list(spec.argv[1:]) == contract.command()[1:]
    assert Path(spec.argv[0]).name == "gunicorn"


def test_every_settings_variable_is_named_in_the_contract_and_back():
    named = {v for k, v in vars(Env).items() if not k.startswith("_")}
    settings = Settings.env_names()
    assert settings <= named, "Settings reads a variable the contract does not name"
    assert named - contract.SERVER_ENV - contract.LIBRARY_ENV == settings, "a contract name nothing reads"


def test_settings_parse_what_the_operator_renders():
    env = {
        Env.PREDICTOR: PredictorKind.SAM.value,
        Env.SAM_MODEL_TYPE: SamModelType.VIT_H.value,
        Env.MODEL_DIR: "/models",
        Env.DEVICE: "cuda",
    }
    settings = Settings.from_env(env)
    assert settings.predictor is PredictorKind.SAM and settings.sam_model_type == "vit_h"


def test_the_operator_offers_the_backend_s_kinds_and_sam_types():
    assert set(PredictorKind) == {PredictorKind(v) for v in ("segmentation", "sam")}
    spec_types = set(Backend.model_fields["sam_model_type"].annotation)  # type: ignore[arg-type]
    assert {t.value for t in spec_types} | {contract.SAM_TEST_TYPE} == set(contract.SAM_MODEL_TYPES)
    assert (
        get_args(Backend.model_fields["type"].annotation) == ()
        and Backend.model_fields["type"].annotation is PredictorKind
    )
    parsed = parse_spec({"backends": [{"name": "s", "type": "sam", "weights": {"demo": True}}]})
    assert parsed.backends[0].sam_model_type in SamModelType


def test_the_operator_runs_the_contract_s_command_port_and_probes():
    objs = rendered(stacks.SMALL)
    (deployment,) = [o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "garments-seg"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == contract.command() == backend_render.COMMAND
    assert container["ports"][0]["containerPort"] == contract.PORT
    assert container["readinessProbe"]["httpGet"]["path"] == contract.HEALTH_PATH
    assert container["livenessProbe"]["httpGet"]["path"] == contract.LIVENESS_PATH
    security = deployment["spec"]["template"]["spec"]["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (contract.UID, contract.GID)
