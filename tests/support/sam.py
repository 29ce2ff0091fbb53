"""Helpers for the SAM tests: label configs, images, and prompt regions as Label Studio sends them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

LABELS = ("Shirt", "Trousers")

CONFIG = """
<View>
  <Image name="image" value="$image" zoom="true"/>
  <BrushLabels name="mask" toName="image">
    <Label value="Shirt"/><Label value="Trousers"/>
  </BrushLabels>
  <KeyPointLabels name="click" toName="image" smart="true">
    <Label value="Shirt" smart="true"/><Label value="Trousers" smart="true"/>
  </KeyPointLabels>
  <RectangleLabels name="box" toName="image" smart="true">
    <Label value="Shirt"/><Label value="Trousers"/>
  </RectangleLabels>
</View>
"""

CONFIG_WITH_POLYGON = CONFIG.replace(
    "</View>",
    """  <PolygonLabels name="outline" toName="image" sam_polygon="true">
    <Label value="Shirt"/><Label value="Trousers"/>
  </PolygonLabels>
</View>""",
)

EXIF_ORIENTATION = 0x0112


def write_image(
    path: Path, size: tuple[int, int] = (96, 64), *, seed: int = 0, orientation: int | None = None
) -> Path:
    """A JPEG with a few coloured shapes; ``orientation`` sets its EXIF orientation tag."""
    img = Image.new("RGB", size, (20 + seed * 7 % 60, 30, 40))
    draw = ImageDraw.Draw(img)
    w, h = size
    draw.ellipse((w * 0.2, h * 0.2, w * 0.6, h * 0.7), fill=(230, 200, 20 + seed * 31 % 200))
    draw.rectangle((w * 0.65, h * 0.1, w * 0.9, h * 0.5), fill=(20, 120 + seed * 13 % 120, 220))
    path.parent.mkdir(parents=True, exist_ok=True)
    if orientation is None:
        img.save(path, "JPEG", quality=95)
    else:
        exif = Image.Exif()
        exif[EXIF_ORIENTATION] = orientation
        img.save(path, "JPEG", quality=95, exif=exif.tobytes())
    return path


def keypoint(
    x: float,
    y: float,
    width: int,
    height: int,
    label: str | None = "Shirt",
    positive: bool = True,
    to_name: str = "image",
) -> dict[str, Any]:
    """A smart keypoint region as Label Studio's editor sends it."""
    value: dict[str, Any] = {"x": x, "y": y, "width": 0.5}
    if label is not None:
        value["keypointlabels"] = [label]
    return {
        "id": f"kp-{x}-{y}",
        "type": "keypointlabels",
        "from_name": "click",
        "to_name": to_name,
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "is_positive": positive,
        "origin": "manual",
        "value": value,
    }


def rectangle(
    x: float,
    y: float,
    w: float,
    h: float,
    width: int,
    height: int,
    label: str = "Shirt",
    rotation: float = 0.0,
) -> dict[str, Any]:
    return {
        "id": f"box-{x}-{y}",
        "type": "rectanglelabels",
        "from_name": "box",
        "to_name": "image",
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "origin": "manual",
        "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation, "rectanglelabels": [label]},
    }


def pixel_percent(index: int, size: int) -> float:
    """The percent coordinate of the centre of pixel ``index`` along an axis of ``size`` pixels."""
    return (index + 0.5) / size * 100.0


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus metric's samples in a /metrics body, over the samples
    carrying ``labels`` (0 when there is none)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        sample, _, label_text = head.partition("{")
        if sample != name:
            continue
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            total += float(value)
    return total
