"""Synthetic shapes with exact ground truth, for training and alignment tests."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPE_LABELS = ("circle", "square")
COLOURS = {"circle": (230, 60, 60), "square": (60, 200, 60)}


@dataclass
class Shape:
    label: str
    cx: float
    cy: float
    r: float

    def polygon_px(self, n: int = 32) -> list[tuple[float, float]]:
        if self.label == "circle":
            t = np.linspace(0, 2 * np.pi, n, endpoint=False)
            return [(self.cx + self.r * np.cos(a), self.cy + self.r * np.sin(a)) for a in t]
        r = self.r
        return [
            (self.cx - r, self.cy - r),
            (self.cx + r, self.cy - r),
            (self.cx + r, self.cy + r),
            (self.cx - r, self.cy + r),
        ]


@dataclass
class Scene:
    image: Image.Image
    shapes: list[Shape]

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

    def mask(self, label: str | None = None) -> np.ndarray:
        out = Image.new("L", self.image.size, 0)
        draw = ImageDraw.Draw(out)
        for s in self.shapes:
            if label is None or s.label == label:
                _draw(draw, s, 255)
        return np.asarray(out) > 0

    def jpeg(self) -> bytes:
        buf = io.BytesIO()
        self.image.save(buf, format="JPEG", quality=95)
        return buf.getvalue()

    def polygon_regions(self, from_name: str = "polygon", to_name: str = "image") -> list[dict]:
        """Label Studio polygon results (percent) for every shape."""
        out = []
        for i, s in enumerate(self.shapes):
            pts = [[x / self.width * 100, y / self.height * 100] for x, y in s.polygon_px()]
            out.append(
                {
                    "id": f"r{i}",
                    "from_name": from_name,
                    "to_name": to_name,
                    "type": "polygonlabels",
                    "original_width": self.width,
                    "original_height": self.height,
                    "image_rotation": 0,
                    "value": {"points": pts, "closed": True, "polygonlabels": [s.label]},
                }
            )
        return out


def _draw(draw: ImageDraw.ImageDraw, s: Shape, fill: object) -> None:
    box = [s.cx - s.r, s.cy - s.r, s.cx + s.r, s.cy + s.r]
    if s.label == "circle":
        draw.ellipse(box, fill=fill)
    else:
        draw.rectangle(box, fill=fill)


def scene(rng: np.random.Generator, width: int = 192, height: int = 128, max_shapes: int = 2) -> Scene:
    """A dark background with 1..max_shapes red circles and green squares."""
    bg = tuple(int(v) for v in rng.integers(0, 80, 3))
    img = Image.new("RGB", (width, height), bg)
    draw = ImageDraw.Draw(img)
    shapes: list[Shape] = []
    for _ in range(int(rng.integers(1, max_shapes + 1))):
        r = float(rng.integers(min(width, height) // 9, min(width, height) // 4))
        label = SHAPE_LABELS[int(rng.integers(0, 2))]
        shape = Shape(
            label,
            float(rng.integers(int(r), int(width - r))),
            float(rng.integers(int(r), int(height - r))),
            r,
        )
        _draw(draw, shape, COLOURS[label])
        shapes.append(shape)
    return Scene(img, shapes)


def write_scenes(folder: Path, scenes: list[Scene], prefix: str = "img") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, sc in enumerate(scenes):
        path = folder / f"{prefix}-{i:03d}.jpg"
        path.write_bytes(sc.jpeg())
        paths.append(path)
    return paths


SHAPES_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <PolygonLabels name="polygon" toName="image">
    <Label value="circle"/>
    <Label value="square"/>
  </PolygonLabels>
  <BrushLabels name="brush" toName="image">
    <Label value="circle"/>
    <Label value="square"/>
  </BrushLabels>
</View>"""
