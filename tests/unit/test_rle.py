from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from label_studio_sdk.converter.brush import decode_rle as sdk_decode
from label_studio_sdk.converter.brush import mask2rle

from labelstack_backend import rle

shapes = st.tuples(st.integers(1, 40), st.integers(1, 40))


@settings(max_examples=150, deadline=None)
@given(arrays(np.uint8, shapes, elements=st.sampled_from([0, 255])))
def test_binary_masks_encode_exactly_like_label_studio_sdk(mask):
    assert rle.encode(mask).tolist() == mask2rle(mask)


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, shapes))
def test_any_uint8_mask_encodes_like_the_sdk_and_round_trips(mask):
    encoded = rle.encode(mask).tolist()
    assert encoded == mask2rle(mask)
    np.testing.assert_array_equal(rle.decode(encoded, *mask.shape), mask)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 70_000), st.integers(0, 69_999))
def test_long_runs_split_like_the_sdk(rows, cols, start):
    """Runs over 65536 values (16384 pixels) take the SDK's chunked form."""
    mask = np.zeros((rows, cols), np.uint8)
    mask.reshape(-1)[min(start, mask.size - 1) :] = 255
    assert rle.encode(mask).tolist() == mask2rle(mask)


def test_blob_and_noise_at_1024_match_the_sdk():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:1024, :1024]
    blob = (((yy - 500) ** 2 + (xx - 400) ** 2) < 300**2).astype(np.uint8) * 255
    noise = (rng.random((1024, 1024)) > 0.5).astype(np.uint8) * 255
    for mask in (blob, noise):
        ours = rle.encode(mask)
        assert ours.tolist() == mask2rle(mask)
        np.testing.assert_array_equal(rle.decode(ours, 1024, 1024), mask)


def test_decoder_agrees_with_the_sdk_decoder():
    mask = np.zeros((9, 13), np.uint8)
    mask[2:7, 3:10] = 255
    encoded = mask2rle(mask)
    sdk = np.reshape(sdk_decode(encoded), (9, 13, 4))[:, :, 3]
    np.testing.assert_array_equal(rle.decode(encoded, 9, 13), sdk)


def test_bool_masks_become_255():
    mask = np.array([[True, False], [False, True]])
    np.testing.assert_array_equal(rle.decode(rle.encode(mask), 2, 2), mask.astype(np.uint8) * 255)


def test_decode_rejects_wrong_size_and_truncated_data():
    encoded = rle.encode(np.zeros((4, 4), np.uint8)).tolist()
    with pytest.raises(ValueError, match="expected"):
        rle.decode(encoded, 5, 5)
    with pytest.raises(ValueError):
        rle.decode(encoded[:6], 4, 4)


def test_rejects_non_2d_and_out_of_range():
    with pytest.raises(ValueError):
        rle.encode(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ValueError):
        rle.encode(np.full((2, 2), 300, np.int64))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 50), st.integers(1, 60_000), st.data())
def test_small_blocks_and_split_runs_give_the_same_bytes(rows, cols, data):
    """Force tiny packing blocks so multi-block packing and split-run overflow are exercised."""
    mask = np.zeros((rows, cols), np.uint8)
    cuts = sorted(data.draw(st.lists(st.integers(0, rows * cols), max_size=12)))
    for i, c in enumerate(cuts):
        mask.reshape(-1)[c:] = 255 if i % 2 == 0 else 0
    original = rle._BLOCK
    rle._BLOCK = 3
    try:
        assert rle.encode(mask).tolist() == mask2rle(mask)
    finally:
        rle._BLOCK = original
