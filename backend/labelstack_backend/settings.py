"""One typed settings object per process, read from the environment once.

The variable names come from :class:`labelstack_common.contract.Env`, which the operator
renders from too; the README documents them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from labelstack_common.contract import Env, PredictorKind, PromotePolicy, Runtime, SegModel
from labelstack_common.errors import LabelStackError


class SettingsError(LabelStackError, ValueError):
    """The environment does not describe a runnable backend."""


def _env(name: str, *more: str) -> Any:
    return Field(validation_alias=AliasChoices(name, *more))


PositiveInt = Annotated[int, Field(gt=0)]


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    predictor: PredictorKind = Field(PredictorKind.SEGMENTATION, validation_alias=Env.PREDICTOR)
    log_level: str = Field("INFO", validation_alias=Env.LOG_LEVEL)

    # Label Studio, for image downloads and training data.
    label_studio_url: str = _env(Env.LABEL_STUDIO_URL, Env.LABEL_STUDIO_HOST)
    label_studio_api_key: str = _env(Env.LABEL_STUDIO_API_KEY, Env.LABEL_STUDIO_ACCESS_TOKEN)

    # Optional HTTP basic auth on every route but the health probe.
    basic_auth_user: str = Field("", validation_alias=Env.BASIC_AUTH_USER)
    basic_auth_pass: str = Field("", validation_alias=Env.BASIC_AUTH_PASS)

    # Models.
    model_dir: Path = Field(Path("./models"), validation_alias=Env.MODEL_DIR)
    device: str = Field("auto", validation_alias=Env.DEVICE)
    half: bool | None = Field(None, validation_alias=Env.HALF)  # None: fp16 on GPU only
    # torch|onnx|openvino|tensorrt|auto: what serves the segmentation model (an export of each
    # version, made in the background) and SAM's decoder; see docs/architecture.md.
    runtime: Runtime = Field(Runtime.AUTO, validation_alias=Env.RUNTIME)
    demo_model: bool = Field(False, validation_alias=Env.DEMO_MODEL)
    score_threshold: float = Field(0.25, ge=0.0, le=1.0, validation_alias=Env.SCORE_THRESHOLD)
    # At most this many objects per image (ultralytics' max_det); the demo keeps a random model's few.
    max_detections: PositiveInt = Field(300, validation_alias=Env.MAX_DETECTIONS)

    # Segmentation (ultralytics YOLOv8-seg; YOLOE-seg or SAM 3 for zero-shot pre-labels).
    seg_model: SegModel = Field(SegModel.YOLO, validation_alias=Env.SEG_MODEL)
    # The open-vocabulary model's text encoder (YOLOE: MobileCLIP's mobileclip_blt.ts); empty: that
    # name beside LABELSTACK_SEG_WEIGHTS.
    text_encoder: str = Field("", validation_alias=Env.TEXT_ENCODER)
    seg_weights: str = Field("", validation_alias=Env.SEG_WEIGHTS)
    seg_model_config: str = Field("yolov8n-seg.yaml", validation_alias=Env.SEG_MODEL_CONFIG)
    seg_default_weights: str = Field("yolov8n-seg.pt", validation_alias=Env.SEG_DEFAULT_WEIGHTS)
    batch_size: int = Field(0, ge=0, validation_alias=Env.BATCH_SIZE)  # 0: 32 on GPU, 4 on CPU
    imgsz: PositiveInt = Field(640, validation_alias=Env.IMGSZ)
    polygon_tolerance: float = Field(1.0, ge=0.0, validation_alias=Env.POLYGON_TOLERANCE)
    # Sliding-window inference for large images (off unless LABELSTACK_TILING=1).
    tiling: bool = Field(False, validation_alias=Env.TILING)
    tile_size: PositiveInt = Field(1024, validation_alias=Env.TILE_SIZE)
    tile_overlap: int = Field(150, ge=0, validation_alias=Env.TILE_OVERLAP)
    tile_min_size: int = Field(2048, ge=0, validation_alias=Env.TILE_MIN_SIZE)
    tile_full_pass: bool = Field(True, validation_alias=Env.TILE_FULL_PASS)

    # Interactive Segment Anything.
    # vit_h|vit_l|vit_b|mobile_sam|sam2[.1]_{t,s,b,l}|tiny (tiny: tests and CPU demos); empty: from the
    # checkpoint's file name, else vit_b.
    sam_model_type: str = Field("", validation_alias=Env.SAM_MODEL_TYPE)
    sam_checkpoint: str = Field("", validation_alias=Env.SAM_CHECKPOINT)
    sam_cache_bytes: int = Field(2 * 1024**3, ge=0, validation_alias=Env.SAM_CACHE_BYTES)
    sam_bf16: bool | None = Field(None, validation_alias=Env.SAM_BF16)  # None: on for CUDA
    # Return each mask as a polygon too, on every <PolygonLabels> (as if each had sam_polygon="true").
    sam_polygon: bool = Field(False, validation_alias=Env.SAM_POLYGON)
    # CPU threads for one click's mask decoding (0: torch's default, every core); see docs/sam.md.
    sam_decoder_threads: int = Field(1, ge=0, validation_alias=Env.SAM_DECODER_THREADS)

    # Images.
    image_max_pixels: PositiveInt = Field(40_000_000, validation_alias=Env.IMAGE_MAX_PIXELS)
    image_max_bytes: PositiveInt = Field(100 * 1024 * 1024, validation_alias=Env.IMAGE_MAX_BYTES)
    image_timeout: float = Field(15.0, gt=0, validation_alias=Env.IMAGE_TIMEOUT)
    image_cache_dir: Path | None = Field(None, validation_alias=Env.IMAGE_CACHE_DIR)
    image_cache_bytes: int = Field(2 * 1024**3, ge=0, validation_alias=Env.IMAGE_CACHE_BYTES)
    # Folders whose files a task may name as a local path or file:// URL (os.pathsep- or
    # comma-separated); none: local paths are refused. /proc, /sys and /dev never are served.
    local_roots: tuple[Path, ...] = Field((), validation_alias=Env.LOCAL_ROOTS)

    # Request bounds (docs/operations.md, "Limits"): what one request may ask and how long it may take.
    max_tasks_per_request: PositiveInt = Field(256, validation_alias=Env.MAX_TASKS_PER_REQUEST)
    request_timeout: float = Field(90.0, gt=0, validation_alias=Env.REQUEST_TIMEOUT)
    # Work requests one worker runs at once; more get 503 + Retry-After. 0: THREADS - 2 (at least
    # 1), so two threads always remain for the probes and /metrics.
    max_concurrent_requests: int = Field(0, ge=0, validation_alias=Env.MAX_CONCURRENT_REQUESTS)
    # Image downloads one worker runs at once, over all its requests.
    max_downloads: PositiveInt = Field(16, validation_alias=Env.MAX_DOWNLOADS)

    # Fine-tuning.
    train_every: int = Field(0, ge=0, validation_alias=Env.TRAIN_EVERY)
    train_epochs: PositiveInt = Field(20, validation_alias=Env.TRAIN_EPOCHS)
    train_imgsz: PositiveInt = Field(640, validation_alias=Env.TRAIN_IMGSZ)
    train_batch: PositiveInt = Field(8, validation_alias=Env.TRAIN_BATCH)
    train_device: str = Field("auto", validation_alias=Env.TRAIN_DEVICE)
    train_timeout: float = Field(6 * 3600.0, gt=0, validation_alias=Env.TRAIN_TIMEOUT)
    train_extra: str = Field("", validation_alias=Env.TRAIN_EXTRA)  # JSON of ultralytics args
    # Validated versions: a held-out split of the finished annotations decides what serves.
    promote: PromotePolicy = Field(PromotePolicy.IF_BETTER, validation_alias=Env.PROMOTE)
    keep_versions: PositiveInt = Field(5, validation_alias=Env.KEEP_VERSIONS)
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0, validation_alias=Env.VAL_FRACTION)
    val_min: int = Field(2, ge=0, validation_alias=Env.VAL_MIN)

    # Scale-out (docs/scaling.md): Redis coordinates replicas; models on shared storage.
    redis_url: str = Field("", validation_alias=Env.REDIS_URL)
    redis_password: str = Field("", validation_alias=Env.REDIS_PASSWORD)
    # Keys of one backend's replicas; two backends sharing a Redis need different prefixes.
    redis_prefix: str = Field("labelstack", min_length=1, validation_alias=Env.REDIS_PREFIX)
    redis_timeout: float = Field(0.5, gt=0, validation_alias=Env.REDIS_TIMEOUT)
    # Where fine-tuned versions live: MODEL_DIR (a ReadWriteMany volume when scaled out) or gs://.
    model_store: str = Field("", validation_alias=Env.MODEL_STORE)
    # How often a replica re-reads the serving versions, for announcements it missed.
    version_poll_seconds: float = Field(10.0, gt=0, validation_alias=Env.VERSION_POLL_SECONDS)
    train_lock_ttl: float = Field(60.0, ge=1, validation_alias=Env.TRAIN_LOCK_TTL)
    # Bulk pre-labeling of a project after a version is promoted (off: on demand only).
    prelabel_on_promote: bool = Field(False, validation_alias=Env.PRELABEL_ON_PROMOTE)
    # SAM's shared embedding cache in Redis (0 turns it off).
    sam_redis_bytes: int = Field(256 * 1024**2, ge=0, validation_alias=Env.SAM_REDIS_BYTES)
    sam_redis_ttl: int = Field(86400, ge=1, validation_alias=Env.SAM_REDIS_TTL)

    @model_validator(mode="after")
    def _check_tiles(self) -> Settings:
        if self.tiling and self.tile_overlap >= self.tile_size:
            raise ValueError("LABELSTACK_TILE_OVERLAP must be smaller than LABELSTACK_TILE_SIZE")
        return self

    @field_validator("model_store")
    @classmethod
    def _model_store(cls, v: str) -> str:
        if v and not (v.startswith("gs://") and len(v) > len("gs://")):
            raise ValueError("LABELSTACK_MODEL_STORE must be gs://bucket[/prefix], or empty for MODEL_DIR")
        return v.rstrip("/")

    @field_validator("local_roots", mode="before")
    @classmethod
    def _split_roots(cls, v: Any) -> Any:
        if isinstance(v, str):
            return tuple(p for p in re.split(rf"[,{re.escape(os.pathsep)}]", v) if p.strip())
        return v

    @field_validator("local_roots")
    @classmethod
    def _resolve_roots(cls, v: tuple[Path, ...]) -> tuple[Path, ...]:
        return tuple(p.expanduser().resolve() for p in v)

    @field_validator("label_studio_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        return v.rstrip("/")

    @field_validator("log_level")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()

    @property
    def model_dir_resolved(self) -> Path:
        return self.model_dir.expanduser().resolve()

    def batch_for(self, device: str) -> int:
        """Images per forward pass. Big batches pay on a GPU; on a CPU they only add latency."""
        if self.batch_size:
            return self.batch_size
        return 4 if device == "cpu" else 32

    @property
    def image_cache_path(self) -> Path:
        return (self.image_cache_dir or self.model_dir_resolved / "cache" / "images").expanduser()

    def concurrent_requests(self, threads: int) -> int:
        """Work requests a worker with ``threads`` threads admits at once."""
        return self.max_concurrent_requests or max(1, threads - 2)

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        if self.basic_auth_user and self.basic_auth_pass:
            return (self.basic_auth_user, self.basic_auth_pass)
        return None

    @classmethod
    def env_names(cls) -> frozenset[str]:
        """Every environment variable a field reads (its name and any older aliases)."""
        names: set[str] = set()
        for info in cls.model_fields.values():
            alias = info.validation_alias
            if isinstance(alias, str):
                names.add(alias)
            elif isinstance(alias, AliasChoices):
                names.update(choice for choice in alias.choices if isinstance(choice, str))
        return frozenset(names)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = dict(os.environ if environ is None else environ)
        data: dict[str, Any] = {k: v for k, v in env.items() if v != ""}
        data.setdefault("LABEL_STUDIO_URL", "")
        data.setdefault("LABEL_STUDIO_API_KEY", "")
        data.update(overrides)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
            )
            raise SettingsError(f"invalid backend settings: {problems}") from None
