"""NetworkPolicies: backends answer only Label Studio (and a scraper, when one is named), Redis
answers only the backends."""

from __future__ import annotations

from labelstack_operator import constants as c
from labelstack_operator.render.context import BACKEND, LABEL_STUDIO, REDIS, Manifest, Stack, metadata


def _only_from(stack: Stack, name: str, target: str, source: str, port: int) -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(stack, name, target),
        "spec": {
            # Matches every backend of the stack: the selector leaves the backend name out.
            "podSelector": {"matchLabels": stack.selector(target)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": stack.selector(source)}}],
                    "ports": [{"protocol": "TCP", "port": port}],
                }
            ],
        },
    }


# The namespace label the API server sets on every namespace (1.21+).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def build_backends_network_policy(stack: Stack) -> Manifest:
    policy = _only_from(stack, f"{stack.name}-backends", BACKEND, LABEL_STUDIO, c.BACKEND_PORT)
    monitoring = stack.spec.monitoring
    if monitoring.scraper_namespace:
        # The backend serves /metrics on its API port: a policy cannot tell paths apart, so the
        # scraper gets that one port, and nothing of Label Studio or Redis.
        peer: Manifest = {
            "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: monitoring.scraper_namespace}}
        }
        if monitoring.scraper_pod_labels:
            peer["podSelector"] = {"matchLabels": dict(monitoring.scraper_pod_labels)}
        policy["spec"]["ingress"].append(
            {"from": [peer], "ports": [{"protocol": "TCP", "port": c.BACKEND_PORT}]}
        )
    return policy


def build_redis_network_policy(stack: Stack) -> Manifest:
    return _only_from(stack, f"{stack.name}-redis", REDIS, BACKEND, c.REDIS_PORT)
