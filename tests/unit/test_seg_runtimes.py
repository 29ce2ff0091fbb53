"""Exported segmentation runtimes (ONNX Runtime, OpenVINO) answer as torch does, and the
background export switches a served model over, or leaves torch serving with a reason."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labelstack_backend.geometry import CropMask
from labelstack_backend.regions import Detection
from labelstack_backend.yolo.export import Exports, ExportSpec, cached, export, load_exported
from labelstack_backend.yolo.model import SegmentationModel, coco_names
from labelstack_backend.yolo.runtime import Choice, choose
from labelstack_common.contract import Runtime

IMGSZ = 320
CONF = 0.3
BIAS = -8.0
LOGIT_SCALE = 3.0
SCORE_SLACK = 0.02  # a detection this close to the threshold may fall on either side of it
RUNTIMES = [
    pytest.param(
        r,
        marks=pytest.mark.skipif(importlib.util.find_spec(p) is None, reason=f"{p} is not installed"),
    )
    for r, p in ((Runtime.ONNX, "onnxruntime"), (Runtime.OPENVINO, "openvino"))
]


def seeded_model() -> SegmentationModel:
    """A seeded random YOLOv8n-seg made to see: a random model's activations fade to nothing
    and all its scores tie, so its batch norms are set from the test images (their statistics,
    as one training step would), and its class logits spread around a bias that leaves a few
    dozen objects per image."""
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    yolo = YOLO("yolov8n-seg.yaml", task="segment")
    batch = torch.stack(
        [
            torch.from_numpy(np.asarray(im.resize((IMGSZ, IMGSZ)))).permute(2, 0, 1).float() / 255
            for im in fixed_images()
        ]
    )
    for module in yolo.model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 1.0
    yolo.model.train()
    with torch.no_grad():
        yolo.model(batch)
        for branch in yolo.model.model[-1].cv3:
            branch[-1].weight.mul_(LOGIT_SCALE)
            branch[-1].bias.fill_(BIAS)
    yolo.model.eval()
    yolo.model.names = coco_names()
    return SegmentationModel(
        yolo, "seeded", "cpu", False, IMGSZ
    )  # before any predict: ultralytics serves a copy


def fixed_images() -> list[Image.Image]:
    """Smooth structured images of a few sizes (noise alone gives a random model nothing to see)."""
    rng = np.random.default_rng(7)
    images = []
    for h, w in [(240, 320), (320, 240), (200, 300), (240, 320), (480, 640), (333, 500)]:
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack(
            [np.sin(xx / rng.uniform(8, 40) + c) * np.cos(yy / rng.uniform(8, 40)) for c in range(3)], -1
        )
        img = ((base + 1) * 127.5).astype(np.uint8)
        for _ in range(4):
            x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
            img[y0 : y0 + int(rng.integers(20, 80)), x0 : x0 + int(rng.integers(20, 80))] = rng.integers(
                0, 255, 3
            )
        images.append(Image.fromarray(img))
    return images


def mask_iou(a: CropMask | None, b: CropMask | None) -> float:
    if a is None or b is None:
        return 1.0 if a is None and b is None else 0.0
    fa, fb = a.full(), b.full()
    union = np.logical_or(fa, fb).sum()
    return float(np.logical_and(fa, fb).sum() / union) if union else 1.0


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 1.0


def assert_agree(ref: list[Detection], got: list[Detection]) -> int:
    """Every torch detection clear of the threshold has its twin: same class, score within 0.01,
    box IoU >= 0.95, mask IoU >= 0.98; and no extra detection clear of the threshold. Returns
    how many were matched."""
    unmatched = list(got)
    matched = 0
    for d in ref:
        twin = max(
            (g for g in unmatched if g.class_id == d.class_id),
            key=lambda g: box_iou(d.box, g.box),
            default=None,
        )
        if twin is None or box_iou(d.box, twin.box) < 0.95:
            assert d.score < CONF + SCORE_SLACK, f"torch's {d} has no twin"
            continue
        unmatched.remove(twin)
        assert abs(twin.score - d.score) <= 0.01, (d, twin)
        assert mask_iou(d.mask, twin.mask) >= 0.98, (mask_iou(d.mask, twin.mask), d.score, d.box)
        matched += 1
    assert all(g.score < CONF + SCORE_SLACK for g in unmatched), unmatched
    return matched


@pytest.fixture(scope="module")
def torch_model() -> SegmentationModel:
    return seeded_model()


@pytest.fixture(scope="module")
def reference(torch_model: SegmentationModel) -> list[list[Detection]]:
    return torch_model.detect(fixed_images(), conf=CONF)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_exported_model_agrees_with_torch(
    runtime: Runtime,
    torch_model: SegmentationModel,
    reference: list[list[Detection]],
    tmp_path: Path,
) -> None:
    spec = ExportSpec(runtime, IMGSZ, False, "cpu")
    path = export(torch_model.yolo, tmp_path, spec)
    assert cached(tmp_path, spec) == path
    exported = load_exported(path, torch_model)
    got = exported.detect(fixed_images(), conf=CONF)
    matched = sum(assert_agree(r, g) for r, g in zip(reference, got, strict=True))
    assert matched >= 20  # the test set is not vacuous
    assert all(any(d.mask is not None for d in r) for r in reference)


def test_background_export_switches_the_model_and_keeps_its_answers(
    torch_model: SegmentationModel, reference: list[list[Detection]], tmp_path: Path
) -> None:
    model = seeded_model()
    exports = Exports(choose(Runtime.AUTO, "cpu"), imgsz=IMGSZ, half=False, device="cpu")
    assert exports.enabled
    exports.schedule(model, tmp_path / "exports")
    exports.wait()
    assert model.runtime == exports.spec.runtime.value
    assert any((tmp_path / "exports").rglob("model*"))
    got = model.detect(fixed_images(), conf=CONF)
    assert sum(assert_agree(r, g) for r, g in zip(reference, got, strict=True)) >= 20


def test_a_failed_export_leaves_torch_serving_and_says_why(
    torch_model: SegmentationModel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "exports"
    blocker.write_text("a file where the export folder should be")
    exports = Exports(Choice(Runtime.ONNX), imgsz=IMGSZ, half=False, device="cpu")
    model = seeded_model()
    with caplog.at_level(logging.ERROR):
        exports.run(model, model.yolo, blocker)
    assert model.runtime == "torch"
    assert "torch serves" in caplog.text and "onnx" in caplog.text
    assert "seeded" in exports.failures


@pytest.mark.parametrize(
    ("requested", "device", "present", "expected", "why"),
    [
        (Runtime.AUTO, "cpu", {"openvino", "onnx", "onnxruntime"}, Runtime.ONNX, ""),
        (Runtime.AUTO, "cpu", {"openvino", "onnx"}, Runtime.OPENVINO, ""),
        (Runtime.AUTO, "cpu", set(), Runtime.TORCH, "neither"),
        (Runtime.AUTO, "cuda:0", {"openvino", "onnx", "onnxruntime", "tensorrt"}, Runtime.TORCH, ""),
        (Runtime.TORCH, "cpu", {"openvino"}, Runtime.TORCH, ""),
        (Runtime.ONNX, "cpu", {"onnx"}, Runtime.TORCH, "onnxruntime"),
        (Runtime.OPENVINO, "cuda:0", {"openvino"}, Runtime.OPENVINO, ""),
        (Runtime.TENSORRT, "cpu", {"onnx", "tensorrt"}, Runtime.TORCH, "CUDA"),
        (Runtime.TENSORRT, "cuda:0", {"onnx"}, Runtime.TORCH, "tensorrt"),
    ],
)
def test_runtime_choice(
    requested: Runtime, device: str, present: set[str], expected: Runtime, why: str
) -> None:
    choice = choose(requested, device, present.__contains__)
    assert choice.runtime is expected
    assert (why in choice.reason) if why else choice.reason == ""


def test_no_export_on_a_near_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labelstack_backend.yolo import export as export_module

    monkeypatch.setattr(export_module, "free_bytes", lambda folder: 2**20)
    exports = Exports(Choice(Runtime.ONNX), imgsz=IMGSZ, half=False, device="cpu")
    model = seeded_model()
    exports.schedule(model, tmp_path / "exports")
    exports.wait()
    assert model.runtime == "torch" and "1 MiB free" in exports.failures["seeded"]
    assert not (tmp_path / "exports").exists()
