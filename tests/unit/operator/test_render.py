"""Rendering: every object is valid Kubernetes 1.30 (strict), and carries what the product needs."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from labelstack_operator import constants as c
from labelstack_operator.render import Stack, build_admin_secret, build_children, own
from labelstack_operator.render.backends import GPU_RESOURCE
from labelstack_operator.spec import parse_spec
from tests.support import stacks

UID = "4f3d2c1b-0000-4000-8000-000000000001"


def make_stack(spec: dict[str, Any], name: str = "garments") -> Stack:
    return Stack(name=name, namespace="labelling", uid=UID, spec=parse_spec(spec))


def rendered(spec: dict[str, Any]) -> list[dict[str, Any]]:
    stack = make_stack(spec)
    return [*build_children(stack), own(stack, build_admin_secret(stack, password="pw", token="t" * 40))]


def by_key(objs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


def pod(objs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return by_key(objs)[("Deployment", name)]["spec"]["template"]["spec"]


def container(objs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return pod(objs, name)["containers"][0]


def env(cont: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in cont["env"]}


@pytest.mark.parametrize(
    "spec", [stacks.MINIMAL, stacks.SMALL, stacks.FULL], ids=["minimal", "small", "full"]
)
def test_every_object_validates_against_kubernetes_1_30_strict(spec):
    objs = rendered(spec)
    assert objs
    for obj in objs:
        kubernetes_validate.validate(obj, "1.30.0", strict=True)


def test_minimal_spec_renders_label_studio_and_redis_only():
    keys = set(by_key(rendered(stacks.MINIMAL)))
    assert keys == {
        ("PersistentVolumeClaim", "garments-label-studio-data"),
        ("Service", "garments-label-studio"),
        ("Deployment", "garments-label-studio"),
        ("Service", "garments-redis"),
        ("Deployment", "garments-redis"),
        ("NetworkPolicy", "garments-redis"),
        ("Secret", "garments-label-studio-admin"),
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
    } <= keys
    # SAM keeps no fine-tuned models: no PVC for it.
    assert ("PersistentVolumeClaim", "garments-sam-models") not in keys


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
    assert cont["livenessProbe"]["httpGet"]["path"] == "/health"


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
    assert values["ML_BLOCK_LOCAL_IP"] == "false"
    assert values["SSRF_PROTECTION_ENABLED"] == "false"
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
    assert seg["LABEL_STUDIO_API_KEY"] == {"secretKeyRef": {"name": "garments-admin", "key": "token"}}
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
    small = by_key(rendered(stacks.SMALL))
    assert small[("Deployment", "garments-seg")]["spec"]["strategy"] == {"type": "Recreate"}


def test_backends_are_reachable_only_from_label_studio_and_redis_only_from_backends():
    objs = by_key(rendered(stacks.FULL))
    backends = objs[("NetworkPolicy", "garments-backends")]["spec"]
    assert backends["policyTypes"] == ["Ingress"]
    assert backends["podSelector"]["matchLabels"][c.LABEL_COMPONENT] == "backend"
    (rule,) = backends["ingress"]
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
