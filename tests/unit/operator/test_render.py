"""Rendering: every object is valid Kubernetes 1.30 (strict), and carries what the product needs."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from labelstack_operator import constants as c
from labelstack_operator.render import Stack, build_admin_secret, build_children, build_redis_secret, own
from labelstack_operator.render.backends import GPU_RESOURCE
from labelstack_operator.spec import parse_spec
from tests.support import stacks
from tests.support.shipping import validate

UID = "4f3d2c1b-0000-4000-8000-000000000001"


def make_stack(spec: dict[str, Any], name: str = "garments") -> Stack:
    return Stack(name=name, namespace="labelling", uid=UID, spec=parse_spec(spec))


def rendered(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The children and the generated Secrets, as the reconcile pass creates them."""
    stack = make_stack(spec)
    secrets = [build_admin_secret(stack, password="pw", token="t" * 40)]
    if stack.spec.redis.enabled:
        secrets.append(build_redis_secret(stack, password="redis-pw"))
    return [*build_children(stack), *(own(stack, secret) for secret in secrets)]


def by_key(objs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


def pod(objs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    keyed = by_key(objs)
    workload = keyed.get(("Deployment", name)) or keyed[("StatefulSet", name)]
    return workload["spec"]["template"]["spec"]


def container(objs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return pod(objs, name)["containers"][0]


def env(cont: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in cont["env"]}


@pytest.mark.parametrize(
    "spec", [stacks.MINIMAL, stacks.SMALL, stacks.FULL], ids=["minimal", "small", "full"]
)
def test_every_object_validates_against_kubernetes_1_27_to_1_33_strict(spec):
    objs = rendered(spec)
    assert objs
    for obj in objs:
        validate(obj)


def test_the_service_monitor_scrapes_every_backend_of_the_stack_and_the_scraper_gets_their_port_only():
    objs = by_key(rendered(stacks.FULL))
    monitor = objs[("ServiceMonitor", "garments-backends")]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["labelling"]}
    assert monitor["spec"]["endpoints"] == [
        {"port": "http", "path": "/metrics", "scheme": "http", "interval": "15s"}
    ]
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [
        o
        for k, o in objs.items()
        if k[0] == "Service" and selector.items() <= o["metadata"]["labels"].items()
    ]
    assert sorted(s["metadata"]["name"] for s in services) == [
        "garments-sam",
        "garments-seg",
        "garments-seg-cloud",
    ]
    assert all(s["spec"]["ports"][0]["name"] == "http" for s in services)

    from_label_studio, from_scraper = objs[("NetworkPolicy", "garments-backends")]["spec"]["ingress"]
    assert from_scraper == {
        "from": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
            }
        ],
        "ports": [{"protocol": "TCP", "port": 9090}],
    }
    assert len(objs[("NetworkPolicy", "garments-redis")]["spec"]["ingress"]) == 1  # Redis: backends only
    # Off by default: no ServiceMonitor, no way in for a scraper.
    small = by_key(rendered(stacks.SMALL))
    assert not [k for k in small if k[0] == "ServiceMonitor"]
    assert len(small[("NetworkPolicy", "garments-backends")]["spec"]["ingress"]) == 1


def test_minimal_spec_renders_label_studio_and_redis_only():
    keys = set(by_key(rendered(stacks.MINIMAL)))
    assert keys == {
        ("PersistentVolumeClaim", "garments-label-studio-data"),
        ("Service", "garments-label-studio"),
        ("Deployment", "garments-label-studio"),
        ("Service", "garments-redis"),
        ("Deployment", "garments-redis"),
        ("NetworkPolicy", "garments-redis"),
        ("NetworkPolicy", "garments-label-studio-egress"),
        # The embedded PostgreSQL (its password Secret is generated at reconcile).
        ("PersistentVolumeClaim", "garments-postgres-data"),
        ("Service", "garments-postgres"),
        ("StatefulSet", "garments-postgres"),
        ("NetworkPolicy", "garments-postgres"),
        ("Secret", "garments-label-studio-admin"),
        ("Secret", "garments-redis"),
    }


def test_full_spec_renders_every_child():
    keys = set(by_key(rendered(stacks.FULL)))
    assert {
        ("Deployment", "garments-seg"),
        ("Service", "garments-seg"),
        ("PersistentVolumeClaim", "garments-seg-models"),
        ("Deployment", "garments-sam"),
        ("Service", "garments-sam"),
        ("NetworkPolicy", "garments-backends"),
        ("Ingress", "garments-label-studio"),
        ("PersistentVolumeClaim", "garments-redis-data"),
        ("Secret", "garments-admin"),
        ("Secret", "garments-redis"),
        ("HorizontalPodAutoscaler", "garments-seg"),
        ("PodDisruptionBudget", "garments-seg"),
        ("PodDisruptionBudget", "garments-sam"),
        ("Deployment", "garments-seg-cloud"),
    } <= keys
    # SAM keeps no fine-tuned models, and seg-cloud keeps them in GCS: no PVC for either.
    assert ("PersistentVolumeClaim", "garments-sam-models") not in keys
    assert ("PersistentVolumeClaim", "garments-seg-cloud-models") not in keys
    # Only seg autoscales; seg-cloud turned its disruption budget off.
    assert {k for k in keys if k[0] == "HorizontalPodAutoscaler"} == {
        ("HorizontalPodAutoscaler", "garments-seg")
    }
    assert ("PodDisruptionBudget", "garments-seg-cloud") not in keys


def test_every_pod_is_locked_down():
    objs = rendered(stacks.FULL)
    for obj in objs:
        if obj["kind"] != "Deployment":
            continue
        spec = obj["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] > 0
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for cont in spec["containers"]:
            sc = cont["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    # Read-only root where the program allows it: backends and Redis (Label Studio writes its config).
    assert container(objs, "garments-seg")["securityContext"]["readOnlyRootFilesystem"] is True
    assert container(objs, "garments-redis")["securityContext"]["readOnlyRootFilesystem"] is True
    assert container(objs, "garments-label-studio")["securityContext"]["readOnlyRootFilesystem"] is False


def test_backend_has_an_in_memory_dev_shm_with_a_size_limit():
    objs = rendered(stacks.FULL)
    spec = pod(objs, "garments-seg")
    shm = next(v for v in spec["volumes"] if v["name"] == "shm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "4Gi"}
    assert {"name": "shm", "mountPath": "/dev/shm"} in spec["containers"][0]["volumeMounts"]


def test_gpu_backends_get_limits_toleration_and_node_selector():
    objs = rendered(stacks.FULL)
    seg = pod(objs, "garments-seg")
    assert seg["containers"][0]["resources"]["limits"][GPU_RESOURCE] == "1"
    assert seg["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    tolerations = seg["tolerations"]
    assert {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"} in tolerations
    assert {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"} in tolerations
    assert env(seg["containers"][0])["LABELSTACK_DEVICE"] == "cuda"


def test_cpu_backends_ask_for_no_gpu():
    objs = rendered(stacks.SMALL)
    seg = pod(objs, "garments-seg")
    assert GPU_RESOURCE not in seg["containers"][0]["resources"].get("limits", {})
    assert "tolerations" not in seg and "nodeSelector" not in seg
    assert env(seg["containers"][0])["LABELSTACK_DEVICE"] == "cpu"


def test_backend_probes_give_model_loading_minutes():
    cont = container(rendered(stacks.SMALL), "garments-seg")
    startup = cont["startupProbe"]
    assert startup["httpGet"] == {"path": "/health", "port": "http"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    assert cont["readinessProbe"]["httpGet"]["path"] == "/health"
    # A worker reloading its model is not dead: liveness asks only whether loading failed.
    assert cont["livenessProbe"]["httpGet"]["path"] == "/livez"


def test_label_studio_probes_allow_a_slow_first_migration():
    cont = container(rendered(stacks.MINIMAL), "garments-label-studio")
    startup = cont["startupProbe"]
    assert startup["httpGet"]["path"] == "/health"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600


def test_label_studio_env_reads_the_admin_secret_and_allows_cluster_backends():
    objs = rendered(stacks.FULL)
    values = env(container(objs, "garments-label-studio"))
    for var, key in (
        ("LABEL_STUDIO_USERNAME", "username"),
        ("LABEL_STUDIO_PASSWORD", "password"),
        ("LABEL_STUDIO_USER_TOKEN", "token"),
    ):
        assert values[var] == {"secretKeyRef": {"name": "garments-admin", "key": key}}
    assert values["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] == "true"
    # Backends on ClusterIPs pass the SSRF guard through a narrower ban list (test_team.py).
    assert values["ML_BLOCK_LOCAL_IP"] == values["SSRF_PROTECTION_ENABLED"] == "true"
    assert values["LABEL_STUDIO_HOST"] == "https://label.example.com"
    assert values["LOG_LEVEL"] == "DEBUG"  # extra env from the spec
    mounts = container(objs, "garments-label-studio")["volumeMounts"]
    assert {"name": "data", "mountPath": "/label-studio/data"} in mounts


def test_label_studio_host_falls_back_to_the_service_without_ingress():
    values = env(container(rendered(stacks.MINIMAL), "garments-label-studio"))
    assert values["LABEL_STUDIO_HOST"] == "http://garments-label-studio.labelling.svc:8080"


def test_backend_env_follows_the_documented_contract():
    objs = rendered(stacks.FULL)
    seg = env(container(objs, "garments-seg"))
    assert seg["LABELSTACK_PREDICTOR"] == "segmentation"
    assert seg["LABEL_STUDIO_URL"] == "http://garments-label-studio.labelling.svc:8080"
    assert seg["LABEL_STUDIO_API_KEY"] == {
        "secretKeyRef": {"name": "garments-label-studio-backends", "key": "token"}
    }
    assert seg["MODEL_DIR"] == "/models"
    assert seg["LABELSTACK_SEG_WEIGHTS"] == "/weights/yolov8l-seg.pt"
    assert seg["LABELSTACK_SCORE_THRESHOLD"] == "0.4"
    assert seg["REDIS_URL"] == "redis://garments-redis.labelling.svc:6379/0"
    assert seg["YOLO_OFFLINE"] == "1" and seg["YOLO_CONFIG_DIR"].startswith("/tmp/")
    assert seg["LABELSTACK_TRAIN_EVERY"] == "50"
    assert seg["WANDB_API_KEY"] == {"secretKeyRef": {"name": "wandb", "key": "key"}}
    sam = env(container(objs, "garments-sam"))
    assert sam["LABELSTACK_PREDICTOR"] == "sam"
    assert sam["LABELSTACK_SAM_MODEL_TYPE"] == "vit_h"
    assert sam["LABELSTACK_SAM_CHECKPOINT"] == "/opt/weights/sam_vit_h.pth"
    assert "LABELSTACK_DEMO_MODEL" not in sam
    demo = env(container(rendered(stacks.SMALL), "garments-seg"))
    assert demo["LABELSTACK_DEMO_MODEL"] == "1"
    assert "LABELSTACK_SEG_WEIGHTS" not in demo


def test_user_env_replaces_ours_by_name_without_duplicates():
    spec = stacks.spec(stacks.SMALL)
    spec["backends"][0]["env"] = [{"name": "YOLO_OFFLINE", "value": "0"}]
    cont = container(rendered(spec), "garments-seg")
    names = [e["name"] for e in cont["env"]]
    assert len(names) == len(set(names))
    assert env(cont)["YOLO_OFFLINE"] == "0"


def test_backend_mounts_models_and_read_only_weights():
    objs = rendered(stacks.FULL)
    spec = pod(objs, "garments-seg")
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["models"]["persistentVolumeClaim"] == {"claimName": "garments-seg-models"}
    assert volumes["weights"]["persistentVolumeClaim"] == {"claimName": "model-weights", "readOnly": True}
    mounts = spec["containers"][0]["volumeMounts"]
    assert {"name": "weights", "mountPath": "/weights", "readOnly": True} in mounts
    assert {"name": "models", "mountPath": "/models"} in mounts
    claim = by_key(objs)[("PersistentVolumeClaim", "garments-seg-models")]["spec"]
    assert claim["accessModes"] == ["ReadWriteMany"] and claim["storageClassName"] == "filestore"
    # SAM and demo backends keep models in an emptyDir.
    assert "emptyDir" in {v["name"]: v for v in pod(objs, "garments-sam")["volumes"]}["models"]


def test_deployment_strategy_never_double_attaches_a_read_write_once_volume():
    objs = by_key(rendered(stacks.FULL))
    assert objs[("Deployment", "garments-label-studio")]["spec"]["strategy"] == {"type": "Recreate"}
    # Segmentation on a ReadWriteMany volume may roll.
    assert objs[("Deployment", "garments-seg")]["spec"]["strategy"] == {"type": "RollingUpdate"}
    # Models in GCS: nothing to attach, so it rolls.
    assert objs[("Deployment", "garments-seg-cloud")]["spec"]["strategy"] == {"type": "RollingUpdate"}
    small = by_key(rendered(stacks.SMALL))
    assert small[("Deployment", "garments-seg")]["spec"]["strategy"] == {"type": "Recreate"}


def test_backends_are_reachable_only_from_label_studio_and_redis_only_from_backends():
    objs = by_key(rendered(stacks.FULL))
    backends = objs[("NetworkPolicy", "garments-backends")]["spec"]
    assert backends["policyTypes"] == ["Ingress"]
    assert backends["podSelector"]["matchLabels"][c.LABEL_COMPONENT] == "backend"
    rule = backends["ingress"][0]  # then the scraper's (test_the_service_monitor_...)
    (peer,) = rule["from"]
    assert peer == {
        "podSelector": {
            "matchLabels": {
                c.LABEL_NAME: "label-studio",
                c.LABEL_INSTANCE: "garments",
                c.LABEL_COMPONENT: "label-studio",
            }
        }
    }
    assert rule["ports"] == [{"protocol": "TCP", "port": 9090}]
    redis = objs[("NetworkPolicy", "garments-redis")]["spec"]
    assert redis["podSelector"]["matchLabels"][c.LABEL_COMPONENT] == "redis"
    assert redis["ingress"][0]["from"][0]["podSelector"]["matchLabels"][c.LABEL_COMPONENT] == "backend"
    assert redis["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 6379}]
    # The policies' selectors match the pods they mean.
    ls_labels = objs[("Deployment", "garments-label-studio")]["spec"]["template"]["metadata"]["labels"]
    assert peer["podSelector"]["matchLabels"].items() <= ls_labels.items()
    for name in ("garments-seg", "garments-sam"):
        labels = objs[("Deployment", name)]["spec"]["template"]["metadata"]["labels"]
        assert backends["podSelector"]["matchLabels"].items() <= labels.items()


def test_ingress_routes_to_label_studio_with_tls_and_a_body_size_limit():
    ingress = by_key(rendered(stacks.FULL))[("Ingress", "garments-label-studio")]
    assert ingress["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/proxy-body-size": "500m",
        "cert-manager.io/cluster-issuer": "letsencrypt",
    }
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"secretName": "label-tls", "hosts": ["label.example.com"]}]
    (rule,) = spec["rules"]
    assert rule["host"] == "label.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {
        "name": "garments-label-studio",
        "port": {"name": "http"},
    }


def test_owner_references_on_everything_but_retained_data():
    objs = rendered(stacks.FULL)
    for obj in objs:
        refs = obj["metadata"].get("ownerReferences", [])
        if obj["kind"] in ("PersistentVolumeClaim", "Secret"):
            assert refs == [], obj["metadata"]["name"]
        else:
            assert refs == [
                {
                    "apiVersion": c.API_VERSION,
                    "kind": c.KIND,
                    "name": "garments",
                    "uid": UID,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]


def test_delete_policy_hands_data_to_the_garbage_collector_too():
    spec = stacks.spec(stacks.FULL)
    spec["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Delete"}
    for obj in rendered(spec):
        assert obj["metadata"]["ownerReferences"][0]["uid"] == UID


def test_labels_are_stable_and_selectors_are_a_subset():
    objs = rendered(stacks.FULL)
    for obj in objs:
        labels = obj["metadata"]["labels"]
        assert labels[c.LABEL_INSTANCE] == "garments"
        assert labels[c.LABEL_MANAGED_BY] == "labelstack-operator"
        assert labels[c.LABEL_PART_OF] == "labelstack"
        if obj["kind"] == "Deployment":
            selector = obj["spec"]["selector"]["matchLabels"]
            assert selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()
    # Rendering twice gives the same objects (no timestamps, no randomness outside the Secret).
    first = [o for o in rendered(stacks.FULL) if o["kind"] != "Secret"]
    second = [o for o in rendered(stacks.FULL) if o["kind"] != "Secret"]
    assert first == second


def test_a_spec_change_touches_only_the_affected_deployments():
    before = by_key(rendered(stacks.FULL))
    spec = stacks.spec(stacks.FULL)
    spec["backends"][1]["samModelType"] = "vit_l"
    after = by_key(rendered(spec))
    changed = {key for key in before if key[0] != "Secret" and before[key] != after[key]}
    assert changed == {("Deployment", "garments-sam")}


def test_admin_secret_holds_the_three_keys():
    stack = make_stack(stacks.FULL)
    secret = build_admin_secret(stack, password="pw", token="t" * 40)
    assert set(secret["data"]) == {"username", "password", "token"}
    assert secret["metadata"]["name"] == "garments-admin"


def test_the_validator_is_strict_enough_to_catch_a_typo():
    # Guards the validation test above against passing vacuously.
    deployment = by_key(rendered(stacks.SMALL))[("Deployment", "garments-seg")]
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.30.0", strict=True)


# Scale-out: Redis's password, the autoscaler, the disruption budgets, shared models.


def test_redis_secret_holds_a_password_and_outlives_the_stack_like_the_admin():
    stack = make_stack(stacks.MINIMAL)
    secret = own(stack, build_redis_secret(stack, password="redis-pw"))
    assert secret["metadata"]["name"] == "garments-redis"
    assert secret["data"] == {"password": "cmVkaXMtcHc="}
    assert "ownerReferences" not in secret["metadata"]  # data: Retain by default
    assert secret["metadata"]["labels"][c.LABEL_COMPONENT] == "redis"


def test_redis_asks_for_the_password_and_its_probe_gives_it():
    cont = container(rendered(stacks.MINIMAL), "garments-redis")
    args = cont["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert args[args.index("--protected-mode") + 1] == "no"
    from_secret = {"secretKeyRef": {"name": "garments-redis", "key": "password"}}
    assert env(cont) == {"REDIS_PASSWORD": from_secret, "REDISCLI_AUTH": from_secret}
    # redis-cli reads REDISCLI_AUTH: the password never appears in the probe's command line.
    assert cont["readinessProbe"]["exec"]["command"] == ["redis-cli", "-p", "6379", "ping"]


def test_backends_get_redis_with_its_password_and_their_own_key_prefix():
    objs = rendered(stacks.FULL)
    for name in ("seg", "sam", "seg-cloud"):
        values = env(container(objs, f"garments-{name}"))
        assert values["REDIS_URL"] == "redis://garments-redis.labelling.svc:6379/0"  # no password in it
        assert values["REDIS_PASSWORD"] == {"secretKeyRef": {"name": "garments-redis", "key": "password"}}
        assert values["LABELSTACK_REDIS_PREFIX"] == f"labelstack:garments:{name}"


def test_sam_backends_share_their_embeddings_through_redis_within_a_byte_budget():
    objs = rendered(stacks.FULL)
    sam = env(container(objs, "garments-sam"))
    assert sam["LABELSTACK_SAM_REDIS_BYTES"] == str(128 * 2**20)
    assert sam["LABELSTACK_SAM_REDIS_TTL"] == "3600"
    seg = env(container(objs, "garments-seg"))
    assert "LABELSTACK_SAM_REDIS_BYTES" not in seg and "LABELSTACK_SAM_REDIS_TTL" not in seg
    defaults = env(container(rendered(stacks.SMALL), "garments-sam"))
    assert defaults["LABELSTACK_SAM_REDIS_BYTES"] == str(256 * 2**20)
    assert defaults["LABELSTACK_SAM_REDIS_TTL"] == "86400"


def test_without_redis_backends_get_no_redis_variables_and_no_secret():
    spec = stacks.spec(stacks.SMALL)
    spec["redis"] = {"enabled": False}
    objs = rendered(spec)
    assert ("Secret", "garments-redis") not in by_key(objs)
    for name in ("garments-seg", "garments-sam"):
        values = env(container(objs, name))
        assert not {k for k in values if "REDIS" in k}


def test_a_gcs_model_store_with_a_key_mounts_it_read_only_and_models_are_a_local_mirror():
    objs = rendered(stacks.FULL)
    spec = pod(objs, "garments-seg-cloud")
    values = env(spec["containers"][0])
    assert values["LABELSTACK_MODEL_STORE"] == "gs://garment-models/garments/seg-cloud"
    assert values["GOOGLE_APPLICATION_CREDENTIALS"] == "/var/run/secrets/labelstack/model-store/sa.json"
    assert values["MODEL_DIR"] == "/models"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["models"] == {"name": "models", "emptyDir": {}}
    assert volumes["model-store"]["secret"] == {
        "secretName": "gcs-models",
        "items": [{"key": "sa.json", "path": "sa.json"}],
        "defaultMode": 0o440,
    }
    mounts = spec["containers"][0]["volumeMounts"]
    assert {
        "name": "model-store",
        "mountPath": "/var/run/secrets/labelstack/model-store",
        "readOnly": True,
    } in mounts
    # The other backends keep their models where they were.
    assert "LABELSTACK_MODEL_STORE" not in env(container(objs, "garments-seg"))


def test_a_gcs_model_store_without_a_key_uses_workload_identity():
    spec = stacks.spec(stacks.SMALL)
    spec["backends"][0]["modelStorage"] = {"gcs": {"bucket": "garment-models", "prefix": "seg"}}
    objs = rendered(spec)
    seg = pod(objs, "garments-seg")
    values = env(seg["containers"][0])
    assert values["LABELSTACK_MODEL_STORE"] == "gs://garment-models/seg"
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in values
    assert "model-store" not in {v["name"] for v in seg["volumes"]}
    assert ("PersistentVolumeClaim", "garments-seg-models") not in by_key(objs)
    # A model store is for fine-tuned models: a SAM backend has none.
    spec["backends"][1]["modelStorage"] = {"gcs": {"bucket": "garment-models", "prefix": "sam"}}
    assert "LABELSTACK_MODEL_STORE" not in env(container(rendered(spec), "garments-sam"))


def test_the_autoscaler_scales_the_deployment_on_cpu_and_in_flight_requests():
    objs = by_key(rendered(stacks.FULL))
    hpa = objs[("HorizontalPodAutoscaler", "garments-seg")]
    assert hpa["apiVersion"] == "autoscaling/v2"
    deployment = objs[("Deployment", "garments-seg")]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "garments-seg",
    }
    assert hpa["metadata"]["labels"] == deployment["metadata"]["labels"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}},
        },
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "labelstack_inflight_requests"},
                "target": {"type": "AverageValue", "averageValue": "1500m"},
            },
        },
    ]


def test_the_autoscaler_defaults_to_cpu_and_can_scale_on_the_pods_metric_alone():
    spec = stacks.spec(stacks.SMALL)
    spec["backends"][1]["autoscaling"] = {"enabled": True}
    hpa = by_key(rendered(spec))[("HorizontalPodAutoscaler", "garments-sam")]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 4)
    assert hpa["metrics"] == [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
        }
    ]
    # On the pods metric alone, a backend needs no CPU request.
    spec["backends"][1]["autoscaling"] = {"enabled": True, "podsMetric": {"targetAverageValue": "3"}}
    spec["backends"][1]["resources"] = {"limits": {"memory": "4Gi"}}
    objs = rendered(spec)
    (metric,) = by_key(objs)[("HorizontalPodAutoscaler", "garments-sam")]["spec"]["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["target"]["averageValue"] == "3"
    for obj in objs:
        kubernetes_validate.validate(obj, "1.30.0", strict=True)


def test_an_autoscaled_deployment_leaves_the_replica_count_to_the_autoscaler():
    objs = by_key(rendered(stacks.FULL))
    assert "replicas" not in objs[("Deployment", "garments-seg")]["spec"]  # replicas: 2 is ignored
    assert objs[("Deployment", "garments-sam")]["spec"]["replicas"] == 2
    assert objs[("Deployment", "garments-seg-cloud")]["spec"]["replicas"] == 3


def test_backends_that_can_have_several_pods_get_a_disruption_budget_of_one():
    objs = by_key(rendered(stacks.FULL))
    for name in ("garments-seg", "garments-sam"):
        budget = objs[("PodDisruptionBudget", name)]
        assert budget["apiVersion"] == "policy/v1"
        assert budget["spec"]["maxUnavailable"] == 1 and "minAvailable" not in budget["spec"]
        assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
        # Exactly this backend's pods: the selector of its Deployment.
        assert budget["spec"]["selector"] == objs[("Deployment", name)]["spec"]["selector"]
    # One pod (and seg-cloud, which turned it off): no budget.
    assert not any(kind == "PodDisruptionBudget" for kind, _ in by_key(rendered(stacks.SMALL)))


def test_scaling_a_backend_out_touches_only_its_own_objects():
    before = by_key(rendered(stacks.SMALL))
    spec = stacks.spec(stacks.SMALL)
    spec["backends"][1]["replicas"] = 3
    after = by_key(rendered(spec))
    assert set(after) - set(before) == {("PodDisruptionBudget", "garments-sam")}
    changed = {key for key in before if key[0] != "Secret" and before[key] != after[key]}
    assert changed == {("Deployment", "garments-sam")}
