"""rle.encode_window: the brush RLE of a mask given as its window, byte for byte the
RLE of the whole mask, wherever the window lies (issue 21: no whole image per region)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from labelstack_backend import rle


@st.composite
def placed(draw: st.DrawFn) -> tuple[np.ndarray, int, int, int, int]:
    height, width = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    h, w = draw(st.integers(0, height)), draw(st.integers(0, width))
    y0, x0 = draw(st.integers(0, height - h)), draw(st.integers(0, width - w))
    dtype = draw(st.sampled_from([np.bool_, np.uint8]))
    elements = st.booleans() if dtype is np.bool_ else st.sampled_from([0, 0, 1, 7, 255])
    window = draw(arrays(dtype, (h, w), elements=elements))
    return window, x0, y0, height, width


@given(placed())
def test_a_window_encodes_as_the_whole_mask(case):
    window, x0, y0, height, width = case
    whole = np.zeros((height, width), dtype=window.dtype)
    whole[y0 : y0 + window.shape[0], x0 : x0 + window.shape[1]] = window
    assert rle.encode_window(window, x0, y0, height, width).tobytes() == rle.encode(whole).tobytes()


def test_long_runs_split_as_the_sdk_splits_them():
    window = np.ones((300, 300), bool)
    whole = np.zeros((700, 500), bool)
    whole[250:550, 150:450] = window
    assert rle.encode_window(window, 150, 250, 700, 500).tobytes() == rle.encode(whole).tobytes()
