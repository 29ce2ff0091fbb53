"""SAM's prompt encoder and mask decoder through ONNX Runtime, for clicks on a CPU.

The graph is segment-anything's own ONNX export (``SamOnnxModel``'s point and mask embedding),
cut before its mask selection and upsampling: it answers the four low-resolution masks and
their predicted IoUs, and :mod:`.decode` picks one and upsamples it once, as for torch. It is
fed the same cached embeddings as torch. MobileSAM and the ViT SAMs share this decoder; SAM 2's
differs and stays on torch.

The export is made once per model version and kept under ``MODEL_DIR/exports/<version>/``.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import numpy.typing as npt

from labelstack_backend.errors import ModelLoadError
from labelstack_common.contract import Runtime

log = logging.getLogger(__name__)

OPSET = 17
FILE_NAME = "sam_decoder.onnx"


def _graph(net: Any) -> Any:
    """The decoder as one traceable module: (embeddings, point coords, point labels) ->
    (low-res mask logits of every mask token, their predicted IoUs)."""
    import torch
    from segment_anything.modeling.common import LayerNorm2d
    from segment_anything.utils.onnx import SamOnnxModel

    class Parts(torch.nn.Module):
        """Copies of the prompt encoder and mask decoder, without the image encoder's weights."""

        def __init__(self) -> None:
            super().__init__()
            self.prompt_encoder = copy.deepcopy(net.prompt_encoder)
            self.mask_decoder = copy.deepcopy(net.mask_decoder)
            self.image_encoder = SimpleNamespace(img_size=int(net.image_encoder.img_size))
            self.mask_threshold = float(getattr(net, "mask_threshold", 0.0))

    class DecoderGraph(SamOnnxModel):  # type: ignore[misc]
        def forward(self, embeddings: torch.Tensor, coords: torch.Tensor, labels: torch.Tensor) -> Any:
            sparse = self._embed_points(coords, labels)
            dense = self.model.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
            dense = dense.expand(1, -1, *embeddings.shape[-2:])
            return self.model.mask_decoder.predict_masks(
                image_embeddings=embeddings,
                image_pe=self.model.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
            )

    parts = Parts()
    # ultralytics' LayerNorm2d (MobileSAM) reads its shape at run time, which the ONNX tracer
    # cannot export; segment-anything's computes the same with static shapes.
    for owner in list(parts.modules()):
        for name, child in list(owner.named_children()):
            if type(child).__name__ == "LayerNorm2d" and not isinstance(child, LayerNorm2d):
                norm: Any = child
                twin = LayerNorm2d(int(norm.weight.shape[0]), eps=float(norm.eps))
                twin.load_state_dict(norm.state_dict())
                setattr(owner, name, twin)
    return DecoderGraph(parts, return_single_mask=False).eval()


def export_decoder(net: Any, path: Path) -> Path:
    """Write the decoder graph of ``net`` (a SAM or MobileSAM) to ``path``; kept when present."""
    if path.is_file():
        return path
    import torch

    pe = net.prompt_encoder
    dim = int(pe.embed_dim)
    grid = tuple(int(s) for s in pe.image_embedding_size)
    inputs = (
        torch.zeros(1, dim, *grid),
        torch.zeros(1, 2, 2),
        torch.tensor([[1.0, -1.0]]),
    )
    scratch: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=".export-", suffix=".onnx", delete=False
        ) as tmp:
            scratch = Path(tmp.name)
        torch.onnx.export(
            _graph(net),
            inputs,
            str(scratch),
            input_names=["embeddings", "coords", "labels"],
            output_names=["masks", "iou"],
            dynamic_axes={"coords": {1: "points"}, "labels": {1: "points"}},
            opset_version=OPSET,
            dynamo=False,
        )
        scratch.replace(path)
    except Exception as exc:
        raise ModelLoadError(f"could not export SAM's decoder to ONNX: {type(exc).__name__}: {exc}") from None
    finally:
        if scratch is not None:
            scratch.unlink(missing_ok=True)
    return path


class OnnxDecoder:
    """One ONNX Runtime session; ``run`` is thread-safe (concurrent clicks share it)."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(threads, 1)
        options.inter_op_num_threads = 1
        # Idle threads sleep rather than spin: a spinning pool loses its gain as soon as another
        # click or the encoder wants the cores (MobileSAM, 2 cores: 19 ms on 2 threads, 32 on 1).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelLoadError(
                f"could not load SAM's ONNX decoder {path}: {type(exc).__name__}: {exc}"
            ) from None
        self.path = path

    def run(
        self,
        embeddings: npt.NDArray[np.float32],
        coords: npt.NDArray[np.float32],
        labels: npt.NDArray[np.float32],
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """(masks (tokens, h, w), ious (tokens,)) for one object's points (labels 0, 1, 2, 3, -1)."""
        masks, iou = self.session.run(
            None, {"embeddings": embeddings, "coords": coords[None], "labels": labels[None]}
        )
        return masks[0], iou[0]


def wanted(requested: Runtime, device: str, is_sam2: bool) -> tuple[bool, str]:
    """Whether clicks decode through ONNX Runtime, and if not, why (empty: torch was asked
    for, or the device is a GPU, where torch stays)."""
    if requested is Runtime.TORCH or device != "cpu":
        return False, ""
    if is_sam2:
        return False, "SAM 2's decoder has no ONNX export here"
    lacking = [p for p in ("onnx", "onnxruntime") if importlib.util.find_spec(p) is None]
    if lacking:
        return False, f"{', '.join(lacking)} not installed"
    return True, ""


def load_decoder(net: Any, folder: Path, threads: int) -> OnnxDecoder:
    return OnnxDecoder(export_decoder(net, folder / FILE_NAME), threads)
