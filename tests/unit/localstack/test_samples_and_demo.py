"""The demo's images and project: real photos from a package plus drawn ones, and a label config
both backends accept, whose Person label takes a COCO model's "person"."""

from __future__ import annotations

from xml.etree import ElementTree

from PIL import Image

from labelstack_backend.labelconfig import (
    BRUSH,
    KEYPOINT,
    POLYGON,
    build_label_map,
    parse_label_config,
    require_controls,
)
from labelstack_backend.yolo.model import coco_names
from labelstack_tools.localstack import demo, samples


def test_samples_are_the_packaged_photos_and_drawn_ones_written_once(tmp_path):
    paths = samples.write_samples(tmp_path / "samples")
    names = {p.name for p in paths}
    assert {"bus.jpg", "zidane.jpg"} <= names and len(names) == 4
    for p in paths:
        with Image.open(p) as img:
            assert img.width > 200 and img.height > 200
    stamps = {p: p.stat().st_mtime_ns for p in paths}
    (tmp_path / "samples" / "bus.jpg").write_bytes(b"changed by the user")
    again = samples.write_samples(tmp_path / "samples")
    assert again == paths
    assert (tmp_path / "samples" / "bus.jpg").read_bytes() == b"changed by the user"
    assert all(p.stat().st_mtime_ns == stamps[p] for p in paths if p.name != "bus.jpg")


def test_without_the_package_the_drawn_samples_remain(tmp_path):
    paths = samples.write_samples(tmp_path, assets=lambda: None)
    assert [p.name for p in paths] == ["drawn-1.jpg", "drawn-2.jpg"]


def test_the_label_config_feeds_both_backends():
    config = parse_label_config(demo.LABEL_CONFIG)
    controls = require_controls(config, (POLYGON, BRUSH), "segmentation")
    assert controls[0].type == POLYGON  # polygons get the predictions; brushes are SAM's
    label_map = build_label_map(controls, coco_names())
    mapped = {coco_names()[i]: t.label for i, t in label_map.items()}
    assert mapped["person"] == "Person" and mapped["handbag"] == "Bag" and mapped["tie"] == "Tie"
    assert {t.control.type for t in label_map.values()} == {POLYGON}
    clicks = config.controls_of([KEYPOINT])
    assert clicks and clicks[0].flag("smart")
    brush = config.controls_of([BRUSH])[0]
    assert {label.value for label in clicks[0].labels} <= {label.value for label in brush.labels}


def test_the_plan_connects_sam_as_interactive_only_when_it_runs():
    plan = demo.project_plan("http://127.0.0.1:9090", "http://127.0.0.1:9091")
    assert [(b.url, b.interactive) for b in plan.backends] == [
        ("http://127.0.0.1:9090", False),
        ("http://127.0.0.1:9091", True),
    ]
    assert plan.retrieve_predictions_on_load and plan.label_config == demo.LABEL_CONFIG
    assert len(demo.project_plan("http://127.0.0.1:9090", None).backends) == 1


def test_each_row_of_labels_is_captioned_with_its_tool():
    root = ElementTree.fromstring(demo.LABEL_CONFIG)
    captions = {}
    for group in root.findall("View"):
        (header,) = group.findall("Header")
        (control,) = [el for el in group if el.tag.endswith("Labels")]
        captions[control.get("name")] = header.get("value")
    assert set(captions) == set(demo.CAPTIONS)
    for name, caption in demo.CAPTIONS.items():
        assert captions[name].startswith(caption)
    assert len(set(captions.values())) == 4, "four rows that look the same again"


def test_the_sam_rows_are_smart_tools_only():
    root = ElementTree.fromstring(demo.LABEL_CONFIG)
    for name in ("click", "box"):
        (control,) = root.findall(f".//*[@name='{name}']")
        assert control.get("smart") == control.get("smartOnly") == "true"
        assert all(label.get("smart") == "true" for label in control)
    assert "Auto-Detect" in demo.CAPTIONS["click"] + demo.CLICK_HINT
