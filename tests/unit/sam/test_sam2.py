"""SAM 2 and 2.1: building and loading, the type from the file name, the coordinate chain of a
click through SAM 2's square input, and its embedding in the shared cache's bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from labelstack_backend.errors import ModelLoadError
from labelstack_backend.sam.decode import decode
from labelstack_backend.sam.embeddings import Embedding
from labelstack_backend.sam.model import SamModel, build_net, sam_weights
from labelstack_backend.sam.prompts import parse_context
from tests.support.sam import keypoint, pixel_percent, rectangle, write_image
from tests.support.sam_models import sam_settings


@pytest.fixture(scope="module")
def sam2_1_t() -> Any:
    return build_net("sam2.1_t")


def test_a_sam2_1_checkpoint_loads_in_ours_and_in_ultralytics_own_builder(
    sam2_1_t: Any, tmp_path: Path
) -> None:
    from ultralytics.models.sam.build import build_sam2_t

    path = tmp_path / "sam2.1_t.pt"
    torch.save(sam2_1_t.state_dict(), path)
    build_sam2_t(str(path))  # strict: our 2.1 build holds exactly a 2.1 checkpoint's tensors
    loaded = build_net("sam2.1_t", path)
    assert torch.equal(loaded.no_obj_embed_spatial, sam2_1_t.no_obj_embed_spatial)
    with pytest.raises(ModelLoadError, match="does not fit the sam2_t architecture"):
        build_net("sam2_t", path)  # a 2.1 checkpoint is not a 2.0 one: the error says which type


@pytest.mark.parametrize(
    ("name", "explicit", "kind"),
    [
        ("sam2.1_hiera_tiny.pt", "", "sam2.1_t"),
        ("sam2.1_hiera_base_plus.pt", "", "sam2.1_b"),
        ("sam2_l.pt", "", "sam2_l"),
        ("weights.pt", "", "vit_b"),
        ("sam2.1_hiera_tiny.pt", "mobile_sam", "mobile_sam"),
    ],
)
def test_the_type_comes_from_the_variable_else_the_file_name_else_vit_b(
    tmp_path: Path, name: str, explicit: str, kind: str
) -> None:
    path = tmp_path / name
    path.write_bytes(b"weights")
    settings = sam_settings(LABELSTACK_SAM_MODEL_TYPE=explicit, LABELSTACK_SAM_CHECKPOINT=str(path))
    weights = sam_weights(settings)
    assert weights.model_type == kind
    assert weights.version.startswith(f"sam-{kind}-")


class _ProbePrompts(torch.nn.Module):
    """Hands the decoder the object's centre in encoder pixels: the last clicked point, or the
    box's centre (SAM 2 labels box corners 2 and 3)."""

    def forward(
        self, points: tuple[torch.Tensor, torch.Tensor], boxes: Any, masks: Any
    ) -> tuple[torch.Tensor, None]:
        assert boxes is None  # SAM 2 takes a box as two labelled points
        coords, labels = points[0][0] + 0.5, points[1][0]
        corners = coords[(labels == 2) | (labels == 3)]
        return (corners.mean(dim=0) if len(corners) else coords[labels == 1][-1])[None], None

    def get_dense_pe(self) -> None:
        return None


class _ProbeDecoder(torch.nn.Module):
    """Low-resolution logits of a disk around the centre; keeps the real decoder's convolutions,
    which SAM 2's encoder applies to its finer maps."""

    def __init__(self, real: Any, img_size: int, radius: float = 24.0) -> None:
        super().__init__()
        self.conv_s0, self.conv_s1 = real.conv_s0, real.conv_s1
        self.img_size, self.radius = img_size, radius

    def forward(
        self, *, sparse_prompt_embeddings: torch.Tensor, high_res_features: list[Any], **_: Any
    ) -> Any:
        assert [tuple(h.shape[1:]) for h in high_res_features] == [(32, 256, 256), (64, 128, 128)]
        grid = self.img_size // 4
        centres = (torch.arange(grid, dtype=torch.float32) + 0.5) * 4.0
        cx, cy = sparse_prompt_embeddings[0]
        logits = self.radius - torch.sqrt((centres[None, :] - cx) ** 2 + (centres[:, None] - cy) ** 2)
        return logits[None, None], torch.ones(1, 1), None, None


def test_a_click_and_a_box_land_where_they_were_made_on_the_image(sam2_1_t: Any, tmp_path: Path) -> None:
    net = build_net("sam2.1_t")
    net.sam_prompt_encoder = _ProbePrompts()
    net.sam_mask_decoder = _ProbeDecoder(sam2_1_t.sam_mask_decoder, 1024)
    model = SamModel(net, model_type="sam2.1_t", version="v", device="cpu", bf16=False)
    width, height = 320, 200
    image = Image.open(write_image(tmp_path / "a.jpg", (width, height)))
    embedding = model.encode(image)
    assert embedding.input_size == (1024, 1024)  # resized to the square, not padded
    assert embedding.nbytes == (256 * 64 * 64 + 32 * 256 * 256 + 64 * 128 * 128) * 4
    for x, y in [(30, 170), (250, 40)]:
        ctx = parse_context(
            {"result": [keypoint(pixel_percent(x, width), pixel_percent(y, height), width, height)]}
        )
        (obj,) = ctx.objects(width, height)
        mask = decode(model, embedding, obj).mask
        assert mask.shape == (height, width)
        assert mask[y, x] and not mask[height - 1 - y, width - 1 - x]
    box = rectangle(50, 50, 25, 25, width, height)  # centre at 62.5 %: pixel (200, 125)
    (obj,) = parse_context({"result": [box]}).objects(width, height)
    mask = decode(model, embedding, obj).mask
    assert mask[125, 200] and not mask[20, 20]


def test_the_shared_cache_round_trips_sam2s_finer_maps(sam2_1_t: Any) -> None:
    features, fine = torch.randn(1, 256, 64, 64), (torch.randn(1, 32, 256, 256), torch.randn(1, 64, 128, 128))
    back = Embedding.from_bytes(Embedding(features, (1024, 1024), (200, 320), fine).to_bytes())
    assert back.input_size == (1024, 1024) and back.original_size == (200, 320)
    assert [tuple(t.shape) for t in back.high_res] == [(1, 32, 256, 256), (1, 64, 128, 128)]
    assert torch.allclose(back.high_res[0], fine[0], atol=1e-2)
    sam1 = Embedding.from_bytes(Embedding(features, (768, 1024), (600, 800)).to_bytes())
    assert sam1.high_res == () and torch.allclose(sam1.features, features, atol=1e-2)
