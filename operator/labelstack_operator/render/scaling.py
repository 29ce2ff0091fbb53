"""Scale-out of a backend: its HorizontalPodAutoscaler and its PodDisruptionBudget.

The replicas of one backend behave as one through Redis (training state, the
training lock, model versions, SAM's embeddings), so any pod may serve any request
and any pod but the last may go.
"""

from __future__ import annotations

from labelstack_operator.render.context import BACKEND, Manifest, Stack, metadata
from labelstack_operator.spec import Backend


def get_metrics(backend: Backend) -> list[Manifest]:
    autoscaling = backend.autoscaling
    metrics: list[Manifest] = []
    if autoscaling.cpu_target is not None:
        metrics.append(
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": autoscaling.cpu_target},
                },
            }
        )
    if autoscaling.pods_metric is not None:
        metric = autoscaling.pods_metric
        metrics.append(
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": metric.name},
                    "target": {"type": "AverageValue", "averageValue": metric.target_average_value},
                },
            }
        )
    return metrics


def build_backend_autoscaler(stack: Stack, backend: Backend) -> Manifest:
    name = stack.backend_name(backend)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(stack, name, BACKEND, backend),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": backend.autoscaling.min_replicas,
            "maxReplicas": backend.autoscaling.max_replicas,
            "metrics": get_metrics(backend),
        },
    }


def build_backend_disruption_budget(stack: Stack, backend: Backend) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(stack, stack.backend_name(backend), BACKEND, backend),
        "spec": {
            "maxUnavailable": 1,
            # A pod that is not ready (still loading its model, crash-looping) protects nothing:
            # it must not hold up a node drain.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
            "selector": {"matchLabels": stack.selector(BACKEND, backend)},
        },
    }
