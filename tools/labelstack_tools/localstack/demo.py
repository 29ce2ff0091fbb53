"""The demo project ``labelstack up`` wires: a garment label config, and the settings that make
random demo weights show something. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from labelstack_common.contract import Env
from labelstack_common.wiring import BackendLink, ProjectPlan

PROJECT_TITLE = "LabelStack demo: garments"
SEGMENTATION_TITLE = "segmentation (YOLOv8-seg)"
SAM_TITLE = "Segment Anything (interactive)"

# (label, COCO class names a pre-trained YOLOv8-seg predicts for it, colour). The garment labels
# have no COCO class: a model learns them from your annotations (Start Training).
LABELS: tuple[tuple[str, str, str], ...] = (
    ("Person", "person", "#8d99ae"),
    ("Top", "", "#e63946"),
    ("Dress", "", "#f4a261"),
    ("Trousers", "", "#2a9d8f"),
    ("Coat", "", "#264653"),
    ("Bag", "handbag,backpack,suitcase", "#9b5de5"),
    ("Tie", "tie", "#00b4d8"),
)


def _labels(*, aliases: bool, smart: bool = False) -> str:
    out = []
    for value, predicted, colour in LABELS:
        attrs = f'value="{value}" background="{colour}"'
        if aliases and predicted:
            attrs += f' predicted_values="{predicted}"'
        if smart:
            attrs += ' smart="true"'
        out.append(f"      <Label {attrs}/>")
    return "\n".join(out)


# The caption over each row of labels, by control name: the four rows hold the same labels, so
# without them nothing on the screen says which tool a row picks. The README names them too.
POLYGON_CAPTION = "Outline with a polygon"
BRUSH_CAPTION = "Paint with a brush"
CLICK_CAPTION = "Segment Anything: click"
BOX_CAPTION = "Segment Anything: box"
CAPTIONS: Mapping[str, str] = {
    "garment": POLYGON_CAPTION,
    "mask": BRUSH_CAPTION,
    "click": CLICK_CAPTION,
    "box": BOX_CAPTION,
}
# Label Studio's editor (1.23) sends a click or a box to SAM only from its smart tools: with
# Auto-Annotation on, the toolbar's Auto-Detect button (hotkey M) holds a keypoint and a rectangle
# tool; picking a label does not select them. smartOnly keeps the plain keypoint and rectangle
# tools out, so a click never makes a bare keypoint without a mask. The hints say so on screen.
SMART_HINT = "with Auto-Annotation on: toolbar → Auto-Detect (M) → "
CLICK_HINT = f" ({SMART_HINT}keypoints, a label here, then click; Alt-click excludes)"
BOX_HINT = f" ({SMART_HINT}rectangle, a label here, then drag)"
SMART = 'smart="true" smartOnly="true"'


def _group(caption: str, tag: str, attrs: str, labels: str) -> str:
    """One captioned row: a Header over a labels control."""
    return (
        f'  <View>\n    <Header value="{caption}" size="6"/>\n'
        f"    <{tag} {attrs}>\n{labels}\n    </{tag}>\n  </View>"
    )


# Polygons first: the segmentation backend fills the first control that has a label, so each
# object is one polygon. SAM answers a smart keypoint or box with a brush mask in "mask".
# The labels come before the image so that they show above it.
_GROUPS = (
    _group(
        POLYGON_CAPTION,
        "PolygonLabels",
        'name="garment" toName="image" strokeWidth="2" opacity="0.35"',
        _labels(aliases=True),
    ),
    _group(BRUSH_CAPTION, "BrushLabels", 'name="mask" toName="image" opacity="0.5"', _labels(aliases=False)),
    _group(
        CLICK_CAPTION + CLICK_HINT,
        "KeyPointLabels",
        f'name="click" toName="image" {SMART}',
        _labels(aliases=False, smart=True),
    ),
    _group(
        BOX_CAPTION + BOX_HINT,
        "RectangleLabels",
        f'name="box" toName="image" {SMART} predict="false"',
        _labels(aliases=False, smart=True),
    ),
)
LABEL_CONFIG = "\n".join(
    ["<View>", *_GROUPS, '  <Image name="image" value="$image" zoom="true" zoomControl="true"/>', "</View>"]
)

# Random weights score every object around 1e-4 and find hundreds: keep the five best per image,
# so the demo shows a few regions. Set these variables yourself to override them.
DEMO_SEGMENTATION_ENV: Mapping[str, str] = {
    Env.SCORE_THRESHOLD: "0.0001",
    Env.MAX_DETECTIONS: "5",
}
# Fine-tuning that finishes in minutes on a laptop CPU.
CPU_TRAINING_ENV: Mapping[str, str] = {
    Env.TRAIN_EPOCHS: "10",
    Env.TRAIN_IMGSZ: "320",
    Env.TRAIN_BATCH: "4",
}


def project_plan(segmentation_url: str, sam_url: str | None) -> ProjectPlan:
    backends = [BackendLink(SEGMENTATION_TITLE, segmentation_url, interactive=False)]
    if sam_url is not None:
        backends.append(BackendLink(SAM_TITLE, sam_url, interactive=True))
    return ProjectPlan(
        title=PROJECT_TITLE,
        label_config=LABEL_CONFIG,
        description="Sample photos, pre-labelled by the segmentation backend; click with SAM to add masks.",
        backends=tuple(backends),
        retrieve_predictions_on_load=True,
    )
