"""CropMask.from_full: the tight box of a mask, whatever its shape."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from labelstack_backend.geometry import CropMask

masks = st.tuples(st.integers(1, 30), st.integers(1, 30)).flatmap(
    lambda shape: arrays(np.bool_, shape, elements=st.booleans())
)


@given(masks)
def test_from_full_is_the_tight_crop_and_round_trips(mask: np.ndarray) -> None:
    crop = CropMask.from_full(mask)
    np.testing.assert_array_equal(crop.full(), mask)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        assert crop.crop.size == 0
        return
    assert (crop.x0, crop.y0) == (xs.min(), ys.min())
    assert crop.crop.shape == (ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
    assert crop.area == mask.sum()
