"""Build or load a Segment Anything model, and run its image encoder.

Model types (``LABELSTACK_SAM_MODEL_TYPE``):

* ``vit_h``, ``vit_l``, ``vit_b``: Meta's SAM, built by ``segment_anything``;
* ``mobile_sam``: MobileSAM (TinyViT encoder, SAM's decoder), built by ultralytics,
  the CPU-friendly choice (7-12x faster to encode than vit_b on CPU);
* ``sam2_t`` ... ``sam2_l`` and ``sam2.1_t`` ... ``sam2.1_l``: SAM 2 and 2.1 (Hiera encoders),
  built by ultralytics (see :mod:`.sam2`);
* ``tiny``: a few-layer ViT SAM for tests and CPU demos (encodes in milliseconds).

Weights always come from a path (``LABELSTACK_SAM_CHECKPOINT``: a mounted volume, a PVC,
a file baked into the image); nothing is downloaded. Without one the backend fails
at start, unless ``LABELSTACK_DEMO_MODEL=1`` asks for randomly initialised weights
(seeded, so every worker serves the same model; logged as a warning).

Encoding is serialised per process by :class:`EncoderGate` (one encoder run at a
time keeps GPU memory bounded, and on CPU torch already uses every core), and
interactive requests go before background precompute. Decoding does not take the
gate: it is stateless and runs concurrently (see :mod:`.decode`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from labelstack_backend import metrics, runtime
from labelstack_backend.errors import ModelLoadError
from labelstack_backend.priority import PriorityGate
from labelstack_backend.registry.store import file_digest
from labelstack_backend.sam import onnxdecoder, ovencoder, sam2
from labelstack_backend.sam.embeddings import Embedding
from labelstack_backend.settings import Settings
from labelstack_common.contract import (
    SAM2_TYPES,
    SAM_MODEL_TYPES,
    SAM_TEST_TYPE,
    SAM_VIT_TYPES,
    Env,
    SamModelType,
    sam_model_type_for,
)

log = logging.getLogger(__name__)

DEMO_SEED = 0


@dataclass(frozen=True)
class SamWeights:
    """Which model to build and from what; decided at start, before any request."""

    model_type: str
    checkpoint: Path | None  # None: random weights (demo mode)
    version: str


def sam_weights(settings: Settings) -> SamWeights:
    """Check the SAM settings; raise :class:`ModelLoadError` when they cannot work.

    Without ``LABELSTACK_SAM_MODEL_TYPE`` the type is read from the checkpoint's usual file
    name (``sam2.1_hiera_tiny.pt`` -> ``sam2.1_t``), else it is ``vit_b``."""
    model_type = settings.sam_model_type.strip().lower() or (
        sam_model_type_for(Path(settings.sam_checkpoint).name) if settings.sam_checkpoint else None
    )
    model_type = model_type or SamModelType.VIT_B.value
    if model_type not in SAM_MODEL_TYPES:
        raise ModelLoadError(
            f"{Env.SAM_MODEL_TYPE}={settings.sam_model_type!r} is not one of {', '.join(SAM_MODEL_TYPES)}"
        )
    if settings.sam_checkpoint:
        path = runtime.weights_file(settings.sam_checkpoint, Env.SAM_CHECKPOINT)
        return SamWeights(model_type, path, f"sam-{model_type}-{file_digest(path)}")
    if settings.demo_model:
        return SamWeights(model_type, None, f"sam-{model_type}-random")
    raise ModelLoadError(
        f"no SAM weights: LABELSTACK_SAM_CHECKPOINT is not set. Point it at the {model_type} checkpoint "
        "(sam_vit_h_4b8939.pth, sam_vit_l_0b3195.pth, sam_vit_b_01ec64.pth, mobile_sam.pt, "
        "sam2.1_hiera_tiny.pt...) on a mounted "
        "volume, or set LABELSTACK_DEMO_MODEL=1 for randomly initialised weights (demos and tests only)"
    )


def tiny_sam(img_size: int = 256, embed_dim: int = 32, depth: int = 2, prompt_dim: int = 32) -> Any:
    """A SAM with a tiny ViT encoder and a slim decoder: the real architecture, small enough
    for CPU tests. With ``img_size=256`` the embedding is ``prompt_dim x 16 x 16``."""
    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    patch = 16
    grid = img_size // patch
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=img_size,
            patch_size=patch,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=2,
            mlp_ratio=2.0,
            out_chans=prompt_dim,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=8,
            global_attn_indexes=(depth - 1,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=prompt_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(img_size, img_size),
            mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=prompt_dim, mlp_dim=64, num_heads=2),
            transformer_dim=prompt_dim,
            iou_head_depth=2,
            iou_head_hidden_dim=32,
        ),
    ).eval()


def build_net(model_type: str, checkpoint: Path | None = None, *, seed: int = DEMO_SEED) -> Any:
    """The SAM network of ``model_type``, with the checkpoint's weights or seeded random ones."""
    import torch

    torch.manual_seed(seed)  # random weights are the same in every process
    if model_type == SAM_TEST_TYPE:
        net = tiny_sam()
    elif model_type == SamModelType.MOBILE_SAM:
        runtime.prepare_ultralytics()
        from ultralytics.models.sam.build import build_mobile_sam

        net = build_mobile_sam(None)  # never a name: ultralytics would try to download it
    elif model_type in SAM2_TYPES:
        net = sam2.build(model_type)
    elif model_type in SAM_VIT_TYPES:
        from segment_anything import sam_model_registry

        net = sam_model_registry[model_type](checkpoint=None)
    else:
        raise ModelLoadError(
            f"unknown SAM model type {model_type!r}; use one of {', '.join(SAM_MODEL_TYPES)}"
        )
    if checkpoint is not None:
        load_checkpoint(net, checkpoint, model_type)
    return net.eval()


def load_checkpoint(net: Any, path: Path, model_type: str) -> None:
    """Load a state dict saved from ``model_type`` into ``net``, on any machine.

    ``map_location`` lets a checkpoint saved on a GPU load on a CPU-only machine (the
    builders' own loaders lack it), and ``weights_only`` refuses pickled code.
    """
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(f"could not read SAM checkpoint {path}: {type(exc).__name__}: {exc}") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # some MobileSAM releases nest the weights
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path} is not a state dict of SAM weights")
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        detail = " ".join(str(exc).splitlines()[:3])
        raise ModelLoadError(
            f"{path} does not fit the {model_type} architecture (LABELSTACK_SAM_MODEL_TYPE): {detail}"
        ) from None


#: One encoder run at a time; interactive callers go before background ones (precompute).
EncoderGate = PriorityGate


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` CPU threads per torch op (0: leave the setting alone).

    With torch's OpenMP backend the setting belongs to the calling thread, so each
    request thread sets its own and others are not affected.
    """
    import torch

    before = torch.get_num_threads()
    if n <= 0 or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class SamModel:
    """A loaded SAM on one device. :meth:`encode` is thread-safe; the decoder parts are
    read-only modules that :mod:`.decode` calls concurrently.

    On a CPU the encoder uses every core torch was given (one encode at a time), while
    each click decodes on ``decoder_threads`` cores: a decode is small, and splitting it
    across busy cores makes it slower, not faster (see docs/sam.md).
    """

    def __init__(
        self,
        net: Any,
        *,
        model_type: str,
        version: str,
        device: str,
        bf16: bool,
        decoder_threads: int = 0,
    ) -> None:
        import torch

        self.net = net.to(device).eval()
        self.model_type = model_type
        self.version = version
        self.device = device
        self.bf16 = bf16
        on_cpu = torch.device(device).type == "cpu"
        self.encoder_threads = torch.get_num_threads() if on_cpu else 0
        self.decoder_threads = decoder_threads if on_cpu else 0
        # SAM 2 resizes the image to its whole square (as it was trained); SAM pads it.
        self.sam2 = sam2.is_sam2(net)
        self.img_size = int(net.image_size if self.sam2 else net.image_encoder.img_size)
        self.mask_threshold = float(getattr(net, "mask_threshold", 0.0))
        self.onnx_decoder: onnxdecoder.OnnxDecoder | None = None  # None: clicks decode through torch
        self.ov_encoder: ovencoder.OvEncoder | None = None  # None: torch encodes
        self.gate = EncoderGate()
        mean, std = (sam2.PIXEL_MEAN, sam2.PIXEL_STD) if self.sam2 else (net.pixel_mean, net.pixel_std)
        self._mean = torch.as_tensor(mean, device=device).view(3, 1, 1)
        self._std = torch.as_tensor(std, device=device).view(3, 1, 1)

    @classmethod
    def load(cls, weights: SamWeights, settings: Settings) -> SamModel:
        started = time.monotonic()
        device = runtime.resolve_device(settings.device)
        bf16 = use_bf16(device, settings.sam_bf16)
        if weights.checkpoint is None:
            log.warning(
                "LABELSTACK_DEMO_MODEL=1: serving a randomly initialised %s SAM; its masks are "
                "meaningless (demos and tests only). Set LABELSTACK_SAM_CHECKPOINT for real masks",
                weights.model_type,
            )
        net = build_net(weights.model_type, weights.checkpoint)
        model = cls(
            net,
            model_type=weights.model_type,
            version=weights.version,
            device=device,
            bf16=bf16,
            decoder_threads=settings.sam_decoder_threads,
        )
        model.use_onnx_decoder(settings)
        model.use_ov_encoder(settings)
        log.info(
            "loaded SAM %s (%s) on %s%s in %.1fs",
            weights.model_type,
            weights.checkpoint or "random weights",
            device,
            " with a bf16 encoder" if bf16 else "",
            time.monotonic() - started,
        )
        return model

    def use_onnx_decoder(self, settings: Settings) -> None:
        """Decode clicks through ONNX Runtime where LABELSTACK_RUNTIME and the device call for it;
        an export or session that fails leaves torch decoding, and says why."""
        on, why = onnxdecoder.wanted(settings.runtime, self.device, self.sam2)
        if not on:
            if why:
                log.warning("SAM's decoder runs on torch: %s", why)
            return
        folder = settings.model_dir_resolved / "exports" / self.version
        try:
            # Every core torch has: ONNX Runtime's threads sleep when idle (torch's spin).
            self.onnx_decoder = onnxdecoder.load_decoder(self.net, folder, max(self.encoder_threads, 1))
        except ModelLoadError as exc:
            log.error("SAM's decoder runs on torch: %s", exc.reason)
            return
        log.info("SAM's decoder runs on ONNX Runtime (%s)", self.onnx_decoder.path)

    def use_ov_encoder(self, settings: Settings) -> None:
        """Encode through OpenVINO once its export is ready (made in the background), where
        LABELSTACK_RUNTIME and the device call for it; torch encodes until then."""
        if ovencoder.wanted(settings.runtime, self.device, self.sam2):
            folder = settings.model_dir_resolved / "exports" / self.version
            ovencoder.load_in_background(self.net, folder, self.encoder_threads, self._encoder_ready)

    def _encoder_ready(self, encoder: ovencoder.OvEncoder) -> None:
        self.ov_encoder = encoder

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) of an image resized so that its long side is the encoder's size
        (SAM 2: the encoder's square)."""
        if self.sam2:
            return self.img_size, self.img_size
        scale = self.img_size / max(height, width)
        return int(height * scale + 0.5), int(width * scale + 0.5)

    def preprocess(self, image: Image.Image) -> tuple[Any, tuple[int, int]]:
        """SAM's input: resized (long side = img_size), normalised, zero-padded to a square
        (SAM 2: resized to the square)."""
        import torch
        import torch.nn.functional as F

        h, w = self.input_size(image.height, image.width)
        resized = np.asarray(image.convert("RGB").resize((w, h), Image.Resampling.BILINEAR))
        x = torch.from_numpy(resized.copy()).to(self.device).permute(2, 0, 1).float()
        x = (x - self._mean) / self._std
        x = F.pad(x, (0, self.img_size - w, 0, self.img_size - h))
        return x.unsqueeze(0), (h, w)

    def encode(self, image: Image.Image, background: bool = False) -> Embedding:
        """The embedding of an RGB image (EXIF orientation already applied)."""
        import torch

        x, input_size = self.preprocess(image)
        autocast = (
            torch.autocast(device_type=torch.device(self.device).type, dtype=torch.bfloat16)
            if self.bf16
            else nullcontext()
        )
        with self.gate.hold(background), torch_threads(self.encoder_threads):
            started = time.perf_counter()
            with torch.inference_mode(), autocast:
                image_encoder = self.ov_encoder or self.net.image_encoder
                features, high_res = sam2.encode(self.net, x) if self.sam2 else (image_encoder(x), ())
            if features.device.type == "cuda":
                torch.cuda.synchronize(features.device)
            elapsed = time.perf_counter() - started
        metrics.SAM_ENCODER_CALLS.labels("background" if background else "interactive").inc()
        metrics.SAM_ENCODER_SECONDS.observe(elapsed)
        log.debug("encoded a %dx%d image in %.3fs", image.width, image.height, elapsed)
        return Embedding(
            features=features,
            input_size=input_size,
            original_size=(image.height, image.width),
            high_res=high_res,
        )


def use_bf16(device: str, requested: bool | None) -> bool:
    """bf16 autocast for the encoder: on by default on a CUDA GPU that supports it, opt-in on CPU."""
    import torch

    is_cuda = device.startswith("cuda")
    wanted = is_cuda if requested is None else requested
    if wanted and is_cuda and not torch.cuda.is_bf16_supported():
        log.warning("this GPU has no bf16 support; the SAM encoder runs in fp32")
        return False
    return wanted
