"""Building and loading SAM: the tiny test model, the real builders, checkpoints, the start-up rules."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from labelstack_backend.errors import ModelLoadError
from labelstack_backend.sam.decode import decode
from labelstack_backend.sam.embeddings import Embedding
from labelstack_backend.sam.model import (
    EncoderGate,
    SamModel,
    build_net,
    sam_weights,
    torch_threads,
    use_bf16,
)
from labelstack_backend.sam.prompts import parse_context
from tests.support.sam import keypoint, write_image
from tests.support.sam_models import sam_settings


def model_of(net: Any, **kwargs: Any) -> SamModel:
    return SamModel(net, model_type="test", version="v", device="cpu", bf16=kwargs.get("bf16", False))


def test_tiny_sam_is_built_from_config_and_encodes_in_its_geometry(tiny_net: Any, tmp_path: Path) -> None:
    model = model_of(tiny_net)
    assert model.img_size == 256
    image = Image.open(write_image(tmp_path / "a.jpg", (96, 64)))
    emb = model.encode(image)
    assert tuple(emb.features.shape) == (1, 32, 16, 16)
    assert emb.input_size == (171, 256)  # long side to the encoder's size, SAM's rounding
    assert emb.original_size == (64, 96)
    assert emb.nbytes == 32 * 16 * 16 * 4


def test_random_demo_weights_are_the_same_in_every_process() -> None:
    a, b = build_net("tiny"), build_net("tiny")
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_bf16_encoder_runs_and_stays_close_to_fp32(tiny_net: Any, tmp_path: Path) -> None:
    image = Image.open(write_image(tmp_path / "a.jpg"))
    fp32 = model_of(tiny_net).encode(image).features
    bf16 = model_of(tiny_net, bf16=True).encode(image).features.float()
    assert bf16.shape == fp32.shape
    assert torch.allclose(bf16, fp32, atol=0.1, rtol=0.1)


def test_bf16_defaults_on_for_cuda_only() -> None:
    assert use_bf16("cpu", None) is False
    assert use_bf16("cpu", True) is True


def _decode_on(net: Any, grid: int, channels: int = 256) -> tuple[np.ndarray, float]:
    """Decode one click from a random embedding of the right shape (encoding on CPU is too slow)."""
    model = model_of(net)
    emb = Embedding(torch.randn(1, channels, grid, grid), input_size=(768, 1024), original_size=(600, 800))
    ctx = parse_context({"result": [keypoint(50, 50, 800, 600)]})
    result = decode(model, emb, ctx.objects(800, 600)[0])
    return result.mask, result.score


def test_the_real_vit_b_builder_makes_a_sam_our_decoder_serves() -> None:
    net = build_net("vit_b")
    enc = net.image_encoder
    assert (enc.img_size, enc.patch_embed.proj.out_channels, len(enc.blocks)) == (1024, 768, 12)
    assert sum(p.numel() for p in net.parameters()) > 90_000_000
    mask, _ = _decode_on(net, 64)
    assert mask.shape == (600, 800)


def test_the_mobile_sam_builder_makes_a_sam_our_decoder_serves() -> None:
    net = build_net("mobile_sam")
    assert type(net.image_encoder).__name__ == "TinyViT"
    assert net.image_encoder.img_size == 1024
    mask, _ = _decode_on(net, 64)
    assert mask.shape == (600, 800)


def test_checkpoint_round_trip(tiny_net: Any, tmp_path: Path) -> None:
    ckpt = tmp_path / "tiny.pth"
    torch.save(build_net("tiny", seed=7).state_dict(), ckpt)
    loaded = build_net("tiny", ckpt)
    for pa, pb in zip(build_net("tiny", seed=7).parameters(), loaded.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not all(
        torch.equal(pa, pb) for pa, pb in zip(tiny_net.parameters(), loaded.parameters(), strict=True)
    )


def test_nested_model_key_is_accepted(tmp_path: Path) -> None:
    ckpt = tmp_path / "mobile.pt"
    torch.save({"model": build_net("tiny", seed=3).state_dict()}, ckpt)
    build_net("tiny", ckpt)


def test_a_checkpoint_of_another_architecture_fails_clearly(tmp_path: Path) -> None:
    ckpt = tmp_path / "other.pth"
    torch.save({"layer.weight": torch.zeros(2)}, ckpt)
    with pytest.raises(ModelLoadError, match="does not fit the tiny architecture"):
        build_net("tiny", ckpt)


def test_an_unreadable_checkpoint_fails_clearly(tmp_path: Path) -> None:
    ckpt = tmp_path / "junk.pth"
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError, match="could not read SAM checkpoint"):
        build_net("tiny", ckpt)


def test_weights_rules_at_start(tmp_path: Path) -> None:
    demo = sam_weights(sam_settings(LABELSTACK_SAM_MODEL_TYPE="vit_h"))
    assert (demo.checkpoint, demo.version) == (None, "sam-vit_h-random")
    with pytest.raises(ModelLoadError, match=r"no SAM weights.*LABELSTACK_DEMO_MODEL=1"):
        sam_weights(sam_settings(LABELSTACK_DEMO_MODEL="0"))
    with pytest.raises(ModelLoadError, match="does not exist"):
        sam_weights(sam_settings(LABELSTACK_SAM_CHECKPOINT=str(tmp_path / "missing.pth")))
    with pytest.raises(ModelLoadError, match="is not one of"):
        sam_weights(sam_settings(LABELSTACK_SAM_MODEL_TYPE="vit_x"))
    ckpt = tmp_path / "w.pth"
    ckpt.write_bytes(b"weights")
    real = sam_weights(sam_settings(LABELSTACK_SAM_CHECKPOINT=str(ckpt), LABELSTACK_SAM_MODEL_TYPE="VIT_L"))
    assert real.model_type == "vit_l"
    assert real.checkpoint == ckpt
    assert real.version.startswith("sam-vit_l-") and real.version != "sam-vit_l-random"


def test_encoder_gate_lets_interactive_callers_go_before_background_ones() -> None:
    gate = EncoderGate()
    order: list[str] = []
    holding = threading.Event()

    def run(name: str, background: bool) -> None:
        with gate.hold(background):
            order.append(name)

    with gate.hold():
        holding.set()
        bg = threading.Thread(target=run, args=("background", True))
        bg.start()
        time.sleep(0.05)
        fg = threading.Thread(target=run, args=("interactive", False))
        fg.start()
        time.sleep(0.05)
    bg.join(5)
    fg.join(5)
    assert order == ["interactive", "background"]


def test_decoder_threads_apply_to_the_decoding_thread_only() -> None:
    """In a request thread (as under gunicorn), the setting is that thread's alone."""
    before = torch.get_num_threads()
    inside = threading.Event()
    leave = threading.Event()
    seen: list[int] = []

    def request_thread() -> None:
        with torch_threads(1):
            seen.append(torch.get_num_threads())
            inside.set()
            leave.wait(5)
        seen.append(torch.get_num_threads())

    worker = threading.Thread(target=request_thread)
    worker.start()
    inside.wait(5)
    assert torch.get_num_threads() == before  # this thread is not affected meanwhile
    leave.set()
    worker.join()
    assert seen == [1, before]


def test_a_cpu_model_decodes_on_its_decoder_threads(tiny_net: Any) -> None:
    model = SamModel(tiny_net, model_type="t", version="v", device="cpu", bf16=False, decoder_threads=1)
    assert (model.encoder_threads, model.decoder_threads) == (torch.get_num_threads(), 1)
