"""A replaced object behind the same URI gives new pixels and a new SAM embedding: a gs:// object
on the GCS emulator (a new generation) and a Label Studio upload replaced on its disk (Label
Studio 1.23 sends neither ETag nor Last-Modified for uploads, so they are fetched every time)."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from labelstack_backend import gcs
from labelstack_backend.imagecache import DiskCache
from labelstack_backend.images import ImageLoader
from labelstack_backend.sam.cache import Source
from labelstack_backend.sam.embeddings import Embedding, EmbeddingService, new_cache
from tests.support.gcs_emulator import make_bucket

pytestmark = pytest.mark.integration


def png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


class Encodes:
    """A stand-in encoder whose embedding is the image's mean colour: what matters here is
    whether it runs, and on which pixels."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, image: Image.Image, background: bool) -> Embedding:
        self.calls += 1
        mean = torch.tensor(image.resize((1, 1)).getpixel((0, 0)), dtype=torch.float32)
        return Embedding(mean.view(1, 3, 1, 1), (image.height, image.width), (image.height, image.width))


def service(tmp_path: Path) -> tuple[EmbeddingService, Encodes]:
    loader = ImageLoader(
        max_pixels=10**7, max_bytes=10**7, timeout=10, cache=DiskCache(tmp_path / "c", 10**8)
    )
    encoder = Encodes()
    return EmbeddingService(encoder, loader, new_cache(10**8), "test-model"), encoder


def pixel(embedding: Embedding) -> list[float]:
    return embedding.features.flatten().tolist()


def test_a_replaced_gcs_object_gives_new_pixels_and_a_new_embedding(
    gcs_emulator: Any, tmp_path: Path
) -> None:
    make_bucket("replaced")
    blob = gcs.client().bucket("replaced").blob(f"{uuid.uuid4().hex}.png")
    blob.upload_from_string(png((30, 20), (200, 0, 0)), content_type="image/png")
    uri = f"gs://replaced/{blob.name}"
    embeddings, encoder = service(tmp_path)
    first, _ = embeddings.get(uri)
    assert embeddings.get(uri)[1] is Source.MEMORY and encoder.calls == 1
    blob.upload_from_string(png((20, 30), (0, 0, 200)), content_type="image/png")
    loaded = embeddings.loader.load(uri)
    assert (loaded.width, loaded.height) == (20, 30) and loaded.image.getpixel((0, 0)) == (0, 0, 200)
    second, source = embeddings.get(uri)
    assert source is Source.COMPUTED and encoder.calls == 2
    assert pixel(first) == [200.0, 0.0, 0.0] and pixel(second) == [0.0, 0.0, 200.0]
    assert second.original_size == (30, 20)


def test_a_replaced_label_studio_upload_gives_new_pixels_and_a_new_embedding(
    label_studio: Any, tmp_path: Path
) -> None:
    ls = label_studio.client
    project = ls.sdk.projects.create(title=f"replaced {uuid.uuid4().hex[:6]}", label_config=(
        '<View><Image name="image" value="$image"/><BrushLabels name="m" toName="image"><Label value="A"/>'
        "</BrushLabels></View>"))  # fmt: skip
    ls.request(
        "POST", f"/api/projects/{project.id}/import", files={"f": ("a.png", png((30, 20), (0, 200, 0)))}
    )
    (page,) = ls.task_pages(project.id)
    value = page.tasks[0].data["image"]
    assert value.startswith("/data/upload/")
    embeddings, encoder = service(tmp_path)
    first, _ = embeddings.get(value, ls)
    on_disk = label_studio.process.data_dir / "media" / value.removeprefix("/data/")
    assert on_disk.is_file(), on_disk
    on_disk.write_bytes(png((20, 30), (0, 0, 200)))
    loaded = embeddings.loader.load(value, ls)
    assert (loaded.width, loaded.height) == (20, 30) and loaded.version == ""
    second, source = embeddings.get(value, ls)
    assert source is Source.COMPUTED and encoder.calls == 2
    assert pixel(first) == [0.0, 200.0, 0.0] and pixel(second) == [0.0, 0.0, 200.0]
    assert embeddings.get(value, ls)[1] is Source.MEMORY, "unchanged bytes: the same embedding"
