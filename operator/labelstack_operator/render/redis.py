"""Redis for the backends: a Deployment, its Service and, with persistence on, a PVC.

Redis asks for the password of the generated ``<stack>-redis`` Secret; the
backends read it from the same Secret (REDIS_PASSWORD).
"""

from __future__ import annotations

from labelstack_operator import constants as c
from labelstack_operator.render import parts
from labelstack_operator.render.context import REDIS, Manifest, Stack

# The redis:*-alpine images' "redis" user and group.
UID, GID = 999, 1000

# Key of the generated Redis Secret.
SECRET_REDIS_PASSWORD = "password"  # noqa: S105 (a key name)


def build_redis_deployment(stack: Stack) -> Manifest:
    redis = stack.spec.redis
    persistent = redis.persistence.enabled
    args = [
        "--port", str(c.REDIS_PORT),
        "--dir", "/data",
        "--save", "",
        "--appendonly", "yes" if persistent else "no",
        # Kubernetes expands $(REDIS_PASSWORD) from the container's env: the password stays in the Secret.
        "--requirepass", "$(REDIS_PASSWORD)",
        # Protected mode matters only without a password; the NetworkPolicy admits only the backends.
        "--protected-mode", "no",
    ]  # fmt: skip
    secret = stack.redis_secret_name
    container: Manifest = {
        "name": "redis",
        "image": redis.image,
        "command": ["redis-server"],
        "args": args,
        "ports": [{"name": "redis", "containerPort": c.REDIS_PORT, "protocol": "TCP"}],
        "env": [
            parts.env_secret("REDIS_PASSWORD", secret, SECRET_REDIS_PASSWORD),
            # redis-cli (the readiness probe) authenticates with this one.
            parts.env_secret("REDISCLI_AUTH", secret, SECRET_REDIS_PASSWORD),
        ],
        "resources": parts.resources(redis.resources),
        "securityContext": parts.container_security(read_only_root=True),
        "volumeMounts": [parts.mount("data", "/data")],
        "readinessProbe": {
            "exec": {"command": ["redis-cli", "-p", str(c.REDIS_PORT), "ping"]},
            "periodSeconds": 10,
            "timeoutSeconds": 3,
        },
        "livenessProbe": {
            "tcpSocket": {"port": "redis"},
            "periodSeconds": 20,
            "timeoutSeconds": 3,
            "failureThreshold": 5,
        },
    }
    volume = parts.claim_volume("data", stack.redis_claim) if persistent else parts.empty_dir("data")
    pod = parts.pod_spec(
        stack, containers=[container], volumes=[volume], security=parts.pod_security(UID, GID)
    )
    return parts.deployment(stack, stack.redis_name, REDIS, replicas=1, pod=pod, recreate=persistent)


def build_redis_service(stack: Stack) -> Manifest:
    return parts.service(stack, stack.redis_name, REDIS, port=c.REDIS_PORT, port_name="redis")


def build_redis_claim(stack: Stack) -> Manifest:
    persistence = stack.spec.redis.persistence
    return parts.claim(
        stack,
        stack.redis_claim,
        REDIS,
        size=persistence.size,
        storage_class=persistence.storage_class_name,
    )
