"""The default weights ``labelstack up`` fetches when it is given none: a YOLOv8-seg nano model and
MobileSAM, each checked against a pinned sha256 and kept in the user's cache folder.

Only the local stack downloads (the backend server never does: it loads files from paths). When a
file cannot be fetched, or is not the pinned one, the stack runs the demo's random weights and says
why in one line.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from labelstack_common.errors import LabelStackError

# A mirror of the official files, for machines that cannot reach them (and for the tests):
# each file is fetched from <base>/<file name>.
BASE_URL_ENV = "LABELSTACK_WEIGHTS_URL"
CHUNK = 1 << 20
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 60


@dataclass(frozen=True)
class WeightFile:
    name: str  # the file name in the cache and on a mirror; up reads the model type from it
    title: str
    url: str  # where its publisher serves it
    sha256: str
    size: int


# The one place the official defaults are pinned. Sources, checked on 6 Dec 2026:
# yolov8n-seg.pt: ultralytics' assets release (the same bytes in v8.2.0, v8.3.0 and v8.4.0),
#   7,071,756 bytes, as several independent projects pin it.
# mobile_sam.pt: MobileSAM's own repository at commit f706ad9c (weights/mobile_sam.pt),
#   40,728,226 bytes, as micro-sam pins it for "vit_t" and other projects do.
YOLO_SEG = WeightFile(
    name="yolov8n-seg.pt",
    title="YOLOv8n-seg",
    url="https://github.com/ultralytics/assets/releases/download/v8.3.0/yolov8n-seg.pt",
    sha256="a7cd8f929e1903d78a12a48efecab430209f18dc46cb96c3599a5980c63c423c",
    size=7_071_756,
)
MOBILE_SAM = WeightFile(
    name="mobile_sam.pt",
    title="MobileSAM",
    url="https://github.com/ChaoningZhang/MobileSAM/raw/f706ad9c4eb7f219c00d9050e46328518ffb65d2/weights/mobile_sam.pt",
    sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
    size=40_728_226,
)

# (file, bytes so far, total bytes): called as a download goes.
Progress = Callable[[WeightFile, int, int], None]


class WeightsError(LabelStackError):
    """A default weight file could not be had; the message is the one-line reason."""


def cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CACHE_HOME/labelstack/weights`` (``~/.cache/...`` by default): shared by every data dir."""
    home = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(home) / "labelstack" / "weights"


def url_for(file: WeightFile, env: Mapping[str, str] = os.environ) -> str:
    base = env.get(BASE_URL_ENV, "").rstrip("/")
    return f"{base}/{file.name}" if base else file.url


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def cached(file: WeightFile, folder: Path) -> Path | None:
    """The file in the cache when its bytes are the pinned ones."""
    path = folder / file.name
    return path if path.is_file() and sha256_of(path) == file.sha256 else None


def download(file: WeightFile, url: str, folder: Path, progress: Progress) -> Path:
    """Fetch ``url`` into ``folder`` under the file's name, checking the pinned sha256 as it comes.
    A file that is not the pinned one is deleted, never used."""
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"{file.name}.part"
    digest = hashlib.sha256()
    try:
        with requests.get(url, stream=True, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)) as reply:
            reply.raise_for_status()
            total = int(reply.headers.get("Content-Length") or file.size)
            done = 0
            with part.open("wb") as out:
                for block in reply.iter_content(CHUNK):
                    out.write(block)
                    digest.update(block)
                    done += len(block)
                    progress(file, done, total)
    except (requests.RequestException, OSError) as exc:
        part.unlink(missing_ok=True)
        raise WeightsError(f"could not download {file.name} from {url} ({_reason(exc)})") from None
    if digest.hexdigest() != file.sha256:
        part.unlink()
        raise WeightsError(
            f"{file.name} from {url} has sha256 {digest.hexdigest()[:16]}…, not the pinned "
            f"{file.sha256[:16]}…: not used"
        )
    return part.replace(folder / file.name)


def _reason(exc: Exception) -> str:
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, requests.ConnectionError):
        return "offline, or the host cannot be reached"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return type(exc).__name__


def fetch(file: WeightFile, progress: Progress, env: Mapping[str, str] = os.environ) -> tuple[Path, bool]:
    """The verified file, from the cache or downloaded; and whether it was downloaded."""
    folder = cache_dir(env)
    hit = cached(file, folder)
    if hit is not None:
        return hit, False
    return download(file, url_for(file, env), folder, progress), True
