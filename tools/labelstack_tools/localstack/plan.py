"""What ``labelstack up`` will run, decided from its options before anything starts. Pure,
but for :func:`check_weights`, which looks at the weight files.

Label Studio is started by :class:`~labelstack_tools.localstack.labelstudio.LabelStudioProcess`;
Redis and the two backends are described here as :class:`ServiceSpec` values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from labelstack_common import contract
from labelstack_common.contract import SAM_TEST_TYPE, Env, PredictorKind, SamModelType
from labelstack_common.errors import LabelStackError
from labelstack_tools.localstack import demo
from labelstack_tools.serving import backend_command

HOST = "127.0.0.1"


class PlanError(LabelStackError, ValueError):
    """The options cannot make a stack; the message says what to change."""


@dataclass(frozen=True)
class Ports:
    label_studio: int = 8080
    segmentation: int = 9090
    sam: int = 9091
    redis: int = 6380  # not 6379: a system Redis often holds that one
    postgres: int = 5433  # not 5432: a system PostgreSQL often holds that one


@dataclass(frozen=True)
class StackOptions:
    data_dir: Path
    ports: Ports = Ports()
    seg_weights: Path | None = None
    sam_checkpoint: Path | None = None
    sam_model_type: str | None = None
    sam: bool = True
    redis: bool = True
    cpu: bool = False
    demo: bool = False  # random weights for what has none; fetch no default weights
    postgres: bool = False  # Label Studio on a local PostgreSQL instead of SQLite

    @property
    def seg_demo(self) -> bool:
        return self.seg_weights is None

    @property
    def sam_demo(self) -> bool:
        return self.sam and self.sam_checkpoint is None


@dataclass(frozen=True)
class Layout:
    """Where everything lives in the data dir."""

    root: Path

    @property
    def label_studio(self) -> Path:
        return self.root / "label-studio"

    @property
    def files(self) -> Path:
        """Label Studio's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT."""
        return self.root / "files"

    @property
    def samples(self) -> Path:
        return self.files / "samples"

    @property
    def postgres(self) -> Path:
        """The PostgreSQL cluster of ``up --postgres``."""
        return self.root / "postgres"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        """Scratch for running processes, emptied on every start."""
        return self.root / "run"

    def models(self, backend: str) -> Path:
        return self.root / "models" / backend


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    title: str
    argv: tuple[str, ...]
    port: int
    log: Path
    url: str
    env: Mapping[str, str] = field(default_factory=dict)  # always set
    defaults: Mapping[str, str] = field(default_factory=dict)  # set unless the environment has them

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        return {**self.defaults, **base, **self.env}


def sam_model_type_for(checkpoint: Path) -> str | None:
    """The SAM type a checkpoint's usual file name names (sam_vit_h_4b8939.pth -> vit_h)."""
    return contract.sam_model_type_for(checkpoint.name)


def sam_model_type(opts: StackOptions) -> str:
    if opts.sam_model_type:
        return opts.sam_model_type
    if opts.sam_checkpoint is None:
        return SAM_TEST_TYPE  # random weights either way: the smallest encodes in milliseconds on a CPU
    kind = sam_model_type_for(opts.sam_checkpoint)
    if kind is None:
        raise PlanError(
            f"cannot tell the SAM model type from {opts.sam_checkpoint.name}; "
            "pass --sam-model-type " + "|".join(SamModelType)
        )
    return kind


def port_claims(opts: StackOptions, redis: bool) -> list[tuple[int, str, str]]:
    """(port, what, the option that moves it) for every port the stack will listen on."""
    claims = [
        (opts.ports.label_studio, "Label Studio", "--port"),
        (opts.ports.segmentation, "the segmentation backend", "--seg-port"),
    ]
    if opts.sam:
        claims.append((opts.ports.sam, "the SAM backend", "--sam-port"))
    if redis:
        claims.append((opts.ports.redis, "Redis", "--redis-port"))
    if opts.postgres:
        claims.append((opts.ports.postgres, "PostgreSQL", "--postgres-port"))
    seen: dict[int, str] = {}
    for port, what, _ in claims:
        if not 0 < port < 65536:
            raise PlanError(f"port {port} for {what} is not a TCP port")
        if port in seen:
            raise PlanError(f"{seen[port]} and {what} are both given port {port}; give each its own")
        seen[port] = what
    return claims


def check_weights(opts: StackOptions) -> None:
    """A weight file the options name must exist: say which and how to fix it, before starting."""
    for path, flag, env in (
        (opts.seg_weights, "--seg-weights", Env.SEG_WEIGHTS),
        (opts.sam_checkpoint if opts.sam else None, "--sam-checkpoint", Env.SAM_CHECKPOINT),
    ):
        if path is not None and not path.is_file():
            raise PlanError(
                f"{flag} {path}: no such file. Point {flag} (or {env}) at the weights file, "
                f"or leave it out to run the demo with random weights"
            )


def redis_spec(opts: StackOptions, layout: Layout, binary: str) -> ServiceSpec:
    port = opts.ports.redis
    return ServiceSpec(
        name="redis",
        title="Redis",
        # Not daemonized: it stays our child, stopped by PID. Nothing is persisted: it only coordinates.
        argv=(
            binary,
            "--port",
            str(port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(layout.run),
        ),
        port=port,
        log=layout.logs / "redis.log",
        url=f"redis://{HOST}:{port}/0",
    )


def backend_spec(
    kind: str,
    opts: StackOptions,
    layout: Layout,
    *,
    label_studio_url: str,
    token: str,
    redis_url: str | None,
) -> ServiceSpec:
    """The segmentation (``kind="segmentation"``) or SAM (``"sam"``) backend under gunicorn."""
    port = opts.ports.segmentation if kind == PredictorKind.SEGMENTATION else opts.ports.sam
    env = {
        Env.PREDICTOR: kind,
        Env.HOST: HOST,
        Env.PORT: str(port),
        Env.MODEL_DIR: str(layout.models(kind)),
        Env.LABEL_STUDIO_URL: label_studio_url,
        Env.LABEL_STUDIO_API_KEY: token,
        # Tasks may name the stack's own files folder by path, nothing else on the laptop.
        Env.LOCAL_ROOTS: str(layout.files),
        Env.PROMETHEUS_MULTIPROC_DIR: str(layout.run / f"metrics-{kind}"),
        # Nothing downloads at run time: weights come from paths, or the demo's random ones.
        Env.YOLO_OFFLINE: "1",
        Env.YOLO_CONFIG_DIR: str(layout.root / "ultralytics"),
        "PYTHONUNBUFFERED": "1",
        Env.REDIS_URL: redis_url or "",
        Env.REDIS_PREFIX: f"labelstack:local:{kind}",
        Env.GUNICORN_GRACEFUL_TIMEOUT: "5",
    }
    defaults: dict[str, str] = {}
    if opts.cpu:
        env.update({Env.DEVICE: "cpu", Env.TRAIN_DEVICE: "cpu", "CUDA_VISIBLE_DEVICES": ""})
    if kind == PredictorKind.SEGMENTATION:
        title = "segmentation backend"
        if opts.seg_weights is not None:
            env[Env.SEG_WEIGHTS] = str(opts.seg_weights)
            env[Env.DEMO_MODEL] = "0"
        else:
            env[Env.DEMO_MODEL] = "1"
            env[Env.SEG_WEIGHTS] = ""
            defaults.update(demo.DEMO_SEGMENTATION_ENV)
            defaults.update(demo.CPU_TRAINING_ENV)
        if opts.cpu:
            defaults.update(demo.CPU_TRAINING_ENV)
    else:
        title = "SAM backend"
        env[Env.SAM_MODEL_TYPE] = sam_model_type(opts)
        env[Env.SAM_CHECKPOINT] = str(opts.sam_checkpoint or "")
        env[Env.DEMO_MODEL] = "1" if opts.sam_checkpoint is None else "0"
    return ServiceSpec(
        name=kind,
        title=title,
        argv=tuple(backend_command()),
        port=port,
        log=layout.logs / f"{kind}.log",
        url=f"http://{HOST}:{port}",
        env=env,
        defaults=defaults,
    )
