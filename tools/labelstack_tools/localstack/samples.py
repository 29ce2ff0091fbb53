"""Sample images for the demo project: two photos that ultralytics ships (a bus stop and a
football coach, people in clothes) and a few drawn here. Nothing comes from the web.

Files are written once; an existing file is left as it is, so a second ``up`` adds nothing.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

PACKAGED = ("bus.jpg", "zidane.jpg")  # in ultralytics/assets


def packaged_assets() -> Path | None:
    """ultralytics' assets folder, found without importing ultralytics (and torch)."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "assets"
    return folder if folder.is_dir() else None


def _figure(draw: ImageDraw.ImageDraw, x: int, skin: str, top: str, bottom: str, dress: bool) -> None:
    """A flat-colour figure 120 px wide whose left edge is at ``x``."""
    draw.ellipse((x + 40, 40, x + 80, 85), fill=skin)  # head
    draw.rectangle((x + 54, 85, x + 66, 98), fill=skin)  # neck
    if dress:
        draw.polygon([(x + 30, 98), (x + 90, 98), (x + 118, 330), (x + 2, 330)], fill=top)
    else:
        draw.polygon([(x + 22, 98), (x + 98, 98), (x + 92, 220), (x + 28, 220)], fill=top)
        draw.polygon(
            [
                (x + 28, 220),
                (x + 92, 220),
                (x + 88, 400),
                (x + 64, 400),
                (x + 60, 250),
                (x + 56, 400),
                (x + 32, 400),
            ],
            fill=bottom,
        )
    draw.rectangle((x + 4, 100, x + 20, 210), fill=skin)  # arms
    draw.rectangle((x + 100, 100, x + 116, 210), fill=skin)
    if dress:
        draw.rectangle((x + 36, 330, x + 50, 400), fill=skin)  # legs
        draw.rectangle((x + 70, 330, x + 84, 400), fill=skin)


def drawn_images() -> dict[str, Image.Image]:
    """A few drawn scenes with garments in flat colours; deterministic."""
    out = {}
    palettes = (
        ("#f1e3d3", [("#c8553d", "", True), ("#2b50aa", "#3d3d3d", False), ("#f2c14e", "", True)]),
        ("#dde7c7", [("#3d5a80", "#98c1d9", False), ("#ee6c4d", "", True), ("#293241", "#e0fbfc", False)]),
    )
    for i, (background, figures) in enumerate(palettes, start=1):
        img = Image.new("RGB", (480, 440), background)
        draw = ImageDraw.Draw(img)
        draw.rectangle((0, 405, 480, 440), fill="#8d775f")  # floor
        for j, (top, bottom, dress) in enumerate(figures):
            _figure(draw, 20 + j * 155, "#e0ac69" if (i + j) % 2 else "#8d5524", top, bottom, dress)
        out[f"drawn-{i}.jpg"] = img
    return out


def write_samples(folder: Path, assets: Callable[[], Path | None] = packaged_assets) -> list[Path]:
    """Put the sample images in ``folder`` (made if needed); return every sample's path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    source = assets()
    for name in PACKAGED:
        target = folder / name
        if not target.exists() and source is not None and (source / name).is_file():
            shutil.copyfile(source / name, target)
        if target.exists():
            paths.append(target)
    for name, img in drawn_images().items():
        target = folder / name
        if not target.exists():
            img.save(target, "JPEG", quality=90)
        paths.append(target)
    return sorted(paths)
