"""LabelingStack specs used by the operator tests and benchmarks."""

from __future__ import annotations

import copy
from typing import Any

from labelstack_operator import constants as c

GARMENT_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <PolygonLabels name="garment" toName="image">
    <Label value="dress"/><Label value="coat"/><Label value="trousers"/>
  </PolygonLabels>
  <BrushLabels name="mask" toName="image">
    <Label value="dress"/><Label value="coat"/><Label value="trousers"/>
  </BrushLabels>
  <KeyPointLabels name="click" toName="image" smart="true">
    <Label value="dress"/><Label value="coat"/><Label value="trousers"/>
  </KeyPointLabels>
</View>"""

MINIMAL: dict[str, Any] = {}

FULL: dict[str, Any] = {
    "labelStudio": {
        "image": "heartexlabs/label-studio:1.23.2",
        "imagePullPolicy": "IfNotPresent",
        "resources": {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
        "storage": {"size": "50Gi", "storageClassName": "fast-ssd"},
        "adminSecret": {"name": "garments-admin", "username": "lead@example.com"},
        "env": [{"name": "LOG_LEVEL", "value": "DEBUG"}],
    },
    "redis": {
        "enabled": True,
        "persistence": {"enabled": True, "size": "2Gi"},
        "sharedCache": {"size": "128Mi", "ttlSeconds": 3600},
    },
    "backends": [
        {
            "name": "seg",
            "type": "segmentation",
            "image": "labelstack/backend:0.1.0",
            "replicas": 2,
            "weights": {"claimName": "model-weights", "path": "yolov8l-seg.pt"},
            "gpu": 1,
            "resources": {"requests": {"cpu": 2, "memory": "8Gi"}, "limits": {"memory": "16Gi"}},
            "shmSize": "4Gi",
            "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
            "env": [
                {"name": "LABELSTACK_TRAIN_EVERY", "value": "50"},
                {"name": "WANDB_API_KEY", "valueFrom": {"secretKeyRef": {"name": "wandb", "key": "key"}}},
            ],
            "scoreThreshold": 0.4,
            "modelStorage": {"size": "20Gi", "accessMode": "ReadWriteMany", "storageClassName": "filestore"},
            # replicas is ignored while the HPA scales it.
            "autoscaling": {
                "enabled": True,
                "minReplicas": 2,
                "maxReplicas": 6,
                "targetCPUUtilizationPercentage": 60,
                "podsMetric": {"name": "labelstack_inflight_requests", "targetAverageValue": "1500m"},
            },
        },
        {
            "name": "sam",
            "type": "sam",
            "replicas": 2,
            "weights": {"path": "/opt/weights/sam_vit_h.pth"},
            "samModelType": "vit_h",
            "gpu": 1,
            "shmSize": "2Gi",
        },
        {
            # Fine-tuned models in GCS; several replicas, no disruption budget.
            "name": "seg-cloud",
            "type": "segmentation",
            "replicas": 3,
            "weights": {"demo": True},
            "modelStorage": {
                "gcs": {
                    "bucket": "garment-models",
                    "prefix": "garments/seg-cloud/",
                    "credentialsSecret": {"name": "gcs-models", "key": "sa.json"},
                }
            },
            "disruptionBudget": {"enabled": False},
        },
    ],
    "ingress": {
        "enabled": True,
        "host": "label.example.com",
        "className": "nginx",
        "tlsSecretName": "label-tls",
        "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
        "maxBodySize": "500m",
    },
    "projects": [
        {
            "title": "Runway garments",
            "labelConfig": GARMENT_CONFIG,
            "description": "Garments on the runway",
            "backends": ["seg", "sam"],
            "retrievePredictionsOnLoad": True,
            "gcs": {
                "source": {
                    "bucket": "runway-images",
                    "prefix": "2026/ss",
                    "credentialsSecret": {"name": "gcs-reader"},
                    "regexFilter": r".*\.(jpe?g|png)$",
                },
                "target": {
                    "bucket": "runway-labels",
                    "prefix": "exports",
                    "credentialsSecret": {"name": "gcs-writer"},
                },
            },
        }
    ],
    "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain"},
    "imagePullSecrets": [{"name": "registry-creds"}],
    "monitoring": {
        "serviceMonitor": {
            "enabled": True,
            "interval": "15s",
            "labels": {"release": "kube-prometheus-stack"},
        },
        "scraperNamespace": "monitoring",
        "scraperPodLabels": {"app.kubernetes.io/name": "prometheus"},
    },
}

# A small stack that exercises every kind of child without needing Secrets other than the admin's.
SMALL: dict[str, Any] = {
    "backends": [
        {"name": "seg", "type": "segmentation", "weights": {"demo": True}},
        {"name": "sam", "type": "sam", "weights": {"demo": True}, "samModelType": "mobile_sam"},
    ],
    "ingress": {"enabled": True, "host": "label.example.com"},
    "projects": [{"title": "Garments", "labelConfig": GARMENT_CONFIG, "backends": ["seg", "sam"]}],
}


def api_server_defaults(schema: dict[str, Any], value: Any) -> Any:
    """What the API server stores for ``value`` under a CRD's structural ``schema``: a missing
    property gets its default, then every present property (defaulted ones too) is walked."""
    if schema.get("type") == "object" and isinstance(value, dict):
        out = dict(value)
        for name, prop in schema.get("properties", {}).items():
            if name not in out and "default" in prop:
                out[name] = copy.deepcopy(prop["default"])
            if name in out:
                out[name] = api_server_defaults(prop, out[name])
        return out
    if schema.get("type") == "array" and isinstance(value, list):
        return [api_server_defaults(schema.get("items", {}), item) for item in value]
    return value


def crd_spec_schema_root(crd: dict[str, Any]) -> dict[str, Any]:
    """The openAPIV3Schema of a CRD's storage version."""
    (version,) = (v for v in crd["spec"]["versions"] if v["storage"])
    return version["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def crd_spec_schema(crd: dict[str, Any]) -> dict[str, Any]:
    return crd_spec_schema_root(crd)["properties"]["spec"]  # type: ignore[no-any-return]


def spec(base: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(base)


def stack_body(name: str, namespace: str, spec_: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": copy.deepcopy(SMALL if spec_ is None else spec_),
    }
