"""Segmentation post-processing against golden files: the same model output gives the
same regions, byte for byte, as the post-processing it replaced (issue 21; the files and
how they were made: ``tests/unit/golden/make_seg_golden.py``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pytest
import torch

from labelstack_backend.labelconfig import build_label_map, parse_label_config
from labelstack_backend.regions import detections_to_regions
from labelstack_backend.yolo.model import RawOutput, raw_detections
from tests.unit.golden.make_seg_golden import CASES, INPUTS, REGIONS

NAMES = {0: "a", 1: "b", 2: "c"}
CONFIGS = {
    kind: parse_label_config(
        f'<View><Image name="img" value="$image"/><{kind} name="out" toName="img">'
        + "".join(f'<Label value="{v}"/>' for v in NAMES.values())
        + f"</{kind}></View>"
    )
    for kind in ("PolygonLabels", "BrushLabels", "RectangleLabels")
}


def detections(arrays: dict[str, np.ndarray], k: int) -> list[Any]:
    """The model-output -> detections step under test, for case ``k``."""
    ih, iw, oh, ow = (int(v) for v in arrays[f"shape{k}"])
    raw = RawOutput(
        torch.from_numpy(arrays[f"pred{k}"].copy()), torch.from_numpy(arrays[f"proto{k}"]), (ih, iw)
    )
    return raw_detections(raw, (oh, ow))


def regions_of(arrays: dict[str, np.ndarray], k: int, config: str) -> list[dict[str, Any]]:
    """Case ``k``'s regions, each brush RLE as the sha256 of its bytes (as strict, and smaller)."""
    oh, ow = (int(v) for v in arrays[f"shape{k}"][2:])
    label_map = build_label_map(CONFIGS[config].controls, NAMES)
    regions = detections_to_regions(
        detections(arrays, k), label_map, width=ow, height=oh, threshold=0.0, tolerance=1.0, id_seed=f"g{k}"
    )
    for region in regions:
        if "rle" in region["value"]:
            region["value"]["rle"] = hashlib.sha256(bytes(region["value"]["rle"])).hexdigest()
    return regions


@pytest.fixture(scope="module")
def golden() -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with np.load(INPUTS) as data:
        arrays = {k: data[k].astype(np.float32) if k.startswith("proto") else data[k] for k in data.files}
    return arrays, json.loads(REGIONS.read_text())


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("k", range(len(CASES)))
def test_regions_equal_the_golden_files(golden, config, k):
    arrays, expected = golden
    got = regions_of(arrays, k, config)
    if config == "PolygonLabels":
        # The files hold each mask's largest part only (the old behaviour); every further part is
        # now a polygon of its own (issue 16), under a new id, with its mask's label and score.
        golden_ids = {r["id"] for r in expected[config][k]}
        extra = [r for r in got if r["id"] not in golden_ids]
        got = [r for r in got if r["id"] in golden_ids]
        by_score = {(r["score"], tuple(r["value"]["polygonlabels"])) for r in expected[config][k]}
        assert all((r["score"], tuple(r["value"]["polygonlabels"])) in by_score for r in extra)
    assert got == expected[config][k]


def test_the_golden_files_cover_every_region_form(golden):
    _, expected = golden
    for config, forms in (("PolygonLabels", "points"), ("BrushLabels", "rle"), ("RectangleLabels", "width")):
        per_case = [len(r) for r in expected[config]]
        assert all(per_case) and sum(per_case) >= 50, (config, per_case)
        assert all(forms in region["value"] for case in expected[config] for region in case)
