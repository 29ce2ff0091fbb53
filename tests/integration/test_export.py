"""Dataset export from a real Label Studio: YOLO-seg trains, COCO validates, brushes survive, versions are stable."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO

from labelstack_backend import rle
from labelstack_backend.geometry import iou
from labelstack_backend.imagecache import DiskCache
from labelstack_backend.images import ImageLoader
from labelstack_tools.cli.main import main as labelstack
from tests.support.gcs_emulator import make_bucket
from tests.support.projects import shapes_project

pytestmark = pytest.mark.integration


def brush(mask: np.ndarray, label: str) -> dict:
    h, w = mask.shape
    return {
        "from_name": "brush",
        "to_name": "image",
        "type": "brushlabels",
        "original_width": w,
        "original_height": h,
        "value": {"format": "rle", "rle": rle.encode_list(mask), "brushlabels": [label]},
    }


@pytest.fixture
def annotated(label_studio):
    """6 tasks: 4 annotated with polygons + a holed brush mask, 1 skipped, 1 untouched."""
    made = shapes_project(label_studio, [(192, 128)] * 6, seed=11)
    sdk = label_studio.client.sdk
    masks = {}
    for task, sc in list(zip(made.tasks, made.scenes, strict=True))[:4]:
        ring = np.zeros((sc.height, sc.width), np.uint8)
        ring[20:100, 30:150] = 255
        ring[50:70, 70:110] = 0  # a hole: RLE keeps it
        masks[task["id"]] = ring > 0
        sdk.annotations.create(id=task["id"], result=[*sc.polygon_regions(), brush(ring, "square")])
    sdk.annotations.create(id=made.tasks[4]["id"], result=[], was_cancelled=True)
    return made, masks


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch) -> Path:
    """Where a command run by hand caches fetched images: the user's cache folder, here in tmp."""
    for name in ("MODEL_DIR", "LABELSTACK_IMAGE_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    return tmp_path / "xdg-cache" / "labelstack" / "images"


def cli(label_studio, *args: str) -> int:
    return labelstack(["export", "--url", label_studio.url, "--token", label_studio.token, *args])


def test_yolo_export_is_versioned_stable_and_trains(
    label_studio, annotated, tmp_path, capsys, user_cache, monkeypatch
):
    made, _ = annotated
    pid = str(made.project.id)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    assert cli(label_studio, "--project", pid, str(tmp_path / "out")) == 0
    assert any(p.is_file() for p in user_cache.rglob("*")), "fetched images are cached for the next export"
    assert list((tmp_path / "cwd").iterdir()) == [], "and nothing lands where the command was run"
    first = Path(capsys.readouterr().out.strip())
    manifest = json.loads((first / "manifest.json").read_text())
    assert manifest["counts"]["images"] == 4 and manifest["skipped"] == []
    assert manifest["classes"] == ["circle", "square"]
    assert [a["task"] for a in manifest["annotations"]] == sorted(t["id"] for t in made.tasks[:4])
    assert manifest["counts"]["per_class"]["square"] >= 4  # the brush mask of every task
    for rel, digest in manifest["files"].items():
        assert (first / rel).is_file(), rel
        assert len(digest) == 64

    # Same data, same manifest: nothing new is written.
    assert cli(label_studio, "--project", made.project.title, str(tmp_path / "out")) == 0
    second = Path(capsys.readouterr().out.strip())
    assert second == first and json.loads((second / "manifest.json").read_text()) == manifest
    assert len(list((tmp_path / "out").iterdir())) == 1

    # A change makes a new version.
    label_studio.client.sdk.annotations.create(
        id=made.tasks[5]["id"], result=made.scenes[5].polygon_regions()
    )
    assert cli(label_studio, "--project", pid, str(tmp_path / "out")) == 0
    third = Path(capsys.readouterr().out.strip())
    assert third != first and json.loads((third / "manifest.json").read_text())["counts"]["images"] == 5

    # The dataset loads in ultralytics and trains for an epoch.
    from ultralytics import YOLO

    model = YOLO("yolov8n-seg.yaml", task="segment")
    model.train(data=str(third / "data.yaml"), epochs=1, imgsz=64, batch=4, device="cpu", workers=0,
                project=str(tmp_path / "runs"), name="x", plots=False, verbose=False, val=True)  # fmt: skip
    assert Path(model.trainer.last).is_file()


def test_coco_export_validates_and_keeps_brush_masks(label_studio, annotated, tmp_path, capsys):
    made, masks = annotated
    assert (
        cli(label_studio, "--project", str(made.project.id), "--format", "coco", str(tmp_path / "coco")) == 0
    )
    out = Path(capsys.readouterr().out.strip())
    coco = COCO(str(out / "annotations.json"))
    assert sorted(coco.getImgIds()) == sorted(masks)
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["circle", "square"]
    square = coco.getCatIds(catNms=["square"])[0]
    for task_id, truth in masks.items():
        img = coco.loadImgs(task_id)[0]
        assert (out / img["file_name"]).is_file()
        rle_anns = [
            a
            for a in coco.loadAnns(coco.getAnnIds(imgIds=task_id, catIds=square))
            if isinstance(a["segmentation"], dict)
        ]
        assert len(rle_anns) == 1
        assert iou(coco.annToMask(rle_anns[0]) > 0, truth) >= 0.99
        assert coco_mask.area(rle_anns[0]["segmentation"]) == truth.sum()
    polys = [a for a in coco.dataset["annotations"] if isinstance(a["segmentation"], list)]
    assert polys and all(a["area"] > 0 and len(a["bbox"]) == 4 for a in polys)


def test_export_to_a_bucket(label_studio, annotated, gcs_emulator, tmp_path):
    made, _ = annotated
    make_bucket("exports")
    from labelstack_tools.datasets.export import ExportOptions, export_project

    loader = ImageLoader(max_pixels=10**8, max_bytes=10**8, timeout=10, cache=DiskCache(tmp_path / "c", 0))
    first = export_project(
        label_studio.client, made.project.id, "gs://exports/ds", loader, ExportOptions("coco")
    )
    again = export_project(
        label_studio.client, made.project.id, "gs://exports/ds", loader, ExportOptions("coco")
    )
    assert first.created and not again.created and first.version == again.version
    assert first.location == f"gs://exports/ds/coco-{first.version}"
    from labelstack_backend import gcs

    names = {b.name for b in gcs.client().list_blobs("exports", prefix=f"ds/coco-{first.version}/")}
    assert f"ds/coco-{first.version}/manifest.json" in names
    assert f"ds/coco-{first.version}/annotations.json" in names
    assert os.environ.get("STORAGE_EMULATOR_HOST")


def test_export_errors_are_one_line(label_studio, tmp_path, capsys):
    assert (
        labelstack(
            ["export", "--url", label_studio.url, "--token", "x" * 40, "--project", "1", str(tmp_path)]
        )
        == 1
    )
    assert "401" in capsys.readouterr().err
    assert cli(label_studio, "--project", "no such title", str(tmp_path)) == 1
    assert "no project titled" in capsys.readouterr().err
