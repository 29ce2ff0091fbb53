"""Brush RLE encoding of a 1024x1024 mask: ours (numpy) versus label-studio-sdk's mask2rle.

python -m bench.rle_encode --repeats 50
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from label_studio_sdk.converter.brush import mask2rle

from labelstack_backend import rle


def masks(size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    blob = (((yy - size * 0.45) ** 2 + (xx - size * 0.4) ** 2) < (size * 0.3) ** 2).astype(np.uint8) * 255
    noise = (rng.random((size, size)) > 0.5).astype(np.uint8) * 255
    speckle = blob.copy()
    flip = rng.random((size, size)) < 0.02
    speckle[flip] = 255 - speckle[flip]
    return {"blob": blob, "speckled blob (2% flipped)": speckle, "noise (50% random)": noise}


def timed(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    rows = []
    for name, mask in masks(args.size).items():
        assert rle.encode(mask).tolist() == mask2rle(mask)
        ours = timed(lambda m=mask: rle.encode(m), args.repeats)
        ours_list = timed(lambda m=mask: rle.encode_list(m), args.repeats)
        sdk = timed(lambda m=mask: mask2rle(m), max(1, min(args.repeats, 3)))
        rows.append(
            {
                "mask": name,
                "ours_ms": round(ours, 2),
                "ours_as_list_ms": round(ours_list, 2),
                "sdk_ms": round(sdk, 1),
                "speedup": round(sdk / ours, 1),
                "bytes": int(rle.encode(mask).size),
            }
        )
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
