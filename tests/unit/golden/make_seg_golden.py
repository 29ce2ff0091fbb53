"""Write the segmentation post-processing golden files (issue 21).

``seg_inputs.npz`` holds a fixed set of raw YOLO-seg outputs (prototypes, and NMS rows
of box, score, class and mask coefficients) for letterboxes of every kind: square
padding, rectangles, up- and down-scaling, odd sizes, boxes in the padding and off the
edges, tiny boxes, an empty mask. ``seg_regions.json`` holds the regions the
post-processing as of commit d411942 made of them (ultralytics' ``process_mask`` upsampling
every mask to the whole input, then ``unletterbox_mask`` per detection), for a
polygon, a brush and a rectangle control. ``test_seg_golden.py`` holds today's code to
them. Rerun only to add cases, with the old post-processing:

    python -m tests.unit.golden.make_seg_golden
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).parent
INPUTS = HERE / "seg_inputs.npz"
REGIONS = HERE / "seg_regions.json"

# (input h, w), (original h, w), smooth prototypes or noise
CASES = [
    ((160, 160), (120, 160), True),  # a 4:3 image padded to a square (a mixed-size batch)
    ((128, 160), (480, 640), True),  # rect, scaled down 4x
    ((160, 160), (400, 130), True),  # tall, padded left and right
    ((128, 160), (97, 131), True),  # odd sizes, scaled up
    ((160, 160), (61, 43), False),  # noise prototypes, scaled up 2.6x
    ((96, 160), (300, 500), True),  # no padding at all
]
PROTOS = 8


def _protos(rng: np.random.Generator, mh: int, mw: int, smooth: bool) -> np.ndarray:
    # 8 prototypes where a real model has 32, stored as float16 values: the files stay small,
    # and the arithmetic is the same.
    if not smooth:
        return rng.normal(size=(PROTOS, mh, mw)).astype(np.float16)
    low = rng.normal(size=(PROTOS, 6, 6)).astype(np.float32)
    return np.stack([cv2.resize(p, (mw, mh), interpolation=cv2.INTER_CUBIC) for p in low]).astype(np.float16)


def _boxes(rng: np.random.Generator, ih: int, iw: int, n: int) -> np.ndarray:
    x0 = rng.uniform(-10, iw - 5, n)
    y0 = rng.uniform(-10, ih - 5, n)
    w = rng.uniform(2, iw * 0.7, n)
    h = rng.uniform(2, ih * 0.7, n)
    boxes = np.stack([x0, y0, x0 + w, y0 + h], axis=1)
    boxes[0] = [ih * 0.1, ih * 0.1, iw * 0.6, ih * 0.7]  # one large box inside
    boxes[1] = [iw / 2, ih / 2, iw / 2 + 1.3, ih / 2 + 0.7]  # one tiny box
    boxes[2] = [-4, -4, iw + 4, ih + 4]  # the whole input, past the edges
    return np.clip(boxes, 0, [iw, ih, iw, ih]).astype(np.float32)


def make_inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(21)
    arrays: dict[str, np.ndarray] = {}
    for k, ((ih, iw), orig, smooth) in enumerate(CASES):
        n = 12
        coeffs = rng.normal(scale=1.2, size=(n, PROTOS)).astype(np.float16)
        coeffs[3] = 0.0  # a mask that is empty: every logit is 0
        pred = np.concatenate(
            [
                _boxes(rng, ih, iw, n),
                rng.uniform(0.3, 1.0, (n, 1)).astype(np.float32),
                rng.integers(0, 3, (n, 1)).astype(np.float32),
                coeffs.astype(np.float32),
            ],
            axis=1,
        )
        arrays[f"proto{k}"] = _protos(rng, ih // 4, iw // 4, smooth)
        arrays[f"pred{k}"] = pred
        arrays[f"shape{k}"] = np.array([ih, iw, *orig])
    return arrays


def main() -> None:
    from tests.unit.test_seg_golden import CONFIGS, regions_of

    arrays = make_inputs()
    np.savez_compressed(INPUTS, **arrays)
    arrays = {k: v.astype(np.float32) if k.startswith("proto") else v for k, v in arrays.items()}
    out = {name: [regions_of(arrays, k, name) for k in range(len(CASES))] for name in CONFIGS}
    REGIONS.write_text(json.dumps(out, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
