"""The LabelingStack spec: one pydantic model, validated once at the edge.

The CRD's OpenAPI schema is generated from these classes (see :mod:`crd`), so
the API server refuses what it can (types, enums, ranges, patterns) and
:func:`parse_spec` catches the rest (cross-field rules) before anything is
rendered. Field names are camelCase on the wire, snake_case in Python.

Plain passwords never appear here: Label Studio's admin lives in a Secret that
the spec only references, and the operator generates it (and Redis's password)
when it is absent.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

from labelstack_common import ssrf
from labelstack_common.contract import PredictorKind, PromotePolicy, Runtime, SamModelType
from labelstack_common.errors import LabelStackError
from labelstack_operator import defaults
from labelstack_operator.quantities import QUANTITY, quantity

DEFAULT_ADMIN_USERNAME = "admin@labelstack.local"

# Children are named "<stack>-<part>"; Services must be DNS-1035 labels of at most 63 characters.
DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
MAX_STACK_NAME = 30
MAX_BACKEND_NAME = 20
# A backend's objects are "<stack>-<backend>", like Label Studio's and Redis's.
RESERVED_BACKEND_NAMES = frozenset({"label-studio", "redis"})

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
CIDR = r"^[0-9a-fA-F.:]+/[0-9]{1,3}$"
GCS_BUCKET = r"^[a-z0-9][-_.a-z0-9]{1,220}[a-z0-9]$"

# The per-pod gauge the backend exports for autoscaling: requests in progress.
INFLIGHT_METRIC = "labelstack_inflight_requests"
DEFAULT_TARGET_CPU = 70
# What Redis needs beside the SAM caches: coordination keys, its own overhead, fragmentation.
REDIS_HEADROOM = "64Mi"


def _quantity(value: object) -> str:
    # Kubernetes accepts integers or strings for quantities ("2", 2, "500m", "1Gi").
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (like 500m, 2 or 4Gi)")
    text = str(value)
    if not QUANTITY.match(text):
        raise ValueError(f"{text!r} is not a Kubernetes quantity (like 500m, 2 or 4Gi)")
    return text


Quantity = Annotated[
    str,
    BeforeValidator(_quantity),
    WithJsonSchema({"x-kubernetes-int-or-string": True}),
]


class SpecError(LabelStackError, ValueError):
    """The spec cannot be rendered; ``str()`` is a message fit for a status condition."""


class _Model(BaseModel):
    # frozen: a parsed spec is a value; extra=forbid: a typo is an error, not a silent default.
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )


class ResourceRequirements(_Model):
    """CPU, memory and extended resources, as in a container's resources."""

    requests: dict[str, Quantity] = Field(default_factory=dict)
    limits: dict[str, Quantity] = Field(default_factory=dict)


def _resolved(value: Callable[[], Any]) -> Any:
    """A default the operator resolves at every parse (defaults.py), left out of the CRD."""
    return Field(default_factory=value, json_schema_extra={defaults.RESOLVED: True})


def _resources(value: Callable[[], Mapping[str, Mapping[str, str]]]) -> Any:
    return _resolved(lambda: ResourceRequirements.model_validate(value()))


class Toleration(_Model):
    """A pod toleration (for tainted GPU nodes, for example)."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class KeySelector(_Model):
    name: str = Field(min_length=1)
    key: str = Field(min_length=1)
    optional: bool | None = None


class FieldSelector(_Model):
    field_path: str = Field(min_length=1)
    api_version: str | None = None


class EnvVarSource(_Model):
    """Where an environment variable's value comes from (exactly one)."""

    secret_key_ref: KeySelector | None = None
    config_map_key_ref: KeySelector | None = None
    field_ref: FieldSelector | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if sum(x is not None for x in (self.secret_key_ref, self.config_map_key_ref, self.field_ref)) != 1:
            raise ValueError("valueFrom needs exactly one of secretKeyRef, configMapKeyRef, fieldRef")
        return self


class EnvVar(_Model):
    """An extra environment variable: a literal value or a valueFrom reference."""

    name: str = Field(pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
    value: str | None = None
    value_from: EnvVarSource | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.value is not None and self.value_from is not None:
            raise ValueError(f"env {self.name}: set value or valueFrom, not both")
        return self


class VolumeClaim(_Model):
    """A PersistentVolumeClaim the operator creates."""

    size: Quantity = "10Gi"
    """Requested capacity."""
    storage_class_name: str | None = None
    """Storage class; the cluster's default class when empty."""


class MediaClaim(VolumeClaim):
    """The PVC for Label Studio's media (uploads, exports; and the database with SQLite)."""

    access_mode: Literal["ReadWriteOnce", "ReadWriteMany"] = "ReadWriteOnce"
    """ReadWriteMany lets several Label Studio replicas share uploads (required for replicas > 1)."""


class PasswordSecret(_Model):
    name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253)
    """Secret name, in the namespace of the stack."""
    key: str = "password"
    """Key holding the password."""


class EmbeddedDatabase(_Model):
    """A PostgreSQL the operator runs for Label Studio (one pod, its own PVC and generated password)."""

    image: str = _resolved(lambda: defaults.POSTGRES_IMAGE)
    """PostgreSQL image (the official one: runs as uid 999); empty: the operator's."""
    resources: ResourceRequirements = _resources(lambda: defaults.POSTGRES_RESOURCES)
    """Requests and limits of the PostgreSQL container; empty: the operator's."""
    storage: VolumeClaim = Field(default_factory=VolumeClaim)
    """The PVC holding the database."""


class ExternalDatabase(_Model):
    """A PostgreSQL you run (a managed one, say)."""

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=5432, ge=1, le=65535)
    name: str = Field(default="labelstudio", min_length=1)
    """Database name."""
    user: str = Field(default="labelstudio", min_length=1)
    password_secret: PasswordSecret
    """The user's password."""


class Database(_Model):
    """Label Studio's database."""

    type: Literal["embedded", "external", "sqlite"] = "embedded"
    """embedded: a PostgreSQL the operator runs; external: yours; sqlite: a file on the media PVC (one
    replica only; small setups)."""
    embedded: EmbeddedDatabase = Field(default_factory=EmbeddedDatabase)
    external: ExternalDatabase | None = None
    """Where the external database is (type external)."""

    @model_validator(mode="after")
    def _external(self) -> Self:
        if self.type == "external" and self.external is None:
            raise ValueError("labelStudio.database.type external needs labelStudio.database.external")
        return self


class AdminSecret(_Model):
    """The Secret holding Label Studio's admin (keys username, password, token)."""

    name: str | None = Field(default=None, pattern=DNS_SUBDOMAIN, max_length=253)
    """Secret name; default <stack>-label-studio-admin. Generated when absent, never overwritten."""
    username: str = DEFAULT_ADMIN_USERNAME
    """Admin e-mail used only when the operator generates the Secret."""


# What Label Studio's sign-up form takes as an e-mail, roughly; it has the last word.
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class UsersSecret(_Model):
    """A Secret listing the team's e-mails, one a line (or separated by commas or spaces)."""

    name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253)
    """Secret name, in the namespace of the stack."""
    key: str = "emails"
    """Key holding the e-mails."""


class Egress(_Model):
    """Where Label Studio may connect: an egress NetworkPolicy beside its own SSRF guard."""

    enabled: bool = True
    """Render the policy: the stack's backends, DNS, and public addresses only."""
    private_cidrs: list[Annotated[str, Field(pattern=CIDR)]] = Field(
        default_factory=lambda: list(ssrf.CLUSTER_PRIVATE_CIDRS), max_length=32
    )
    """Ranges holding pods and Services: closed to Label Studio (but for the stack's own pods), and let
    through its SSRF guard so that it reaches the backends' ClusterIPs."""
    allow_cidrs: list[Annotated[str, Field(pattern=CIDR)]] = Field(default_factory=list, max_length=32)
    """More destinations inside those ranges (an external database, a storage proxy)."""

    @model_validator(mode="after")
    def _networks(self) -> Self:
        for cidr in (*self.private_cidrs, *self.allow_cidrs):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"labelStudio.egress: {cidr!r} is not a CIDR (like 10.0.0.0/8)") from None
        return self


class LabelStudio(_Model):
    """The Label Studio UI and API server."""

    image: str = _resolved(lambda: defaults.LABEL_STUDIO_IMAGE)
    """Label Studio image (1.23 is the version LabelStack is tested with); empty: the operator's."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """The Kubernetes default when empty."""
    resources: ResourceRequirements = _resources(lambda: defaults.LABEL_STUDIO_RESOURCES)
    """Requests and limits of the Label Studio container; empty: the operator's."""
    storage: MediaClaim = Field(default_factory=MediaClaim)
    """The PVC mounted at /label-studio/data (uploads, exports; the database with sqlite)."""
    database: Database = Field(default_factory=Database)
    """Label Studio's database: PostgreSQL (embedded or external) or SQLite."""
    replicas: int = Field(default=1, ge=1, le=16)
    """Label Studio pods; more than one needs PostgreSQL and a ReadWriteMany media volume."""
    admin_secret: AdminSecret = Field(default_factory=AdminSecret)
    env: list[EnvVar] = Field(default_factory=list, max_length=64)
    """Extra environment (a PostgreSQL database, for example)."""
    users: list[Annotated[str, Field(pattern=EMAIL, max_length=254)]] = Field(
        default_factory=list, max_length=500
    )
    """The team's e-mails: each gets an account once, its generated password kept in the Secret
    <stack>-user-<digest> (annotated with the e-mail); an existing account is left alone."""
    users_secret: UsersSecret | None = None
    """More e-mails, from a Secret (a list that should not sit in the spec)."""
    egress: Egress = Field(default_factory=Egress)
    """Label Studio's egress NetworkPolicy."""
    signup: Literal["invite", "open"] = "invite"
    """invite: only the organisation's invite link signs people up (LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK);
    open: anyone who reaches Label Studio can sign up and see every project."""

    @model_validator(mode="after")
    def _replicas(self) -> Self:
        if self.replicas > 1 and self.database.type == "sqlite":
            raise ValueError(
                f"labelStudio.replicas {self.replicas} needs PostgreSQL (database.type embedded or "
                "external): SQLite is one file that one pod may write"
            )
        if self.replicas > 1 and self.storage.access_mode == "ReadWriteOnce":
            raise ValueError(
                f"labelStudio.replicas {self.replicas} needs labelStudio.storage.accessMode ReadWriteMany: "
                "a ReadWriteOnce volume holding the uploads attaches to one node only"
            )
        return self

    @property
    def postgres(self) -> bool:
        return self.database.type != "sqlite"


class SecretKey(_Model):
    name: str = Field(min_length=1)
    """Secret name, in the namespace of the stack."""
    key: str = "credentials.json"
    """Key holding the service-account JSON."""


class RedisPersistence(_Model):
    enabled: bool = False
    """Keep Redis data on a PVC (append-only file); off: an emptyDir."""
    size: Quantity = "1Gi"
    """Requested capacity of the Redis PVC."""
    storage_class_name: str | None = None
    """Storage class; the default class of the cluster when empty."""


class SharedCache(_Model):
    """SAM image embeddings kept in Redis, so that any replica answers a click on an image another encoded."""

    size: Quantity = _resolved(lambda: defaults.SHARED_CACHE_SIZE)
    """Bytes of embeddings each SAM backend may keep in Redis (LABELSTACK_SAM_REDIS_BYTES); 0 turns it off;
    empty: the operator's."""
    ttl_seconds: int = Field(default=86400, ge=60)
    """How long an embedding stays cached (LABELSTACK_SAM_REDIS_TTL)."""

    @model_validator(mode="after")
    def _size(self) -> Self:
        if (quantity(self.size) or 0) < 0:
            raise ValueError(f"redis.sharedCache.size {self.size} is negative (0 turns the cache off)")
        return self


class Redis(_Model):
    """Redis shared by the backends (training coordination, caches)."""

    enabled: bool = True
    """Run a Redis for the backends (REDIS_URL)."""
    image: str = _resolved(lambda: defaults.REDIS_IMAGE)
    """Redis image; empty: the operator's."""
    resources: ResourceRequirements = _resources(lambda: defaults.REDIS_RESOURCES)
    """Requests and limits of the Redis container (sized for sharedCache.size per SAM backend); empty: the
    operator's."""
    persistence: RedisPersistence = Field(default_factory=RedisPersistence)
    """Where Redis keeps its data."""
    shared_cache: SharedCache = Field(default_factory=SharedCache)
    """The SAM backends' image embeddings in Redis, shared by their replicas."""


# The backend's own names for what it serves (labelstack_common.contract).
BackendType = PredictorKind


class Weights(_Model):
    """Where the model weights come from: a file on a PVC, a path in the image, or demo weights."""

    claim_name: str | None = Field(default=None, pattern=DNS_LABEL)
    """A PVC holding the weights, mounted read-only at /weights."""
    path: str | None = Field(default=None, min_length=1)
    """The weights file: relative to the PVC when claimName is set, else an absolute path in the image."""
    demo: bool = False
    """Random weights for a demo; predictions are meaningless."""

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.demo == (self.path is not None):
            raise ValueError("weights: set either path (with or without claimName) or demo: true")
        if self.claim_name and self.path and (self.path.startswith("/") or ".." in self.path.split("/")):
            raise ValueError("weights.path must be relative to the PVC (no leading / or ..) with claimName")
        if not self.claim_name and self.path and not self.path.startswith("/"):
            raise ValueError("weights.path must be absolute when the weights are baked into the image")
        if self.claim_name and not self.path:
            raise ValueError("weights.claimName needs weights.path (the file inside the PVC)")
        return self


class ModelStore(_Model):
    """A GCS bucket the replicas of a segmentation backend share fine-tuned models through."""

    bucket: str = Field(pattern=GCS_BUCKET)
    """Bucket name."""
    prefix: str = ""
    """Object-name prefix (a folder); give each backend its own."""
    credentials_secret: SecretKey | None = None
    """Service-account JSON, mounted read-only; empty: the pod's workload identity."""

    @property
    def url(self) -> str:
        prefix = self.prefix.strip("/")
        return f"gs://{self.bucket}/{prefix}" if prefix else f"gs://{self.bucket}"


class ModelStorage(_Model):
    """Where fine-tuned models survive restarts (segmentation only): a PVC behind MODEL_DIR, or GCS."""

    enabled: bool = True
    """Keep fine-tuned models on a PVC; off: an emptyDir (lost on restart). Ignored with gcs."""
    size: Quantity = "5Gi"
    """Requested capacity."""
    storage_class_name: str | None = None
    """Storage class; the default class of the cluster when empty."""
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany"] = "ReadWriteOnce"
    """ReadWriteMany lets several replicas share fine-tuned models."""
    gcs: ModelStore | None = None
    """Keep fine-tuned models in GCS (LABELSTACK_MODEL_STORE); MODEL_DIR is then a local mirror, no PVC."""


class PodsMetric(_Model):
    """A per-pod custom metric, served by a custom-metrics adapter (prometheus-adapter, say)."""

    name: str = Field(default=INFLIGHT_METRIC, min_length=1)
    """Metric name; the backend exports labelstack_inflight_requests (requests in progress)."""
    target_average_value: Quantity
    """Average per pod the autoscaler keeps the metric at (e.g. 2 requests in progress)."""

    @model_validator(mode="after")
    def _target(self) -> Self:
        if (quantity(self.target_average_value) or 0) <= 0:
            raise ValueError(
                f"autoscaling.podsMetric.targetAverageValue {self.target_average_value} must be positive"
            )
        return self


class Autoscaling(_Model):
    """A HorizontalPodAutoscaler for the backend's Deployment (it then owns the replica count)."""

    enabled: bool = False
    """Scale between minReplicas and maxReplicas; replicas is then ignored."""
    min_replicas: int = Field(default=1, ge=1)
    """Fewest pods."""
    max_replicas: int = Field(default=4, ge=1, le=64)
    """Most pods."""
    # Spelt as in the HorizontalPodAutoscaler's own (v1) field, not as to_camel would.
    target_cpu_utilization_percentage: int | None = Field(
        default=None, ge=1, le=100, alias="targetCPUUtilizationPercentage"
    )
    """Average CPU use to keep, in percent of the CPU request; 70 when no podsMetric is given."""
    pods_metric: PodsMetric | None = None
    """Scale on a per-pod metric (needs a custom-metrics adapter); on it alone unless a CPU target is set."""

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"autoscaling.minReplicas ({self.min_replicas}) must not exceed "
                f"autoscaling.maxReplicas ({self.max_replicas})"
            )
        return self

    @property
    def cpu_target(self) -> int | None:
        """The CPU utilisation to target, or None to scale on the pods metric alone."""
        if self.target_cpu_utilization_percentage is not None:
            return self.target_cpu_utilization_percentage
        return None if self.pods_metric else DEFAULT_TARGET_CPU


class DisruptionBudget(_Model):
    enabled: bool = True
    """A PodDisruptionBudget (maxUnavailable: 1) whenever the backend can have more than one pod."""


class Backend(_Model):
    """One ML backend (the same image serves both predictors)."""

    name: str = Field(pattern=DNS_LABEL, max_length=MAX_BACKEND_NAME)
    """Names the Deployment and Service <stack>-<name>, and the backend in Label Studio."""
    type: BackendType
    """segmentation: YOLOv8-seg pre-labelling and fine-tuning; sam: interactive Segment Anything."""
    weights: Weights
    """Where the model weights come from."""
    image: str = _resolved(lambda: defaults.BACKEND_IMAGE)
    """Backend image (one image serves both predictors); empty: the operator's."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """The Kubernetes default when empty."""
    replicas: int = Field(default=1, ge=0, le=64)
    """Pods behind the backend Service (ignored while autoscaling is enabled)."""
    sam_model_type: SamModelType = SamModelType.VIT_B
    """SAM variant matching the checkpoint (type sam only)."""
    runtime: Runtime = Runtime.AUTO
    """What runs the models (LABELSTACK_RUNTIME); auto: exported runtimes on CPU, torch on a GPU."""
    gpu: int = Field(default=0, ge=0, le=16)
    """nvidia.com/gpu per pod; 0 runs on CPU."""
    resources: ResourceRequirements = _resources(lambda: defaults.BACKEND_RESOURCES)
    """Requests and limits of the backend container (the GPU is added from gpu); empty: the operator's."""
    shm_size: Quantity = _resolved(lambda: defaults.SHM_SIZE)
    """Size limit of the in-memory /dev/shm (PyTorch data loaders need more than the default 64Mi);
    empty: the operator's."""
    node_selector: dict[str, str] = Field(default_factory=dict)
    """Node labels the pods must match (a GPU node pool, say)."""
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)
    """Tolerations; gpu > 0 adds one for the nvidia.com/gpu taint."""
    env: list[EnvVar] = Field(default_factory=list, max_length=64)
    """Extra environment (LABELSTACK_TRAIN_EVERY, WORKERS...); replaces ours by name."""
    score_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """Minimum confidence of a predicted region (LABELSTACK_SCORE_THRESHOLD)."""
    promote: PromotePolicy | None = None
    """Whether a newly trained version serves (type segmentation only; LABELSTACK_PROMOTE):
    if-better (it scores higher on the held-out split), always, or manual (labelstack model
    promote); empty: the backend's default, if-better."""
    model_storage: ModelStorage = Field(default_factory=ModelStorage)
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    """A HorizontalPodAutoscaler on CPU and/or a per-pod metric."""
    disruption_budget: DisruptionBudget = Field(default_factory=DisruptionBudget)
    """Keep all but one pod through voluntary disruptions (node drains, upgrades)."""

    @model_validator(mode="after")
    def _promote_trains(self) -> Self:
        if self.promote is not None and self.type is not BackendType.SEGMENTATION:
            raise ValueError(f"backend {self.name}: promote applies to segmentation backends, which train")
        return self

    @model_validator(mode="after")
    def _scale_out(self) -> Self:
        if self.max_pods > 1 and self.models_claim and self.model_storage.access_mode == "ReadWriteOnce":
            pods = f"up to {self.max_pods}" if self.autoscaling.enabled else str(self.max_pods)
            raise ValueError(
                f"backend {self.name}: {pods} replicas cannot share a ReadWriteOnce volume: "
                "set modelStorage.accessMode: ReadWriteMany or modelStorage.gcs"
            )
        if self.autoscaling.enabled and self.autoscaling.cpu_target and "cpu" not in self.resources.requests:
            # The HPA measures CPU utilisation against the request.
            raise ValueError(
                f"backend {self.name}: autoscaling on CPU needs resources.requests.cpu "
                "(or a podsMetric without targetCPUUtilizationPercentage)"
            )
        return self

    @property
    def interactive(self) -> bool:
        """SAM answers clicks: Label Studio registers it as an interactive backend."""
        return self.type is BackendType.SAM

    @property
    def model_store(self) -> ModelStore | None:
        """The GCS store of a segmentation backend's fine-tuned models, if any."""
        return self.model_storage.gcs if self.type is BackendType.SEGMENTATION else None

    @property
    def models_claim(self) -> bool:
        """MODEL_DIR is a PVC (segmentation, storage enabled, no GCS store)."""
        return (
            self.type is BackendType.SEGMENTATION and self.model_storage.enabled and self.model_store is None
        )

    @property
    def max_pods(self) -> int:
        return self.autoscaling.max_replicas if self.autoscaling.enabled else self.replicas

    @property
    def disruption_budget_wanted(self) -> bool:
        return self.disruption_budget.enabled and self.max_pods > 1


class Ingress(_Model):
    """The one ingress, to Label Studio (backends stay inside the cluster)."""

    enabled: bool = False
    """Expose Label Studio through an Ingress."""
    host: str | None = Field(default=None, pattern=r"^(\*\.)?" + DNS_SUBDOMAIN[1:], max_length=253)
    """Public host name; also sets LABEL_STUDIO_HOST."""
    class_name: str | None = None
    """IngressClass; the cluster default when empty."""
    tls_secret_name: str | None = None
    """TLS Secret for the host; https in LABEL_STUDIO_HOST when set."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Extra annotations (cert-manager, the body-size limit of another controller...)."""
    max_body_size: str = Field(default="200m", pattern=r"^[0-9]+[kKmMgG]?$")
    """Largest upload (ingress-nginx proxy-body-size syntax); images can be large."""


class GcsStorage(_Model):
    """A Google Cloud Storage bucket connected to a project."""

    bucket: str = Field(pattern=GCS_BUCKET)
    """Bucket name."""
    prefix: str = ""
    """Object-name prefix (a folder); empty: the whole bucket."""
    credentials_secret: SecretKey | None = None
    """Service-account JSON; empty: the pod's workload identity / application default credentials."""
    project_id: str | None = None
    """Google Cloud project; from the credentials when empty."""
    regex_filter: str | None = None
    """Import only matching object names (source only), e.g. .*\\.(jpe?g|png)$"""
    use_blob_urls: bool = True
    """Each object is one image task (source only)."""
    presign: bool = True
    """Serve images through presigned URLs (source only)."""
    sync_interval: str = Field(default="10m", pattern=r"^(0|[0-9]+[smh])$")
    """Sync the source this often (like 10m or 1h; 0: only when the stack changes), so that new objects
    become tasks without anyone pressing Sync (source only)."""

    @property
    def sync_seconds(self) -> int:
        if self.sync_interval == "0":
            return 0
        return int(self.sync_interval[:-1]) * {"s": 1, "m": 60, "h": 3600}[self.sync_interval[-1]]


class ProjectStorage(_Model):
    source: GcsStorage | None = None
    """Images to import as tasks."""
    target: GcsStorage | None = None
    """Where annotations are exported."""


class Project(_Model):
    """A Label Studio project to create and connect to backends."""

    title: str = Field(min_length=3, max_length=50)
    """Project title in Label Studio; the project is found by it."""
    label_config: str = Field(min_length=1)
    """Label Studio labelling config (XML)."""
    description: str = ""
    """Project description in Label Studio."""
    backends: list[str] = Field(default_factory=list, max_length=16)
    """Names of backends to connect; a SAM backend is connected as interactive."""
    retrieve_predictions_on_load: bool = True
    """Ask the backends for predictions when a task is opened."""
    gcs: ProjectStorage = Field(default_factory=ProjectStorage)
    """Cloud storage connected to the project."""


class ServiceMonitor(_Model):
    """A ServiceMonitor (Prometheus operator) for the backends' /metrics."""

    enabled: bool = False
    """Render it; where the monitoring.coreos.com CRD is missing, skipped (status.serviceMonitor says so)."""
    interval: str = Field(default="30s", pattern=r"^[0-9]+(ms|s|m|h)$")
    """How often Prometheus scrapes each backend pod."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels your Prometheus selects ServiceMonitors by (e.g. release: kube-prometheus-stack)."""


class Monitoring(_Model):
    """Scraping the backends' Prometheus metrics."""

    service_monitor: ServiceMonitor = Field(default_factory=ServiceMonitor)
    scraper_namespace: str | None = Field(default=None, pattern=DNS_LABEL, max_length=63)
    """The namespace Prometheus runs in: the backends' NetworkPolicy admits it to their port (which serves
    /metrics); Label Studio and Redis stay closed to it."""
    scraper_pod_labels: dict[str, str] = Field(default_factory=dict)
    """Narrow the admitted scraper to pods with these labels (in scraperNamespace)."""


class RetentionPolicy(_Model):
    """What happens to data-bearing children (PVCs, the generated Secrets) when the stack goes."""

    when_deleted: Literal["Retain", "Delete"] = "Retain"
    """Retain: PVCs and the generated admin and Redis Secrets outlive the stack; Delete: they go with it."""


class Backup(_Model):
    """Scheduled dumps of Label Studio's database to a PVC (pg_dump; SQLite's online backup)."""

    enabled: bool = False
    """Run the backup CronJob <stack>-backup."""
    schedule: str = Field(default="0 3 * * *", min_length=9)
    """When, in cron syntax (the cluster's time zone)."""
    keep: int = Field(default=7, ge=1, le=365)
    """How many dumps to keep; older ones are deleted after each success."""
    storage: VolumeClaim = Field(default_factory=VolumeClaim)
    """The PVC <stack>-backups the dumps go to."""


class LocalObjectReference(_Model):
    name: str = Field(min_length=1)
    """Secret name."""


class LabelingStackSpec(_Model):
    """A Label Studio with ML backends, wired together and exposed through one ingress."""

    label_studio: LabelStudio = Field(default_factory=LabelStudio)
    """Label Studio itself."""
    redis: Redis = Field(default_factory=Redis)
    """Redis for the backends."""
    backends: list[Backend] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """ML backends; names are unique."""
    ingress: Ingress = Field(default_factory=Ingress)
    """How users reach Label Studio."""
    projects: list[Project] = Field(
        default_factory=list,
        max_length=50,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["title"]},
    )
    """Projects to create and wire; titles are unique."""
    persistent_volume_claim_retention_policy: RetentionPolicy = Field(default_factory=RetentionPolicy)
    """What happens to data when the stack is deleted."""
    image_pull_secrets: list[LocalObjectReference] = Field(default_factory=list, max_length=8)
    """Pull secrets for every pod of the stack."""
    monitoring: Monitoring = Field(default_factory=Monitoring)
    """Prometheus: a ServiceMonitor, and the scraper's way through the NetworkPolicy."""
    backup: Backup = Field(default_factory=Backup)
    """Scheduled database dumps; the last success is in status.lastBackup."""

    @model_validator(mode="after")
    def _references(self) -> Self:
        names = [b.name for b in self.backends]
        reserved = sorted(set(names) & RESERVED_BACKEND_NAMES)
        if reserved:
            raise ValueError(f"backend names {', '.join(reserved)} are taken by the stack's own services")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"backend names must be unique: {', '.join(dupes)}")
        titles = [p.title for p in self.projects]
        if len(set(titles)) != len(titles):
            raise ValueError("project titles must be unique")
        for project in self.projects:
            unknown = sorted(set(project.backends) - set(names))
            if unknown:
                raise ValueError(f"project {project.title!r} names unknown backends: {', '.join(unknown)}")
        return self

    @model_validator(mode="after")
    def _own_model_stores(self) -> Self:
        stores = [b.model_store.url for b in self.backends if b.model_store is not None]
        shared = sorted({url for url in stores if stores.count(url) > 1})
        if shared:
            raise ValueError(
                f"backends must not share a model store (give each its own prefix): {', '.join(shared)}"
            )
        return self

    @model_validator(mode="after")
    def _sam_caches_fit_in_redis(self) -> Self:
        # Otherwise Redis is OOM-killed once the caches fill up.
        sams = sum(b.type is BackendType.SAM for b in self.backends)
        limit = quantity(self.redis.resources.limits.get("memory"))
        if not (self.redis.enabled and sams and limit is not None):
            return self
        cache = self.redis.shared_cache.size
        need = sams * (quantity(cache) or 0) + (quantity(REDIS_HEADROOM) or 0)
        if need > limit:
            raise ValueError(
                f"redis.sharedCache.size {cache} for {sams} SAM backend(s), plus {REDIS_HEADROOM} for "
                f"coordination, does not fit in redis.resources.limits.memory "
                f"{self.redis.resources.limits['memory']}: raise the limit or lower the size"
            )
        return self

    def backend(self, name: str) -> Backend:
        return next(b for b in self.backends if b.name == name)


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "spec"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def parse_spec(raw: Mapping[str, Any] | None) -> LabelingStackSpec:
    """Validate a spec as the API server stores it, with the operator's defaults filled in (also
    where an older CRD stored its own); raise :class:`SpecError` with a readable message."""
    try:
        return LabelingStackSpec.model_validate(defaults.without_stored_defaults(raw or {}))
    except ValidationError as err:
        raise SpecError(_describe(err)) from None


def check_stack_name(name: str) -> None:
    """Children are named after the stack, so its name must leave room for their suffixes."""
    if len(name) > MAX_STACK_NAME or not re.match(DNS_LABEL, name):
        raise SpecError(
            f"metadata.name {name!r} must be a DNS label of at most {MAX_STACK_NAME} characters "
            "(lowercase letters, digits, '-', starting with a letter)"
        )
