"""SAM 2 and 2.1 for single images: the network, its encoder output, and one prompt's decoding.

SAM 2 keeps SAM's prompt encoder and mask decoder, with two differences that matter here:

* its encoder gives, besides the 64 x 64 embedding, two finer feature maps (1/4 and 1/8 of
  the input) that the decoder also reads, so the cached embedding holds all three;
* it was trained on images resized to its square input, not padded to it (Meta's
  ``SAM2Transforms``), so the whole square holds the image and prompts scale per axis.

The networks are ultralytics' (``build_sam2_t/s/b/l``); the video memory modules they carry
are never run. SAM 2.1 differs from 2.0 only in three tensors of that memory path, which its
checkpoints hold, so the 2.1 build adds them the way ultralytics' builder does for a
``sam2.1`` checkpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labelstack_backend import runtime
from labelstack_backend.errors import ModelLoadError

if TYPE_CHECKING:
    import torch

# SAM 2 normalises as SAM does (ImageNet's mean and std, on 0-255 pixels).
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
# Box corners enter SAM 2's prompt encoder as two points with these labels, before the clicks.
BOX_LABELS = (2, 3)


def is_sam2(net: Any) -> bool:
    """Whether ``net`` is a SAM 2 (its decoder is ``sam_mask_decoder``), not a SAM 1."""
    return hasattr(net, "sam_mask_decoder")


def build(model_type: str) -> Any:
    """A randomly initialised SAM 2 or 2.1 of ``model_type`` (``sam2_t`` ... ``sam2.1_l``)."""
    runtime.prepare_ultralytics()
    from ultralytics.models.sam import build as builders

    version, _, size = model_type.partition("_")
    make = {
        "t": builders.build_sam2_t,
        "s": builders.build_sam2_s,
        "b": builders.build_sam2_b,
        "l": builders.build_sam2_l,
    }.get(size)
    if version not in {"sam2", "sam2.1"} or make is None:
        raise ModelLoadError(f"{model_type!r} is not a SAM 2 type (sam2_t ... sam2.1_l)")
    net = make(None)  # never a name: ultralytics would try to download it
    if version == "sam2.1":
        _add_sam2_1_tensors(net)
    return net


def _add_sam2_1_tensors(net: Any) -> None:
    """What ``SAM2Model`` builds with ``no_obj_embed_spatial``, ``proj_tpos_enc_in_obj_ptrs`` and
    ``use_signed_tpos_enc_to_obj_ptrs`` (ultralytics sets them only for a checkpoint path
    that says ``sam2.1``): the memory path's tensors, so that 2.1 checkpoints load strictly."""
    import torch

    net.no_obj_embed_spatial = torch.nn.Parameter(torch.zeros(1, net.mem_dim))
    torch.nn.init.trunc_normal_(net.no_obj_embed_spatial, std=0.02)
    net.obj_ptr_tpos_proj = torch.nn.Linear(net.hidden_dim, net.mem_dim)
    net.proj_tpos_enc_in_obj_ptrs = True
    net.use_signed_tpos_enc_to_obj_ptrs = True


def encode(net: Any, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """The embedding (1, 256, 64, 64) and the finer maps of one preprocessed image, as
    ultralytics' ``SAM2Predictor.get_im_features`` computes them for a single image."""
    backbone = net.forward_image(x)
    _, feats, _, sizes = net._prepare_backbone_features(backbone)
    if net.directly_add_no_mem_embed:  # an image without memory, as in SAM 2's image predictor
        feats[-1] = feats[-1] + net.no_mem_embed
    maps = [f.permute(1, 2, 0).reshape(1, -1, h, w) for f, (h, w) in zip(feats, sizes, strict=True)]
    return maps[-1], tuple(maps[:-1])


def decode(
    net: Any,
    features: torch.Tensor,
    high_res: tuple[torch.Tensor, ...],
    points: tuple[torch.Tensor, torch.Tensor] | None,
    boxes: torch.Tensor | None,
    multimask: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(low-resolution mask logits, predicted IoUs) for one object's prompts, in encoder pixels."""
    import torch

    if boxes is not None:  # SAM 2 takes a box as its two corners, labelled 2 and 3, first
        corners = boxes.reshape(1, 2, 2)
        labels = torch.tensor([BOX_LABELS], dtype=torch.int64, device=boxes.device)
        points = (
            (torch.cat([corners, points[0]], dim=1), torch.cat([labels, points[1]], dim=1))
            if points is not None
            else (corners, labels)
        )
    sparse, dense = net.sam_prompt_encoder(points=points, boxes=None, masks=None)
    low_res, iou, _, _ = net.sam_mask_decoder(
        image_embeddings=features.float(),
        image_pe=net.sam_prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=multimask,
        repeat_image=False,
        high_res_features=[h.float() for h in high_res],
    )
    return low_res, iou
