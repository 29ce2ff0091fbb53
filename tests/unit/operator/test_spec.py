"""The spec model: defaults, and cross-field rules the OpenAPI schema cannot express."""

from __future__ import annotations

import pytest

from labelstack_operator.spec import BackendType, SpecError, check_stack_name, parse_spec
from tests.support import stacks


def test_an_empty_spec_is_a_label_studio_with_redis_and_nothing_else():
    spec = parse_spec({})
    assert spec.label_studio.image == "heartexlabs/label-studio:1.23.2"
    assert spec.label_studio.storage.size == "10Gi"
    assert spec.redis.enabled
    assert spec.backends == [] and spec.projects == []
    assert not spec.ingress.enabled
    assert spec.persistent_volume_claim_retention_policy.when_deleted == "Retain"


def test_full_spec_parses_with_camel_case_names():
    spec = parse_spec(stacks.FULL)
    seg, sam, cloud = spec.backends
    assert seg.type is BackendType.SEGMENTATION and not seg.interactive
    assert sam.type is BackendType.SAM and sam.interactive
    assert seg.resources.requests == {"cpu": "2", "memory": "8Gi"}  # integers become quantities
    assert seg.model_storage.access_mode == "ReadWriteMany"
    assert (
        spec.projects[0].gcs.source is not None and spec.projects[0].gcs.source.credentials_secret is not None
    )
    assert spec.projects[0].gcs.source.credentials_secret.key == "credentials.json"
    assert seg.autoscaling.target_cpu_utilization_percentage == 60
    assert seg.autoscaling.pods_metric is not None
    assert seg.autoscaling.pods_metric.target_average_value == "1500m"
    assert spec.redis.shared_cache.ttl_seconds == 3600
    assert cloud.model_store is not None and cloud.model_store.url == "gs://garment-models/garments/seg-cloud"
    assert not cloud.models_claim and not cloud.disruption_budget_wanted


def test_scale_out_defaults():
    spec = parse_spec({"backends": [{"name": "sam", "type": "sam", "weights": {"demo": True}}]})
    (sam,) = spec.backends
    scaling = sam.autoscaling
    assert not scaling.enabled and (scaling.min_replicas, scaling.max_replicas) == (1, 4)
    assert scaling.cpu_target == 70 and scaling.pods_metric is None
    assert sam.disruption_budget.enabled and not sam.disruption_budget_wanted  # one pod: no budget
    assert spec.redis.shared_cache.size == "256Mi" and spec.redis.shared_cache.ttl_seconds == 86400
    assert sam.model_storage.gcs is None


@pytest.mark.parametrize(
    ("autoscaling", "cpu_target"),
    [
        ({}, 70),
        ({"podsMetric": {"targetAverageValue": "2"}}, None),
        ({"podsMetric": {"targetAverageValue": "2"}, "targetCPUUtilizationPercentage": 50}, 50),
        ({"targetCPUUtilizationPercentage": 90}, 90),
    ],
)
def test_cpu_is_the_default_autoscaling_metric_unless_a_pods_metric_is_given(autoscaling, cpu_target):
    backend = {"name": "sam", "type": "sam", "weights": {"demo": True}, "autoscaling": autoscaling}
    (sam,) = parse_spec({"backends": [backend]}).backends
    assert sam.autoscaling.cpu_target == cpu_target
    if "podsMetric" in autoscaling:
        assert sam.autoscaling.pods_metric is not None
        assert sam.autoscaling.pods_metric.name == "labelstack_inflight_requests"


@pytest.mark.parametrize(
    ("backend", "pods", "budget"),
    [
        ({"replicas": 1}, 1, False),
        ({"replicas": 2}, 2, True),
        ({"replicas": 2, "disruptionBudget": {"enabled": False}}, 2, False),
        ({"replicas": 5, "autoscaling": {"enabled": True, "maxReplicas": 3}}, 3, True),
        ({"autoscaling": {"enabled": True, "maxReplicas": 1}}, 1, False),
    ],
)
def test_a_backend_that_can_have_several_pods_gets_a_disruption_budget(backend, pods, budget):
    (sam,) = parse_spec(
        {"backends": [{"name": "sam", "type": "sam", "weights": {"demo": True}, **backend}]}
    ).backends
    assert sam.max_pods == pods
    assert sam.disruption_budget_wanted is budget


@pytest.mark.parametrize(
    ("model_storage", "url"),
    [
        ({"gcs": {"bucket": "models"}}, "gs://models"),
        ({"gcs": {"bucket": "models", "prefix": "/team/seg/"}}, "gs://models/team/seg"),
    ],
)
def test_a_gcs_model_store_replaces_the_models_pvc(model_storage, url):
    backend = {"name": "seg", "type": "segmentation", "weights": {"demo": True}, "replicas": 3}
    (seg,) = parse_spec({"backends": [{**backend, "modelStorage": model_storage}]}).backends
    assert seg.model_store is not None and seg.model_store.url == url
    assert not seg.models_claim


def test_several_segmentation_pods_may_share_a_read_write_many_volume_or_none():
    for storage in ({"accessMode": "ReadWriteMany"}, {"enabled": False}):
        backend = {"name": "seg", "type": "segmentation", "weights": {"demo": True}, "replicas": 2}
        parse_spec({"backends": [{**backend, "modelStorage": storage}]})
    # SAM keeps no fine-tuned models, so nothing stands in its way.
    parse_spec({"backends": [{"name": "sam", "type": "sam", "weights": {"demo": True}, "replicas": 4}]})


def seg(**extra: object) -> dict:
    return {"backends": [{"name": "seg", "type": "segmentation", "weights": {"demo": True}, **extra}]}


def sam(name: str = "sam", **extra: object) -> dict:
    return {"name": name, "type": "sam", "weights": {"demo": True}, **extra}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            seg(replicas=2),
            "backend seg: 2 replicas cannot share a ReadWriteOnce volume: "
            "set modelStorage.accessMode: ReadWriteMany or modelStorage.gcs",
        ),
        (
            seg(autoscaling={"enabled": True, "maxReplicas": 3}),
            "backend seg: up to 3 replicas cannot share a ReadWriteOnce volume",
        ),
        (
            seg(
                replicas=2, autoscaling={"minReplicas": 5, "maxReplicas": 3}, modelStorage={"enabled": False}
            ),
            "autoscaling.minReplicas (5) must not exceed autoscaling.maxReplicas (3)",
        ),
        (seg(autoscaling={"maxReplicas": 65}), "less than or equal to 64"),
        (seg(autoscaling={"minReplicas": 0}), "greater than or equal to 1"),
        (seg(autoscaling={"targetCPUUtilizationPercentage": 101}), "less than or equal to 100"),
        (seg(autoscaling={"targetCpuUtilizationPercentage": 50}), "Extra inputs are not permitted"),
        (
            {"backends": [sam(autoscaling={"enabled": True}, resources={"requests": {"memory": "2Gi"}})]},
            "backend sam: autoscaling on CPU needs resources.requests.cpu",
        ),
        (seg(autoscaling={"podsMetric": {}}), "podsMetric.targetAverageValue: Field required"),
        (
            seg(autoscaling={"podsMetric": {"targetAverageValue": "0"}}),
            "targetAverageValue 0 must be positive",
        ),
        (seg(modelStorage={"gcs": {"bucket": "Not_A_Bucket"}}), "modelStorage.gcs.bucket"),
        (
            {
                "backends": [
                    {"name": n, "type": "segmentation", "weights": {"demo": True}, "modelStorage": store}
                    for n, store in (
                        ("a", {"gcs": {"bucket": "models", "prefix": "x"}}),
                        ("b", {"gcs": {"bucket": "models", "prefix": "x/"}}),
                    )
                ]
            },
            "backends must not share a model store (give each its own prefix): gs://models/x",
        ),
        ({"redis": {"sharedCache": {"ttlSeconds": 59}}}, "greater than or equal to 60"),
        ({"redis": {"sharedCache": {"size": "-1Mi"}}}, "redis.sharedCache.size -1Mi is negative"),
        (
            {"backends": [sam("a"), sam("b"), sam("c"), sam("d")]},
            "redis.sharedCache.size 256Mi for 4 SAM backend(s), plus 64Mi for coordination, "
            "does not fit in redis.resources.limits.memory 1Gi: raise the limit or lower the size",
        ),
    ],
)
def test_scale_out_mistakes_are_refused_with_a_clear_message(spec, message):
    with pytest.raises(SpecError) as err:
        parse_spec(spec)
    assert message in str(err.value)


def test_sam_caches_that_fit_or_that_redis_does_not_hold_are_fine():
    two = [sam("a"), sam("b")]
    parse_spec({"backends": two, "redis": {"sharedCache": {"size": "256Mi"}}})
    parse_spec({"backends": two, "redis": {"resources": {"limits": {"memory": "2Gi"}}}})
    parse_spec({"backends": two, "redis": {"enabled": False}})


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"backends": [{"name": "seg", "type": "segmentation", "weights": {}}]}, "either path"),
        (
            {
                "backends": [
                    {"name": "seg", "type": "segmentation", "weights": {"demo": True, "path": "/w.pt"}}
                ]
            },
            "either path",
        ),
        (
            {"backends": [{"name": "s", "type": "sam", "weights": {"claimName": "w", "path": "/abs.pth"}}]},
            "relative to the PVC",
        ),
        (
            {"backends": [{"name": "s", "type": "sam", "weights": {"claimName": "w", "path": "../x.pth"}}]},
            "relative to the PVC",
        ),
        ({"backends": [{"name": "s", "type": "sam", "weights": {"path": "rel.pth"}}]}, "must be absolute"),
        (
            {"projects": [{"title": "Garments", "labelConfig": "<View/>", "backends": ["nope"]}]},
            "unknown backends: nope",
        ),
        (
            {
                "backends": [
                    {"name": "a", "type": "sam", "weights": {"demo": True}},
                    {"name": "a", "type": "segmentation", "weights": {"demo": True}},
                ]
            },
            "unique: a",
        ),
        ({"backends": [{"name": "redis", "type": "sam", "weights": {"demo": True}}]}, "taken by the stack"),
        ({"labelStudio": {"storage": {"size": "ten gigs"}}}, "not a Kubernetes quantity"),
        ({"labelStudio": {"pasword": "hunter2"}}, "labelStudio.pasword: Extra inputs are not permitted"),
        ({"redis": {"enabled": "perhaps"}}, "redis.enabled"),
        (
            {
                "labelStudio": {
                    "env": [{"name": "X", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "a"}}}]
                }
            },
            "not both",
        ),
    ],
)
def test_invalid_specs_raise_a_readable_spec_error(patch, message):
    with pytest.raises(SpecError) as err:
        parse_spec(patch)
    assert message in str(err.value)


@pytest.mark.parametrize("quantity", ["1Gi", "500m", "2", 2, "1.5", "1e3", "0.5Ki"])
def test_quantities_accept_the_kubernetes_grammar(quantity):
    spec = parse_spec({"labelStudio": {"storage": {"size": quantity}}})
    assert spec.label_studio.storage.size == str(quantity)


@pytest.mark.parametrize("name", ["demo", "a", "team-a-garments"])
def test_stack_names_that_leave_room_for_child_names(name):
    check_stack_name(name)


@pytest.mark.parametrize("name", ["Demo", "1demo", "demo.dots", "x" * 31, "demo-"])
def test_stack_names_that_would_break_child_names(name):
    with pytest.raises(SpecError, match="DNS label"):
        check_stack_name(name)
