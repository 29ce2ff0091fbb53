"""The image embedding: what it holds, what it is keyed by, and how an image value becomes one.

The key is ``<model version>|<image identity>#<content digest>``:

* the image identity is the task's storage URI or path, never a signed or
  expiring URL (see :func:`labelstack_backend.images.resolve_ref`), so
  re-signed URLs and rotated tokens keep hitting the cache;
* the content digest (sha256 of the file bytes) makes a replaced file miss;
* the model version keeps embeddings of different models apart once a second
  level is shared between replicas.

A warm click needs only the key: the file bytes come from the image loader's
disk cache (or the local file) and are hashed, but the image is decoded and
encoded only on a miss.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from labelstack_backend import metrics
from labelstack_backend.images import ImageLoader, content_key, decode_image, resolve_ref
from labelstack_backend.sam.cache import CacheStats, SecondLevel, SingleFlightLRU, Source
from labelstack_common.labelstudio import LabelStudioClient

if TYPE_CHECKING:
    import torch
    from PIL import Image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Embedding:
    """SAM's image embedding plus the geometry needed to map prompts and masks."""

    features: torch.Tensor  # (1, C, h, w) on the model's device
    input_size: tuple[int, int]  # (height, width) of the resized image inside the encoder's square
    original_size: tuple[int, int]  # (height, width) of the EXIF-corrected image

    @property
    def nbytes(self) -> int:
        return int(self.features.element_size() * self.features.nelement())

    def to_bytes(self) -> bytes:
        """A compact form for a shared cache: fp16 features plus the geometry (about half of fp32)."""
        array = self.features.detach().to("cpu").float().numpy().astype(np.float16)
        buf = io.BytesIO()
        header = json.dumps(
            {"shape": list(array.shape), "input": self.input_size, "original": self.original_size}
        ).encode()
        buf.write(len(header).to_bytes(4, "big"))
        buf.write(header)
        buf.write(array.tobytes())
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, device: str = "cpu") -> Embedding:
        import torch

        size = int.from_bytes(data[:4], "big")
        header = json.loads(data[4 : 4 + size])
        array = np.frombuffer(data[4 + size :], dtype=np.float16).reshape(header["shape"])
        features = torch.from_numpy(array.astype(np.float32)).to(device)
        (ih, iw), (oh, ow) = header["input"], header["original"]
        return cls(features, (int(ih), int(iw)), (int(oh), int(ow)))


def embedding_size(value: Embedding) -> int:
    return value.nbytes


Encoder = Callable[["Image.Image", bool], Embedding]  # (image, background) -> embedding


class EmbeddingService:
    """Image value -> embedding, through the cache; thread-safe."""

    def __init__(
        self,
        encode: Encoder,
        loader: ImageLoader,
        cache: SingleFlightLRU[Embedding],
        model_version: str,
    ) -> None:
        self._encode = encode
        self.loader = loader
        self.cache = cache
        self.model_version = model_version

    def get(
        self,
        value: str,
        ls: LabelStudioClient | None = None,
        *,
        background: bool = False,
        fresh: bool = False,
    ) -> tuple[Embedding, Source]:
        """The embedding of the task image ``value`` and where it came from.

        Raises :class:`ImageError` when the image cannot be fetched or decoded.
        ``background`` calls (precompute) give way to interactive ones at the encoder.
        ``fresh`` fetches the image again instead of reading the image cache.
        """
        ref = resolve_ref(value, ls.url if ls else None)
        data = self.loader.fetch(ref, ls, fresh=fresh)
        key = f"{self.model_version}|{content_key(ref.identity, hashlib.sha256(data).hexdigest())}"

        def compute() -> Embedding:
            image = decode_image(data, self.loader.max_pixels, what=ref.identity)
            return self._encode(image, background)

        embedding, source = self.cache.get_or_compute(key, compute)
        metrics.SAM_CACHE_LOOKUPS.labels(source.value).inc()
        log.debug("embedding of %s: %s", ref.identity, source.value)
        return embedding, source


def new_cache(max_bytes: int, second: SecondLevel[Embedding] | None = None) -> SingleFlightLRU[Embedding]:
    """The embedding LRU, reporting its size and evictions to /metrics."""
    metrics.SAM_CACHE_MAX_BYTES.set(max_bytes)

    def changed(stats: CacheStats) -> None:
        metrics.SAM_CACHE_BYTES.set(stats.bytes)
        metrics.SAM_CACHE_ENTRIES.set(stats.entries)

    return SingleFlightLRU(
        max_bytes,
        embedding_size,
        second=second,
        on_change=changed,
        on_evict=lambda _key, _size: metrics.SAM_CACHE_EVICTIONS.inc(),
    )
