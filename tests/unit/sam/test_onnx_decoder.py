"""SAM's click decoding through ONNX Runtime, and the one-step upsampling, answer as
segment-anything's own torch path does (mask IoU >= 0.98) on random models and fixed clicks."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labelstack_backend.sam import onnxdecoder
from labelstack_backend.sam.decode import decode, frame_mask
from labelstack_backend.sam.embeddings import Embedding
from labelstack_backend.sam.model import SamModel, build_net
from labelstack_backend.sam.prompts import ObjectPrompt
from labelstack_common.contract import Runtime
from tests.support.sam_models import sam_settings

needs_ort = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime is not installed"
)

WIDTH, HEIGHT = 1024, 768


def prompts() -> list[ObjectPrompt]:
    """One click, a click and a negative one, a box, a box with a click: in a 1024x768 frame."""

    def prompt(points: list[tuple[float, float]], labels: list[int], box: list[float] | None) -> ObjectPrompt:
        return ObjectPrompt(
            points=np.array(points, dtype=np.float64).reshape(-1, 2),
            labels=np.array(labels, dtype=np.int64),
            box=None if box is None else np.array(box, dtype=np.float64),
            label=None,
            width=WIDTH,
            height=HEIGHT,
        )

    return [
        prompt([(300.5, 200.25)], [1], None),
        prompt([(700.0, 500.0)], [1], None),
        prompt([(512.0, 384.0), (600.0, 420.0)], [1, 0], None),
        prompt([], [], [200.0, 150.0, 640.0, 560.0]),
        prompt([(420.0, 300.0)], [1], [100.0, 80.0, 900.0, 700.0]),
    ]


def reference(model: SamModel, embedding: Embedding, prompt: ObjectPrompt) -> tuple[np.ndarray, float]:
    """segment-anything's path, as decode ran before: its prompt encoder and mask decoder,
    then logits -> encoder square -> crop -> frame."""
    net = model.net
    h_in, w_in = embedding.input_size
    scale = np.array([w_in / prompt.width, h_in / prompt.height])
    points = None
    if len(prompt.points):
        coords = torch.as_tensor(prompt.points * scale - 0.5, dtype=torch.float32)
        points = (coords[None], torch.as_tensor(prompt.labels)[None])
    boxes = None
    if prompt.box is not None:
        boxes = torch.as_tensor((prompt.box.reshape(2, 2) * scale - 0.5).reshape(1, 4), dtype=torch.float32)
    multimask = prompt.box is None and len(prompt.points) == 1
    with torch.inference_mode():
        sparse, dense = net.prompt_encoder(points=points, boxes=boxes, masks=None)
        low_res, iou = net.mask_decoder(
            image_embeddings=embedding.features,
            image_pe=net.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )
        best = int(iou[0].argmax())
        square = F.interpolate(
            low_res[:, best : best + 1], (model.img_size,) * 2, mode="bilinear", align_corners=False
        )
        frame = F.interpolate(
            square[..., :h_in, :w_in], (HEIGHT, WIDTH), mode="bilinear", align_corners=False
        )
    return (frame[0, 0] > model.mask_threshold).numpy(), float(iou[0, best])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def random_embedding(model: SamModel, seed: int) -> Embedding:
    pe = model.net.prompt_encoder
    shape = (1, int(pe.embed_dim), *(int(s) for s in pe.image_embedding_size))
    features = torch.from_numpy(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))
    h_in, w_in = model.input_size(HEIGHT, WIDTH)
    return Embedding(features=features, input_size=(h_in, w_in), original_size=(HEIGHT, WIDTH))


@pytest.fixture(scope="module", params=["tiny", "mobile_sam", "vit_b"])
def net(request: pytest.FixtureRequest) -> Any:
    return build_net(request.param)


def sam_model(net: Any) -> SamModel:
    return SamModel(net, model_type="t", version="v", device="cpu", bf16=False, decoder_threads=1)


@pytest.mark.parametrize("runtime", [pytest.param("onnx", marks=needs_ort), "torch"])
def test_clicks_answer_as_segment_anything_does(net: Any, runtime: str, tmp_path: Path) -> None:
    model = sam_model(net)
    if runtime == "onnx":
        model.onnx_decoder = onnxdecoder.load_decoder(net, tmp_path, threads=1)
    compared = 0
    for seed in range(3):
        embedding = random_embedding(model, seed)
        for prompt in prompts():
            want, want_score = reference(model, embedding, prompt)
            got = decode(model, embedding, prompt)
            assert got.mask.shape == (HEIGHT, WIDTH)
            assert iou(want, got.mask) >= 0.98, (seed, prompt)
            assert got.score == pytest.approx(want_score, abs=1e-3)
            compared += int(want.any())
    assert compared >= 5  # not all empty masks


@needs_ort
def test_the_export_is_made_once_and_kept(tiny_net: Any, tmp_path: Path) -> None:
    first = onnxdecoder.load_decoder(tiny_net, tmp_path, threads=1)
    stamp = first.path.stat().st_mtime_ns
    again = onnxdecoder.load_decoder(tiny_net, tmp_path, threads=1)
    assert again.path == first.path and again.path.stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    ("requested", "device", "is_sam2", "on", "why"),
    [
        (Runtime.AUTO, "cpu", False, True, ""),
        (Runtime.ONNX, "cpu", False, True, ""),
        (Runtime.OPENVINO, "cpu", False, True, ""),
        (Runtime.TORCH, "cpu", False, False, ""),
        (Runtime.AUTO, "cuda:0", False, False, ""),
        (Runtime.AUTO, "cpu", True, False, "SAM 2"),
    ],
)
@needs_ort
def test_which_clicks_decode_on_onnx(
    requested: Runtime, device: str, is_sam2: bool, on: bool, why: str
) -> None:
    got_on, got_why = onnxdecoder.wanted(requested, device, is_sam2)
    assert got_on is on
    assert (why in got_why) if why else got_why == ""


@needs_ort
def test_a_loaded_model_decodes_on_onnx_and_a_failed_export_leaves_torch(
    tiny_net: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = sam_model(tiny_net)
    model.use_onnx_decoder(sam_settings(MODEL_DIR=str(tmp_path), LABELSTACK_RUNTIME="auto"))
    assert model.onnx_decoder is not None
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where MODEL_DIR should be")
    other = sam_model(tiny_net)
    with caplog.at_level(logging.ERROR):
        other.use_onnx_decoder(sam_settings(MODEL_DIR=str(blocked), LABELSTACK_RUNTIME="onnx"))
    assert other.onnx_decoder is None
    assert "runs on torch" in caplog.text


def test_frame_mask_samples_only_where_the_mask_can_be() -> None:
    logits = np.full((16, 16), -5.0, dtype=np.float32)
    logits[4:8, 2:6] = 5.0
    mask = frame_mask(logits, (48, 64), 64, (96, 128), 0.0)
    want = F.interpolate(
        F.interpolate(torch.from_numpy(logits)[None, None], (64, 64), mode="bilinear", align_corners=False)[
            ..., :48, :64
        ],
        (96, 128),
        mode="bilinear",
        align_corners=False,
    )[0, 0].numpy()
    assert iou(mask, want > 0) >= 0.98
    assert not frame_mask(np.full((16, 16), -1.0, dtype=np.float32), (48, 64), 64, (96, 128), 0.0).any()


needs_openvino = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="openvino is not installed"
)


@needs_openvino
@pytest.mark.parametrize("kind", ["tiny", "mobile_sam"])
def test_the_openvino_encoder_gives_torchs_embedding_and_masks(kind: str, tmp_path: Path) -> None:
    from PIL import Image

    from labelstack_backend.sam import ovencoder

    net = build_net(kind)
    torch_model, ov_model = sam_model(net), sam_model(net)
    ov_model.ov_encoder = ovencoder.load_encoder(net, tmp_path, threads=0)
    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 255, (HEIGHT // 4, WIDTH // 4, 3), dtype=np.uint8)).resize(
        (WIDTH, HEIGHT)
    )
    want, got = torch_model.encode(image), ov_model.encode(image)
    assert got.input_size == want.input_size
    assert float((got.features - want.features).abs().max()) <= 1e-3 * max(
        1.0, float(want.features.abs().max())
    )
    for prompt in prompts():
        a, b = decode(torch_model, want, prompt), decode(ov_model, got, prompt)
        assert iou(a.mask, b.mask) >= 0.98
    assert (tmp_path / ovencoder.FOLDER / ovencoder.XML).is_file()


def test_the_openvino_encoder_is_asked_for_on_cpu_only() -> None:
    from labelstack_backend.sam import ovencoder

    present = importlib.util.find_spec("openvino") is not None
    assert ovencoder.wanted(Runtime.AUTO, "cpu", False) is present
    assert ovencoder.wanted(Runtime.OPENVINO, "cpu", False) is present
    assert not ovencoder.wanted(Runtime.ONNX, "cpu", False)
    assert not ovencoder.wanted(Runtime.TORCH, "cpu", False)
    assert not ovencoder.wanted(Runtime.AUTO, "cuda:0", False)
    assert not ovencoder.wanted(Runtime.AUTO, "cpu", True)
