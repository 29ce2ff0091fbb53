"""Stand-ins for the SAM tests: settings, predict calls, a probe model, an encoder-counting model."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from labelstack_backend.labelconfig import parse_label_config
from labelstack_backend.predictors.base import PredictCall
from labelstack_backend.sam.embeddings import Embedding
from labelstack_backend.sam.model import SamModel
from labelstack_backend.settings import Settings
from tests.support.sam import CONFIG


def sam_settings(**env: str) -> Settings:
    return Settings.from_env(
        {
            "LABELSTACK_PREDICTOR": "sam",
            "LABELSTACK_SAM_MODEL_TYPE": "tiny",
            "LABELSTACK_DEMO_MODEL": "1",
            "LABELSTACK_RUNTIME": "torch",  # as tests/conftest.py: no exports unless a test asks
            **env,
        }
    )


def call(
    image: Path | str,
    context: Mapping[str, Any] | None,
    config: str = CONFIG,
    task_id: int = 1,
) -> PredictCall:
    """A /predict call on one task whose image is a local file."""
    return PredictCall(
        tasks=[{"id": task_id, "data": {"image": str(image)}}],
        project="1",
        config=parse_label_config(config),
        context=context,
        ls=None,
    )


class _ProbeEncoder(torch.nn.Module):
    def __init__(self, img_size: int) -> None:
        super().__init__()
        self.img_size = img_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = self.img_size // 16
        return torch.zeros(1, 4, grid, grid, device=x.device)


class _ProbePrompts(torch.nn.Module):
    """Hands the decoder the prompt's centre in encoder-input pixels (SAM adds the half pixel too)."""

    def forward(
        self, points: tuple[torch.Tensor, torch.Tensor] | None, boxes: torch.Tensor | None, masks: Any
    ) -> tuple[torch.Tensor, None]:
        if boxes is not None:
            corners = boxes.reshape(-1, 2, 2) + 0.5
            return corners.mean(dim=1), None
        assert points is not None
        return points[0][:, 0, :] + 0.5, None

    def get_dense_pe(self) -> None:
        return None


class _ProbeDecoder(torch.nn.Module):
    """Low-resolution logits of a disk of ``radius`` input pixels around the centre."""

    def __init__(self, img_size: int, radius: float) -> None:
        super().__init__()
        self.img_size = img_size
        self.radius = radius

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: Any,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: Any,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        grid = self.img_size // 4  # SAM's low-res masks are a quarter of the input square
        centres = (torch.arange(grid, dtype=torch.float32) + 0.5) * 4.0
        cx, cy = sparse_prompt_embeddings[0]
        dist = torch.sqrt((centres[None, :] - cx) ** 2 + (centres[:, None] - cy) ** 2)
        logits = (self.radius - dist)[None, None]
        n = 3 if multimask_output else 1
        return logits.repeat(1, n, 1, 1), torch.linspace(0.9, 0.5, n)[None]


class ProbeSam(torch.nn.Module):
    """A stand-in SAM whose mask is a disk around the prompt: it makes the whole coordinate
    chain (percent -> pixels -> encoder input -> low-res mask -> image) checkable to the pixel."""

    mask_threshold = 0.0

    def __init__(self, img_size: int = 256, radius: float = 16.0) -> None:
        super().__init__()
        self.image_encoder = _ProbeEncoder(img_size)
        self.prompt_encoder = _ProbePrompts()
        self.mask_decoder = _ProbeDecoder(img_size, radius)
        self.register_buffer("pixel_mean", torch.zeros(3))
        self.register_buffer("pixel_std", torch.ones(3))


class CountingModel(SamModel):
    """A SamModel that counts encoder runs per image size and can linger in the encoder
    (to widen the window in which concurrent clicks race)."""

    def __init__(self, net: Any, *, linger: float = 0.0, version: str = "sam-test") -> None:
        super().__init__(net, model_type="test", version=version, device="cpu", bf16=False)
        self.linger = linger
        self.calls = 0
        self.encoded: list[tuple[int, int]] = []
        self._count_lock = threading.Lock()

    def encode(self, image: Image.Image, background: bool = False) -> Embedding:
        with self._count_lock:
            self.calls += 1
            self.encoded.append(image.size)
        if self.linger:
            time.sleep(self.linger)
        return super().encode(image, background)
