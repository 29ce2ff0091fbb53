"""The image embedding: what it holds, what it is keyed by, and how an image value becomes one.

The key is ``<model version>|<image identity>@<object version>#<content digest>``:

* the image identity is the task's storage URI or path, never a signed or
  expiring URL (see :func:`labelstack_backend.images.resolve_ref`), so
  re-signed URLs and rotated tokens keep hitting the cache;
* the object version (GCS generation, ETag or Last-Modified, local mtime and size) makes
  the image loader fetch a replaced object again instead of serving its cached copy, and the
  content digest (sha256 of the file bytes) then makes its embedding miss;
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
    # SAM 2's finer feature maps (1/4 and 1/8 of the input), which its decoder also reads; SAM 1 has none.
    high_res: tuple[torch.Tensor, ...] = ()

    @property
    def nbytes(self) -> int:
        return sum(int(t.element_size() * t.nelement()) for t in (self.features, *self.high_res))

    def to_bytes(self) -> bytes:
        """A compact form for a shared cache: fp16 features plus the geometry (about half of fp32)."""
        arrays = [
            t.detach().to("cpu").float().numpy().astype(np.float16) for t in (self.features, *self.high_res)
        ]
        buf = io.BytesIO()
        header = json.dumps(
            {
                "shape": list(arrays[0].shape),
                "high_res": [list(a.shape) for a in arrays[1:]],
                "input": self.input_size,
                "original": self.original_size,
            }
        ).encode()
        buf.write(len(header).to_bytes(4, "big"))
        buf.write(header)
        for array in arrays:
            buf.write(array.tobytes())
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, device: str = "cpu") -> Embedding:
        import torch

        size = int.from_bytes(data[:4], "big")
        header = json.loads(data[4 : 4 + size])
        offset = 4 + size
        tensors = []
        for shape in [header["shape"], *header.get("high_res", [])]:
            count = int(np.prod(shape))
            array = np.frombuffer(data, dtype=np.float16, count=count, offset=offset).reshape(shape)
            tensors.append(torch.from_numpy(array.astype(np.float32)).to(device))
            offset += count * 2
        if offset != len(data):
            raise ValueError(f"an embedding of {len(data)} bytes whose header describes {offset}")
        (ih, iw), (oh, ow) = header["input"], header["original"]
        return cls(tensors[0], (int(ih), int(iw)), (int(oh), int(ow)), tuple(tensors[1:]))


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
        got = self.loader.fetch_versioned(ref, ls, fresh=fresh)
        data = got.data
        key = (
            f"{self.model_version}|{content_key(ref.identity, hashlib.sha256(data).hexdigest(), got.version)}"
        )

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
