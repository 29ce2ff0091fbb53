"""Stateless mask decoding from a cached embedding.

segment-anything's ``SamPredictor`` keeps the current image's features on the
instance (``set_image`` then ``predict``), so one shared predictor cannot serve
concurrent clicks on different images. Here the embedding is an argument: the
prompt encoder and mask decoder are read-only modules, and any number of
threads decode at once, each from its own cached embedding.

The geometry is SAM's own: prompts are scaled from the frame the editor saw to
the encoder's resized input (continuous pixels; the prompt encoder adds half a
pixel, so we subtract it), and the low-resolution mask logits are upscaled to
the encoder's square, cropped to the image, and upscaled to the frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from labelstack_backend import metrics
from labelstack_backend.geometry import BoolMask
from labelstack_backend.sam import sam2
from labelstack_backend.sam.embeddings import Embedding
from labelstack_backend.sam.model import SamModel, torch_threads
from labelstack_backend.sam.prompts import ObjectPrompt


@dataclass(frozen=True)
class MaskResult:
    mask: BoolMask  # (height, width) of the prompt's frame
    score: float  # SAM's predicted IoU of the mask


def decode(model: SamModel, embedding: Embedding, prompt: ObjectPrompt) -> MaskResult:
    """The mask for one object. One point alone is ambiguous (a shirt or its pocket?):
    SAM proposes three masks and the one with the best predicted IoU wins. More
    points or a box pin the object down, and SAM answers with one mask."""
    import torch
    import torch.nn.functional as F

    started = time.perf_counter()
    net, device = model.net, model.device
    h_in, w_in = embedding.input_size
    scale = np.array([w_in / prompt.width, h_in / prompt.height])
    points = None
    if len(prompt.points):
        coords = torch.as_tensor(prompt.points * scale - 0.5, dtype=torch.float32, device=device)
        labels = torch.as_tensor(prompt.labels, dtype=torch.int64, device=device)
        points = (coords[None], labels[None])
    boxes = None
    if prompt.box is not None:
        corners = prompt.box.reshape(2, 2) * scale - 0.5
        boxes = torch.as_tensor(corners.reshape(1, 4), dtype=torch.float32, device=device)
    multimask = prompt.box is None and len(prompt.points) == 1
    with torch.inference_mode(), torch_threads(model.decoder_threads):
        if model.sam2:
            low_res, iou = sam2.decode(net, embedding.features, embedding.high_res, points, boxes, multimask)
        else:
            sparse, dense = net.prompt_encoder(points=points, boxes=boxes, masks=None)
            low_res, iou = net.mask_decoder(
                image_embeddings=embedding.features.float(),
                image_pe=net.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
            )
        best = int(iou[0].argmax())
        logits = low_res[:, best : best + 1].float()
        if model.sam2:  # the image fills the square: straight to the frame, as SAM 2 does
            frame = logits
        else:
            square = F.interpolate(
                logits, (model.img_size, model.img_size), mode="bilinear", align_corners=False
            )
            frame = square[..., :h_in, :w_in]
        if frame.shape[-2:] != (prompt.height, prompt.width):  # else the resize is the identity
            frame = F.interpolate(frame, (prompt.height, prompt.width), mode="bilinear", align_corners=False)
        mask = (frame[0, 0] > model.mask_threshold).cpu().numpy()
        score = float(iou[0, best])
    metrics.SAM_DECODE_SECONDS.observe(time.perf_counter() - started)
    return MaskResult(mask=mask, score=score)
