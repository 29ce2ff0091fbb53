"""One Deployment and Service per ML backend, plus the PVC that keeps fine-tuned models."""

from __future__ import annotations

from labelstack_common import contract
from labelstack_common.contract import Env, Runtime
from labelstack_operator import constants as c
from labelstack_operator.quantities import to_bytes
from labelstack_operator.render import parts
from labelstack_operator.render.context import BACKEND, Manifest, Stack
from labelstack_operator.render.labelstudio import SECRET_TOKEN
from labelstack_operator.render.redis import SECRET_REDIS_PASSWORD
from labelstack_operator.spec import Backend, BackendType

COMMAND = contract.command()
MODEL_DIR = "/models"
WEIGHTS_DIR = "/weights"
# Where the model store's service-account key is mounted (GOOGLE_APPLICATION_CREDENTIALS).
MODEL_STORE_CREDENTIALS_DIR = "/var/run/secrets/labelstack/model-store"
GPU_RESOURCE = "nvidia.com/gpu"
# The taint GPU node pools carry (GKE, and the NVIDIA operator's default).
GPU_TOLERATION: Manifest = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


TOKEN_ANNOTATION = "labelstack.dev/label-studio-token"  # noqa: S105 (an annotation key)


def get_weights_path(backend: Backend) -> str | None:
    weights = backend.weights
    if weights.demo or weights.path is None:
        return None
    if weights.claim_name:
        return f"{WEIGHTS_DIR}/{weights.path}"
    return weights.path


def get_backend_env(stack: Stack, backend: Backend) -> list[Manifest]:
    env = [
        parts.env_value(Env.PREDICTOR, backend.type.value),
        parts.env_value(Env.PORT, str(c.BACKEND_PORT)),
        parts.env_value(Env.LABEL_STUDIO_URL, stack.label_studio_internal_url),
        # The backends' own account, made by the operator once Label Studio answers (users.py).
        parts.env_secret(Env.LABEL_STUDIO_API_KEY, stack.backend_user_secret_name, SECRET_TOKEN),
        parts.env_value(Env.MODEL_DIR, MODEL_DIR),
        parts.env_value(Env.DEVICE, "cuda" if backend.gpu else "cpu"),
        # Writable places under the read-only root filesystem; no downloads at run time.
        parts.env_value(Env.YOLO_CONFIG_DIR, f"{parts.TMP}/ultralytics"),
        parts.env_value(Env.YOLO_OFFLINE, "1"),
        parts.env_value(Env.MPLCONFIGDIR, f"{parts.TMP}/matplotlib"),
    ]
    weights = get_weights_path(backend)
    if backend.weights.demo:
        env.append(parts.env_value(Env.DEMO_MODEL, "1"))
    if backend.type is BackendType.SAM:
        env.append(parts.env_value(Env.SAM_MODEL_TYPE, backend.sam_model_type.value))
        if weights:
            env.append(parts.env_value(Env.SAM_CHECKPOINT, weights))
    elif weights:
        env.append(parts.env_value(Env.SEG_WEIGHTS, weights))
    if backend.score_threshold is not None:
        env.append(parts.env_value(Env.SCORE_THRESHOLD, str(backend.score_threshold)))
    if backend.promote is not None:  # the backend's default (if-better) otherwise
        env.append(parts.env_value(Env.PROMOTE, backend.promote.value))
    if backend.runtime is not Runtime.AUTO:  # the backend's default otherwise
        env.append(parts.env_value(Env.RUNTIME, backend.runtime.value))
    env += get_redis_env(stack, backend) + get_model_store_env(backend)
    return parts.merge_env(env, backend.env)


def get_redis_env(stack: Stack, backend: Backend) -> list[Manifest]:
    """Redis, where the replicas of a backend coordinate (and SAM's replicas share embeddings)."""
    redis = stack.spec.redis
    if not redis.enabled:
        return []
    env = [
        parts.env_value(Env.REDIS_URL, stack.redis_url),
        parts.env_secret(Env.REDIS_PASSWORD, stack.redis_secret_name, SECRET_REDIS_PASSWORD),
        parts.env_value(Env.REDIS_PREFIX, stack.redis_prefix(backend)),
    ]
    if backend.type is BackendType.SAM:
        env += [
            parts.env_value(Env.SAM_REDIS_BYTES, str(to_bytes(redis.shared_cache.size))),
            parts.env_value(Env.SAM_REDIS_TTL, str(redis.shared_cache.ttl_seconds)),
        ]
    return env


def get_model_store_env(backend: Backend) -> list[Manifest]:
    store = backend.model_store
    if store is None:
        return []
    env = [parts.env_value(Env.MODEL_STORE, store.url)]
    if store.credentials_secret is not None:
        key = f"{MODEL_STORE_CREDENTIALS_DIR}/{store.credentials_secret.key}"
        env.append(parts.env_value(Env.GOOGLE_APPLICATION_CREDENTIALS, key))
    return env


def get_backend_volumes(stack: Stack, backend: Backend) -> tuple[list[Manifest], list[Manifest]]:
    """(volumes, mounts): scratch space, an in-memory /dev/shm, the model dir, the weights,
    the model store's credentials."""
    volumes = [
        parts.empty_dir("tmp"),
        parts.empty_dir("shm", medium="Memory", size=backend.shm_size),
        # With a GCS model store, MODEL_DIR is only a mirror of the bucket: an emptyDir will do.
        parts.claim_volume("models", stack.backend_claim(backend))
        if backend.models_claim
        else parts.empty_dir("models"),
    ]
    mounts = [parts.mount("tmp", parts.TMP), parts.mount("shm", parts.SHM), parts.mount("models", MODEL_DIR)]
    if backend.weights.claim_name:
        volumes.append(parts.claim_volume("weights", backend.weights.claim_name, read_only=True))
        mounts.append(parts.mount("weights", WEIGHTS_DIR, read_only=True))
    store = backend.model_store
    if store is not None and store.credentials_secret is not None:
        secret = store.credentials_secret
        volumes.append(parts.secret_volume("model-store", secret.name, secret.key))
        mounts.append(parts.mount("model-store", MODEL_STORE_CREDENTIALS_DIR, read_only=True))
    return volumes, mounts


def get_tolerations(backend: Backend) -> list[Manifest]:
    tolerations = [t.model_dump(by_alias=True, exclude_none=True) for t in backend.tolerations]
    if backend.gpu and not any(t.get("key") == GPU_RESOURCE for t in tolerations):
        tolerations.append(dict(GPU_TOLERATION))
    return tolerations


def build_backend_deployment(stack: Stack, backend: Backend) -> Manifest:
    volumes, mounts = get_backend_volumes(stack, backend)
    container: Manifest = {
        "name": "backend",
        "image": backend.image,
        "command": COMMAND,
        "ports": [{"name": "http", "containerPort": c.BACKEND_PORT, "protocol": "TCP"}],
        "env": get_backend_env(stack, backend),
        "resources": parts.resources(
            backend.resources, {GPU_RESOURCE: str(backend.gpu)} if backend.gpu else None
        ),
        "securityContext": parts.container_security(read_only_root=True),
        "volumeMounts": mounts,
        # /health is 503 until every worker has its model: loading big weights may take minutes.
        "startupProbe": parts.http_probe(contract.HEALTH_PATH, period=10, timeout=3, failures=60),
        "readinessProbe": parts.http_probe(contract.HEALTH_PATH, period=10, timeout=3, failures=3),
        # /livez is 503 only for a model that failed to load (restart and try again), not while
        # a crashed worker's replacement loads.
        "livenessProbe": parts.http_probe(contract.LIVENESS_PATH, period=30, timeout=5, failures=5),
    }
    if backend.image_pull_policy:
        container["imagePullPolicy"] = backend.image_pull_policy
    extra: Manifest = {"terminationGracePeriodSeconds": 60}
    if backend.node_selector:
        extra["nodeSelector"] = dict(backend.node_selector)
    tolerations = get_tolerations(backend)
    if tolerations:
        extra["tolerations"] = tolerations
    pod = parts.pod_spec(
        stack,
        containers=[container],
        volumes=volumes,
        security=parts.pod_security(contract.UID, contract.GID),
        extra=extra,
    )
    deployment = parts.deployment(
        stack,
        stack.backend_name(backend),
        BACKEND,
        # With autoscaling the HPA owns the count (docs/operations.md: enabling it resets it once).
        replicas=None if backend.autoscaling.enabled else backend.replicas,
        pod=pod,
        recreate=backend.models_claim and backend.model_storage.access_mode == "ReadWriteOnce",
        backend=backend,
    )
    if stack.backend_token_digest:
        # Environment from a Secret is read at start: a rotated token needs new pods.
        deployment["spec"]["template"]["metadata"]["annotations"] = {
            TOKEN_ANNOTATION: stack.backend_token_digest
        }
    return deployment


def build_backend_service(stack: Stack, backend: Backend) -> Manifest:
    return parts.service(
        stack, stack.backend_name(backend), BACKEND, port=c.BACKEND_PORT, port_name="http", backend=backend
    )


def build_backend_claim(stack: Stack, backend: Backend) -> Manifest:
    storage = backend.model_storage
    return parts.claim(
        stack,
        stack.backend_claim(backend),
        BACKEND,
        size=storage.size,
        storage_class=storage.storage_class_name,
        access_mode=storage.access_mode,
        backend=backend,
    )
