"""NetworkPolicies: backends answer only Label Studio, Redis answers only the backends."""

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


def build_backends_network_policy(stack: Stack) -> Manifest:
    return _only_from(stack, f"{stack.name}-backends", BACKEND, LABEL_STUDIO, c.BACKEND_PORT)


def build_redis_network_policy(stack: Stack) -> Manifest:
    return _only_from(stack, f"{stack.name}-redis", REDIS, BACKEND, c.REDIS_PORT)
