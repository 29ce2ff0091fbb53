"""Process-level setup for torch and ultralytics: device choice, offline mode, fonts.

Ultralytics reads its settings folder when first imported and tries to download
a font for plots during training, so :func:`prepare_ultralytics` must run before
``import ultralytics``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from labelstack_backend.errors import ModelLoadError

log = logging.getLogger(__name__)


def prepare_ultralytics(config_dir: Path | None = None) -> Path:
    """Point ultralytics at a writable settings folder with its font in place, and keep
    it from installing packages at run time. Existing environment values win."""
    folder = Path(
        os.environ.get("YOLO_CONFIG_DIR")
        or config_dir
        or Path(tempfile.gettempdir()) / "labelstack-ultralytics"
    )
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("YOLO_CONFIG_DIR", str(folder))
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    font_dir = folder / "Ultralytics"
    font_dir.mkdir(parents=True, exist_ok=True)
    font = font_dir / "Arial.ttf"
    if not font.exists():
        try:
            import matplotlib

            src = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
            shutil.copyfile(src, font)
        except (ImportError, OSError) as exc:  # plots only; training still works
            log.debug("no font for ultralytics plots: %s", exc)
    return folder


def offline() -> bool:
    return os.environ.get("YOLO_OFFLINE", "").lower() in {"1", "true", "yes"}


@lru_cache(maxsize=8)
def resolve_device(requested: str) -> str:
    """``auto`` -> the first CUDA device if there is one, else the CPU."""
    import torch

    if requested and requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            log.warning("device %s asked for, but CUDA is not available; using the CPU", requested)
            return "cpu"
        return requested
    return "cuda:0" if torch.cuda.is_available() else "cpu"


def use_half(device: str, requested: bool | None) -> bool:
    """fp16 on GPU by default, never on CPU (where it is slower or unsupported)."""
    if device == "cpu":
        return False
    return True if requested is None else requested


def weights_file(value: str, env: str) -> Path:
    """The weights file that variable ``env`` names; :class:`ModelLoadError` at start when it is not one."""
    path = Path(value).expanduser()
    if not path.is_file():
        raise ModelLoadError(
            f"{env}={value} does not exist or is not a file; mount the weights volume or fix the path"
        )
    return path
