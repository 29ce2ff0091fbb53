"""Stateless mask decoding from a cached embedding.

segment-anything's ``SamPredictor`` keeps the current image's features on the
instance (``set_image`` then ``predict``), so one shared predictor cannot serve
concurrent clicks on different images. Here the embedding is an argument: the
prompt encoder and mask decoder are read-only modules, and any number of
threads decode at once, each from its own cached embedding.

The geometry is SAM's own: prompts are scaled from the frame the editor saw to
the encoder's resized input (continuous pixels; the prompt encoder adds half a
pixel, so we subtract it). SAM upsamples the low-resolution mask logits to the
encoder's square, crops the image and upsamples again to the frame; here the
two maps are composed into one, sampled only in the window that can hold the
mask (:func:`frame_mask`).

SAM's decoder runs through ONNX Runtime when the model has one (CPU, see
:mod:`.onnxdecoder`), else through torch; SAM 2 keeps its own path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

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
    started = time.perf_counter()
    multimask = prompt.box is None and len(prompt.points) == 1
    if model.sam2:
        result = _decode_sam2(model, embedding, prompt, multimask)
    else:
        h_in, w_in = embedding.input_size
        if model.onnx_decoder is not None:
            coords, labels = prompt_points(prompt, (h_in, w_in))
            features = np.ascontiguousarray(embedding.features.float().cpu().numpy())
            masks, ious = model.onnx_decoder.run(features, coords, labels)
            best = 1 + int(ious[1:].argmax()) if multimask else 0  # token 0: the single-mask answer
            logits, score = masks[best], float(ious[best])
        else:
            logits, score = _torch_mask(model, embedding, prompt, (h_in, w_in), multimask)
        mask = frame_mask(
            logits, (h_in, w_in), model.img_size, (prompt.height, prompt.width), model.mask_threshold
        )
        result = MaskResult(mask=mask, score=score)
    metrics.SAM_DECODE_SECONDS.observe(time.perf_counter() - started)
    return result


def prompt_points(
    prompt: ObjectPrompt, input_hw: tuple[int, int]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The prompt as SAM's point tokens in encoder-input pixels: clicks (labels 1 and 0), a box's
    corners (2 and 3), and without a box the padding point (-1) SAM's prompt encoder adds."""
    h_in, w_in = input_hw
    scale = np.array([w_in / prompt.width, h_in / prompt.height])
    coords: list[npt.NDArray[np.float64]] = [
        np.asarray(prompt.points, dtype=np.float64).reshape(-1, 2) * scale - 0.5
    ]
    labels: list[npt.NDArray[np.float64]] = [np.asarray(prompt.labels, dtype=np.float64).reshape(-1)]
    if prompt.box is not None:
        coords.append(prompt.box.reshape(2, 2) * scale - 0.5)
        labels.append(np.array([2.0, 3.0]))
    else:
        coords.append(np.zeros((1, 2)))
        labels.append(np.array([-1.0]))
    return np.concatenate(coords).astype(np.float32), np.concatenate(labels).astype(np.float32)


def _torch_mask(
    model: SamModel, embedding: Embedding, prompt: ObjectPrompt, input_hw: tuple[int, int], multimask: bool
) -> tuple[npt.NDArray[np.float32], float]:
    """The best mask's low-res logits and predicted IoU, through segment-anything's modules."""
    import torch

    net = model.net
    points, boxes = torch_prompt(prompt, input_hw, model.device)
    with torch.inference_mode(), torch_threads(model.decoder_threads):
        sparse, dense = net.prompt_encoder(points=points, boxes=boxes, masks=None)
        low_res, iou = net.mask_decoder(
            image_embeddings=embedding.features.float(),
            image_pe=net.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )
        best = int(iou[0].argmax())
        return low_res[0, best].float().cpu().numpy(), float(iou[0, best])


def torch_prompt(prompt: ObjectPrompt, input_hw: tuple[int, int], device: str) -> tuple[Any, Any]:
    """segment-anything's (points, boxes) arguments for the prompt, in encoder-input pixels."""
    import torch

    h_in, w_in = input_hw
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
    return points, boxes


def frame_mask(
    logits: npt.NDArray[np.float32],
    input_hw: tuple[int, int],
    img_size: int,
    frame_hw: tuple[int, int],
    threshold: float,
) -> BoolMask:
    """The mask at the frame's size from SAM's low-res logits, sampled once.

    SAM's two bilinear steps (low-res -> encoder square, crop, -> frame) are affine maps of
    coordinates: composed, frame pixel x samples low-res x' = a (x + 1/2) - 1/2 with
    a = w_in / img_size * low / W. Only the frame window whose samples can reach above
    the threshold (the low-res pixels above it, one more each side) is computed.
    """
    out = np.zeros(frame_hw, dtype=bool)
    above = logits > threshold
    if not above.any():
        return out
    low_h, low_w = logits.shape
    (h_in, w_in), (height, width) = input_hw, frame_hw
    ay, ax = h_in / img_size * low_h / height, w_in / img_size * low_w / width
    rows, cols = np.flatnonzero(above.any(axis=1)), np.flatnonzero(above.any(axis=0))
    y0, y1 = _window(rows[0], rows[-1], ay, height)
    x0, x1 = _window(cols[0], cols[-1], ax, width)
    # Destination pixel (x, y) of the window samples the logits at M @ (x, y, 1).
    matrix = np.array([[ax, 0.0, ax * (x0 + 0.5) - 0.5], [0.0, ay, ay * (y0 + 0.5) - 0.5]], dtype=np.float64)
    window = cv2.warpAffine(
        logits.astype(np.float32, copy=False),
        matrix,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    out[y0:y1, x0:x1] = window > threshold
    return out


def _window(first: int, last: int, a: float, size: int) -> tuple[int, int]:
    """The frame pixels whose sample x' = a (x + 1/2) - 1/2 falls in (first - 1, last + 1)."""
    lo = int(np.floor((first - 1 + 0.5) / a - 0.5))
    hi = int(np.ceil((last + 1 + 0.5) / a - 0.5)) + 1
    return max(lo, 0), min(hi, size)


def _decode_sam2(model: SamModel, embedding: Embedding, prompt: ObjectPrompt, multimask: bool) -> MaskResult:
    """SAM 2: its own prompt encoding and decoder, the logits straight to the frame (the image
    fills the square)."""
    import torch
    import torch.nn.functional as F

    net = model.net
    points, boxes = torch_prompt(prompt, embedding.input_size, model.device)
    with torch.inference_mode(), torch_threads(model.decoder_threads):
        low_res, iou = sam2.decode(net, embedding.features, embedding.high_res, points, boxes, multimask)
        best = int(iou[0].argmax())
        frame = low_res[:, best : best + 1].float()
        if frame.shape[-2:] != (prompt.height, prompt.width):
            frame = F.interpolate(frame, (prompt.height, prompt.width), mode="bilinear", align_corners=False)
        mask = (frame[0, 0] > model.mask_threshold).cpu().numpy()
        score = float(iou[0, best])
    return MaskResult(mask=mask, score=score)
