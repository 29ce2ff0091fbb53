"""manifests/ and the chart's generated files: up to date with their sources, one CRD, valid examples."""

from __future__ import annotations

import copy
import re

import jsonschema
import pytest
import yaml

from labelstack_operator import constants as c
from labelstack_operator.crd import render_yaml
from labelstack_operator.render import Stack, build_children
from labelstack_operator.spec import SpecError, parse_spec
from scripts import render_manifests as gen
from tests.support.shipping import by_kind, checked_in_crd_schema, validate

EXAMPLES = sorted(gen.EXAMPLES_DIR.glob("*.yaml"))


def load_example(name: str) -> dict:
    return yaml.safe_load((gen.EXAMPLES_DIR / f"{name}.yaml").read_text())


def test_generated_files_are_up_to_date():
    stale = [str(p.relative_to(gen.REPO)) for p in gen.drifted(gen.outputs())]
    assert not stale, f"out of date: {stale}; run: make manifests"


def test_the_crd_is_identical_in_all_three_places():
    code = render_yaml()
    chart = (gen.CHART / "crds" / "labelingstacks.labelstack.dev.yaml").read_bytes()
    manifests = (gen.REPO / "manifests" / "crd.yaml").read_bytes()
    assert chart == manifests == code.encode()
    # And the chart carries no other CRD that could disagree with it.
    assert [p.name for p in (gen.CHART / "crds").iterdir()] == ["labelingstacks.labelstack.dev.yaml"]


def test_check_mode_names_a_drifted_file(tmp_path, monkeypatch, capsys):
    crd = tmp_path / "crd.yaml"
    crd.write_text("stale\n")
    monkeypatch.setattr(gen, "REPO", tmp_path)
    monkeypatch.setattr(gen, "outputs", lambda: {crd: render_yaml()})
    assert gen.main(["--check"]) == 1
    assert "out of date: crd.yaml" in capsys.readouterr().err
    assert crd.read_text() == "stale\n"
    assert gen.main([]) == 0
    assert crd.read_text() == render_yaml()
    assert gen.main(["--check"]) == 0


def test_the_examples_asked_for_are_there():
    assert [p.stem for p in EXAMPLES] == sorted(gen.EXAMPLES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_validate_against_the_crds_own_schema(path):
    (stack,) = list(yaml.safe_load_all(path.read_text()))
    assert stack["kind"] == c.KIND and stack["apiVersion"] == c.API_VERSION
    assert "namespace" not in stack["metadata"], "examples go where kubectl -n puts them"
    jsonschema.validate(stack, checked_in_crd_schema())
    parse_spec(stack["spec"])  # and the rules the schema cannot express


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_what_the_operator_makes_of_each_example_is_valid_kubernetes(path):
    (stack,) = list(yaml.safe_load_all(path.read_text()))
    name = stack["metadata"]["name"]
    children = build_children(Stack(name, "labelling", "0000-uid", parse_spec(stack["spec"])))
    for obj in children:
        validate(obj)


def test_the_crd_schema_refuses_what_the_operator_would_refuse():
    bad = load_example("gpu")
    bad["spec"]["backends"][0]["gpu"] = -1
    with pytest.raises(jsonschema.ValidationError, match="minimum"):
        jsonschema.validate(bad, checked_in_crd_schema())
    typo = load_example("cpu-minimal")
    typo["spec"]["backends"][0]["weigths"] = typo["spec"]["backends"][0].pop("weights")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(typo, checked_in_crd_schema())


def test_cpu_minimal_example_needs_no_gpu_and_no_weights():
    spec = parse_spec(load_example("cpu-minimal")["spec"])
    assert spec.backends and all(b.gpu == 0 and b.weights.demo for b in spec.backends)


def test_gpu_example_runs_segmentation_and_sam_on_gpus():
    spec = parse_spec(load_example("gpu")["spec"])
    assert {b.type.value for b in spec.backends} == {"segmentation", "sam"}
    assert all(b.gpu >= 1 and b.weights.claim_name for b in spec.backends)


def test_fashion_example_labels_garments_with_polygons_and_brushes_from_and_to_gcs():
    spec = parse_spec(load_example("fashion")["spec"])
    (project,) = spec.projects
    config = project.label_config
    assert "<PolygonLabels" in config and "<BrushLabels" in config
    for garment in ("Dress", "Coat", "Skirt", "Trousers"):
        assert f'value="{garment}"' in config
    assert project.gcs is not None and project.gcs.source and project.gcs.target
    assert project.gcs.source.credentials_secret and project.gcs.target.credentials_secret


def test_scale_out_example_autoscales_segmentation_on_shared_models_and_runs_two_sam_pods():
    spec = parse_spec(load_example("scale-out")["spec"])
    seg = next(b for b in spec.backends if b.type.value == "segmentation")
    sam = next(b for b in spec.backends if b.type.value == "sam")
    assert seg.autoscaling.enabled and seg.autoscaling.min_replicas >= 2
    assert seg.autoscaling.pods_metric is not None
    assert seg.autoscaling.pods_metric.name == "labelstack_inflight_requests"
    # Shared models: a GCS store (or a ReadWriteMany volume), never a ReadWriteOnce one.
    assert seg.model_store is not None or seg.model_storage.access_mode == "ReadWriteMany"
    assert sam.replicas == 2 and not sam.autoscaling.enabled
    assert seg.disruption_budget_wanted and sam.disruption_budget_wanted
    assert spec.redis.enabled


def test_the_scale_out_example_needs_its_shared_models():
    spec = copy.deepcopy(load_example("scale-out")["spec"])
    del spec["backends"][0]["modelStorage"]
    with pytest.raises(SpecError, match="replicas cannot share a ReadWriteOnce volume"):
        parse_spec(spec)


def test_an_example_with_a_cross_field_error_is_refused_by_the_model():
    spec = copy.deepcopy(load_example("gpu")["spec"])
    spec["projects"][0]["backends"] = ["seg", "nope"]
    with pytest.raises(SpecError, match="nope"):
        parse_spec(spec)


def test_operator_manifest_is_valid_and_free_of_helm():
    docs = list(yaml.safe_load_all(gen.OPERATOR_MANIFEST.read_text()))
    kinds = by_kind(docs)
    assert sorted(kinds) == ["Deployment", "Namespace", "Role", "RoleBinding", "ServiceAccount"]
    assert docs[0]["kind"] == "Namespace", "the namespace must exist before what lives in it"
    for doc in docs:
        validate(doc)
        assert doc["metadata"].get("namespace", "labelstack") == "labelstack"
    text = gen.OPERATOR_MANIFEST.read_text()
    assert "helm.sh/" not in text and "Helm" not in text.replace("without Helm", "")


@pytest.mark.parametrize("doc", ["README.md", "docs/operations.md"])
def test_paths_the_deploy_docs_name_exist(doc):
    text = (gen.REPO / doc).read_text()
    paths = set(re.findall(r"\b((?:manifests|charts)/[\w./-]+\.(?:yaml|json))", text))
    assert paths, f"{doc} names no shipped file"
    for path in paths:
        assert (gen.REPO / path).exists(), f"{doc} names {path}, which does not exist"


def test_readme_walkthrough_matches_the_minimal_example():
    name = load_example("cpu-minimal")["metadata"]["name"]
    readme = (gen.REPO / "README.md").read_text()
    assert f"labelingstack/{name} " in readme and f"service/{name}-label-studio 8080:8080" in readme
    assert f"secret {name}-label-studio-admin" in readme
