"""The backend process, as the operator and the local stack run it and the backend reads it.

One place for each name that crosses the wall between the planes: the command, the port, the
probe paths, the non-root user, the environment variables, the predictor kinds and the SAM
model types. The operator renders from here, ``labelstack_backend.settings.Settings`` reads
from here, and ``tests/unit/test_contract.py`` checks that every variable the operator renders
is one that the backend reads.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Final


class PredictorKind(StrEnum):
    """What one backend process serves (``LABELSTACK_PREDICTOR``)."""

    SEGMENTATION = "segmentation"
    SAM = "sam"


class SamModelType(StrEnum):
    """The Segment Anything variants a deployment can ask for (``LABELSTACK_SAM_MODEL_TYPE``)."""

    VIT_H = "vit_h"
    VIT_L = "vit_l"
    VIT_B = "vit_b"
    MOBILE_SAM = "mobile_sam"
    # SAM 2 and 2.1 (Hiera encoders: tiny, small, base+, large), built by ultralytics. 2.1 is
    # its own type because its checkpoints carry three more tensors than 2.0's.
    SAM2_T = "sam2_t"
    SAM2_S = "sam2_s"
    SAM2_B = "sam2_b"
    SAM2_L = "sam2_l"
    SAM2_1_T = "sam2.1_t"
    SAM2_1_S = "sam2.1_s"
    SAM2_1_B = "sam2.1_b"
    SAM2_1_L = "sam2.1_l"


class SegModel(StrEnum):
    """The model family of a segmentation backend (``LABELSTACK_SEG_MODEL``)."""

    YOLO = "yolo"  # YOLO-seg on COCO's classes (or a fine-tuned version's)
    YOLOE = "yoloe"  # open vocabulary: the project's label names are the classes
    SAM3 = "sam3"  # SAM 3 concept prompts, where its weights and the clip package are provided


class Runtime(StrEnum):
    """What runs the segmentation model and SAM's decoder (``LABELSTACK_RUNTIME``). ``auto``:
    ONNX Runtime (else OpenVINO) on CPU, torch on a GPU until TensorRT is proven there."""

    AUTO = "auto"
    TORCH = "torch"
    ONNX = "onnx"
    OPENVINO = "openvino"
    TENSORRT = "tensorrt"


class PromotePolicy(StrEnum):
    """Whether a newly trained version serves (``LABELSTACK_PROMOTE``): when it scores better
    than the serving one on the held-out split, always, or only when promoted by hand."""

    IF_BETTER = "if-better"
    ALWAYS = "always"
    MANUAL = "manual"


#: A few-layer random SAM for tests and CPU demos; the backend accepts it, the CR does not.
SAM_TEST_TYPE: Final = "tiny"
#: The original Segment Anything ViTs (segment-anything's registry), as against MobileSAM.
SAM_VIT_TYPES: Final = (SamModelType.VIT_H.value, SamModelType.VIT_L.value, SamModelType.VIT_B.value)
#: SAM 2 and 2.1, as against the original SAM's decoder.
SAM2_TYPES: Final = tuple(t.value for t in SamModelType if t.value.startswith("sam2"))
#: Every type the backend builds.
SAM_MODEL_TYPES: Final = (*(t.value for t in SamModelType), SAM_TEST_TYPE)

# Meta's release names (sam2.1_hiera_base_plus.pt) and ultralytics' (sam2.1_b.pt).
_SAM2_NAME = re.compile(r"sam2(\.1)?_(?:hiera_)?(tiny|small|base_plus|large|t|s|b|l)(?![a-z])")


def sam_model_type_for(filename: str) -> str | None:
    """The SAM type a checkpoint's usual file name names: sam_vit_h_4b8939.pth -> vit_h,
    sam2.1_hiera_tiny.pt -> sam2.1_t, sam2_b.pt -> sam2_b; None when it names none."""
    name = filename.lower()
    found = _SAM2_NAME.search(name)
    if found:
        return f"sam2{found.group(1) or ''}_{found.group(2)[0]}"
    for kind in (SamModelType.VIT_H, SamModelType.VIT_L, SamModelType.VIT_B, SamModelType.MOBILE_SAM):
        if kind.value in name:
            return kind.value
    return None


PORT: Final = 9090
HEALTH_PATH: Final = "/health"  # readiness: 200 once every worker has its model
LIVENESS_PATH: Final = "/livez"  # 503 only after a failed load
METRICS_PATH: Final = "/metrics"

# The image's non-root user (Dockerfile.backend creates it with these ids).
UID: Final = 10001
GID: Final = 10001

GUNICORN_CONFIG: Final = "python:labelstack_backend.server.gunicorn_conf"
WSGI_APP: Final = "labelstack_backend.server.wsgi:create_app_from_env()"


def command(gunicorn: str = "gunicorn") -> list[str]:
    """The backend's command line: gunicorn with the backend's config and app factory."""
    return [gunicorn, "-c", GUNICORN_CONFIG, WSGI_APP]


class Env:
    """Environment variables of the backend process. Label Studio's own ML backends' names
    (``LABEL_STUDIO_URL``, ``MODEL_DIR``, ``BASIC_AUTH_USER``...) are kept, so existing
    deployments carry over."""

    # Read by Settings.
    PREDICTOR: Final = "LABELSTACK_PREDICTOR"
    LOG_LEVEL: Final = "LOG_LEVEL"
    LABEL_STUDIO_URL: Final = "LABEL_STUDIO_URL"
    LABEL_STUDIO_HOST: Final = "LABEL_STUDIO_HOST"  # older name of LABEL_STUDIO_URL
    LABEL_STUDIO_API_KEY: Final = "LABEL_STUDIO_API_KEY"
    LABEL_STUDIO_ACCESS_TOKEN: Final = "LABEL_STUDIO_ACCESS_TOKEN"
    BASIC_AUTH_USER: Final = "BASIC_AUTH_USER"
    BASIC_AUTH_PASS: Final = "BASIC_AUTH_PASS"
    MODEL_DIR: Final = "MODEL_DIR"
    DEVICE: Final = "LABELSTACK_DEVICE"
    HALF: Final = "LABELSTACK_HALF"
    RUNTIME: Final = "LABELSTACK_RUNTIME"
    DEMO_MODEL: Final = "LABELSTACK_DEMO_MODEL"
    SCORE_THRESHOLD: Final = "LABELSTACK_SCORE_THRESHOLD"
    MAX_DETECTIONS: Final = "LABELSTACK_MAX_DETECTIONS"
    SEG_WEIGHTS: Final = "LABELSTACK_SEG_WEIGHTS"
    SEG_MODEL_CONFIG: Final = "LABELSTACK_SEG_MODEL_CONFIG"
    SEG_DEFAULT_WEIGHTS: Final = "LABELSTACK_SEG_DEFAULT_WEIGHTS"
    SEG_MODEL: Final = "LABELSTACK_SEG_MODEL"
    TEXT_ENCODER: Final = "LABELSTACK_TEXT_ENCODER"
    BATCH_SIZE: Final = "LABELSTACK_BATCH_SIZE"
    IMGSZ: Final = "LABELSTACK_IMGSZ"
    POLYGON_TOLERANCE: Final = "LABELSTACK_POLYGON_TOLERANCE"
    TILING: Final = "LABELSTACK_TILING"
    TILE_SIZE: Final = "LABELSTACK_TILE_SIZE"
    TILE_OVERLAP: Final = "LABELSTACK_TILE_OVERLAP"
    TILE_MIN_SIZE: Final = "LABELSTACK_TILE_MIN_SIZE"
    TILE_FULL_PASS: Final = "LABELSTACK_TILE_FULL_PASS"
    SAM_MODEL_TYPE: Final = "LABELSTACK_SAM_MODEL_TYPE"
    SAM_CHECKPOINT: Final = "LABELSTACK_SAM_CHECKPOINT"
    SAM_CACHE_BYTES: Final = "LABELSTACK_SAM_CACHE_BYTES"
    SAM_BF16: Final = "LABELSTACK_SAM_BF16"
    SAM_POLYGON: Final = "LABELSTACK_SAM_POLYGON"
    SAM_DECODER_THREADS: Final = "LABELSTACK_SAM_DECODER_THREADS"
    IMAGE_MAX_PIXELS: Final = "LABELSTACK_IMAGE_MAX_PIXELS"
    IMAGE_MAX_BYTES: Final = "LABELSTACK_IMAGE_MAX_BYTES"
    IMAGE_TIMEOUT: Final = "LABELSTACK_IMAGE_TIMEOUT"
    IMAGE_CACHE_DIR: Final = "LABELSTACK_IMAGE_CACHE_DIR"
    IMAGE_CACHE_BYTES: Final = "LABELSTACK_IMAGE_CACHE_BYTES"
    LOCAL_ROOTS: Final = "LABELSTACK_LOCAL_ROOTS"
    MAX_TASKS_PER_REQUEST: Final = "LABELSTACK_MAX_TASKS_PER_REQUEST"
    REQUEST_TIMEOUT: Final = "LABELSTACK_REQUEST_TIMEOUT"
    MAX_CONCURRENT_REQUESTS: Final = "LABELSTACK_MAX_CONCURRENT_REQUESTS"
    MAX_DOWNLOADS: Final = "LABELSTACK_MAX_DOWNLOADS"
    TRAIN_EVERY: Final = "LABELSTACK_TRAIN_EVERY"
    TRAIN_EPOCHS: Final = "LABELSTACK_TRAIN_EPOCHS"
    TRAIN_IMGSZ: Final = "LABELSTACK_TRAIN_IMGSZ"
    TRAIN_BATCH: Final = "LABELSTACK_TRAIN_BATCH"
    TRAIN_DEVICE: Final = "LABELSTACK_TRAIN_DEVICE"
    TRAIN_TIMEOUT: Final = "LABELSTACK_TRAIN_TIMEOUT"
    TRAIN_EXTRA: Final = "LABELSTACK_TRAIN_EXTRA"
    PROMOTE: Final = "LABELSTACK_PROMOTE"
    KEEP_VERSIONS: Final = "LABELSTACK_KEEP_VERSIONS"
    VAL_FRACTION: Final = "LABELSTACK_VAL_FRACTION"
    VAL_MIN: Final = "LABELSTACK_VAL_MIN"
    REDIS_URL: Final = "REDIS_URL"
    REDIS_PASSWORD: Final = "REDIS_PASSWORD"
    REDIS_PREFIX: Final = "LABELSTACK_REDIS_PREFIX"
    REDIS_TIMEOUT: Final = "LABELSTACK_REDIS_TIMEOUT"
    MODEL_STORE: Final = "LABELSTACK_MODEL_STORE"
    VERSION_POLL_SECONDS: Final = "LABELSTACK_VERSION_POLL_SECONDS"
    TRAIN_LOCK_TTL: Final = "LABELSTACK_TRAIN_LOCK_TTL"
    PRELABEL_ON_PROMOTE: Final = "LABELSTACK_PRELABEL_ON_PROMOTE"
    SAM_REDIS_BYTES: Final = "LABELSTACK_SAM_REDIS_BYTES"
    SAM_REDIS_TTL: Final = "LABELSTACK_SAM_REDIS_TTL"

    # Read by the server (gunicorn's settings), not Settings.
    HOST: Final = "HOST"
    PORT: Final = "PORT"
    WORKERS: Final = "WORKERS"
    THREADS: Final = "THREADS"
    GUNICORN_TIMEOUT: Final = "GUNICORN_TIMEOUT"
    GUNICORN_GRACEFUL_TIMEOUT: Final = "GUNICORN_GRACEFUL_TIMEOUT"
    ACCESS_LOG: Final = "ACCESS_LOG"
    WORKER_STATE_DIR: Final = "LABELSTACK_WORKER_STATE_DIR"

    # Read by libraries the backend uses.
    YOLO_CONFIG_DIR: Final = "YOLO_CONFIG_DIR"
    YOLO_OFFLINE: Final = "YOLO_OFFLINE"
    MPLCONFIGDIR: Final = "MPLCONFIGDIR"
    GOOGLE_APPLICATION_CREDENTIALS: Final = "GOOGLE_APPLICATION_CREDENTIALS"
    PROMETHEUS_MULTIPROC_DIR: Final = "PROMETHEUS_MULTIPROC_DIR"  # the workers' metrics, merged


#: What the server reads itself, and what the libraries it runs read: the rest is Settings'.
SERVER_ENV: Final = frozenset(
    {
        Env.HOST,
        Env.PORT,
        Env.WORKERS,
        Env.THREADS,
        Env.GUNICORN_TIMEOUT,
        Env.GUNICORN_GRACEFUL_TIMEOUT,
        Env.ACCESS_LOG,
        Env.WORKER_STATE_DIR,
    }
)
LIBRARY_ENV: Final = frozenset(
    {
        Env.YOLO_CONFIG_DIR,
        Env.YOLO_OFFLINE,
        Env.MPLCONFIGDIR,
        Env.GOOGLE_APPLICATION_CREDENTIALS,
        Env.PROMETHEUS_MULTIPROC_DIR,
    }
)
