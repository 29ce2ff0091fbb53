"""Image loading: from Label Studio, http(s), gs://, data: URIs and local files.

:func:`resolve_ref` is pure: it decides what a task's image value points at and
what its *stable identity* is (the cache key: never a signed or expiring URL).
:class:`ImageLoader` does the I/O: fetch with timeouts and a byte limit, a
bounded disk cache, the EXIF orientation, and a pixel limit against
decompression bombs. A cached copy is used only for the object's current *version* (the GCS
generation, the ETag or Last-Modified of an http(s) or Label Studio file, the mtime and size of
a local file), so a replaced object is fetched again. Every download has a total deadline
(connect and all reads, not per read), and a worker runs a bounded number at once. Local
files are read only under the configured roots. Failures raise :class:`ImageError` with a reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import logging
import stat
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlencode, urlparse, urlunparse

import numpy as np
import requests
import urllib3
from PIL import Image, ImageOps, UnidentifiedImageError

from labelstack_backend.errors import ImageError
from labelstack_backend.imagecache import DiskCache
from labelstack_common.labelstudio import LabelStudioClient, LabelStudioError

if TYPE_CHECKING:
    from labelstack_backend.settings import Settings

log = logging.getLogger(__name__)

# PIL's own bomb check is off: with MAX_IMAGE_PIXELS = None it neither warns nor raises. Our
# limit (LABELSTACK_IMAGE_MAX_PIXELS, checked from the header in decode_image) is the only one,
# so that it can be raised above PIL's 89-megapixel default for large scans.
Image.MAX_IMAGE_PIXELS = None


class SourceKind(StrEnum):
    LABEL_STUDIO = "label-studio"
    HTTP = "http"
    GCS = "gcs"
    LOCAL = "local"
    DATA = "data"


@dataclass(frozen=True)
class ImageRef:
    kind: SourceKind
    location: str  # what to fetch
    identity: str  # stable key: survives re-signing and token changes


# Query parameters that sign or expire a URL (S3, GCS, Azure SAS, CloudFront).
_SIGNING_PARAMS = frozenset(
    {
        "x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-expires", "x-amz-signedheaders",
        "x-amz-signature", "x-amz-security-token", "x-goog-algorithm", "x-goog-credential", "x-goog-date",
        "x-goog-expires", "x-goog-signedheaders", "x-goog-signature", "googleaccessid", "signature",
        "expires", "key-pair-id", "policy", "sig", "se", "sp", "sv", "sr", "st", "spr", "skoid", "sktid",
        "skt", "ske", "sks", "skv", "token", "access_token",
    }
)  # fmt: skip


def strip_signature(url: str) -> str:
    """The URL without query parameters that sign or expire it."""
    parsed = urlparse(url)
    kept = [
        (k, v) for k, v in parse_qsl(parsed.query, keep_blank_values=True) if k.lower() not in _SIGNING_PARAMS
    ]
    return urlunparse(parsed._replace(query=urlencode(kept), fragment=""))


def _label_studio_identity(path_and_query: str) -> str:
    """Identity of a Label Studio file URL: the storage URI behind resolve/presign
    forms, the document path of local files, the upload path otherwise."""
    parsed = urlparse(path_and_query)
    query = dict(parse_qsl(parsed.query))
    if "fileuri" in query:
        raw = query["fileuri"]
        try:
            decoded = base64.b64decode(raw + "=" * (-len(raw) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = raw
        return f"storage:{decoded}"
    if parsed.path.rstrip("/").endswith("/data/local-files") and "d" in query:
        return f"local-files:{query['d']}"
    return f"label-studio:{unquote(parsed.path)}"


_LS_PATH_MARKERS = ("/data/upload/", "/data/local-files", "/storage-data/uploaded/")


def _is_label_studio_path(path: str) -> bool:
    return path.startswith(_LS_PATH_MARKERS) or (
        path.startswith(("/tasks/", "/projects/")) and ("/resolve" in path or "/presign" in path)
    )


def resolve_ref(value: str, label_studio_url: str | None = None) -> ImageRef:
    """Classify a task's image value. Raises :class:`ImageError` if it is unusable."""
    if not isinstance(value, str) or not value.strip():
        raise ImageError("the task has no image URL")
    value = value.strip()
    if value.startswith("data:"):
        digest = hashlib.sha256(value.encode()).hexdigest()
        return ImageRef(SourceKind.DATA, value, f"data:{digest}")
    if value.startswith("gs://"):
        return ImageRef(SourceKind.GCS, value, value)
    if value.startswith("file://"):
        path = unquote(urlparse(value).path)
        return ImageRef(SourceKind.LOCAL, path, f"file:{path}")
    if value.startswith(("http://", "https://")):
        parsed = urlparse(value)
        if label_studio_url:
            ls = urlparse(label_studio_url)
            if (parsed.scheme, parsed.netloc) == (ls.scheme, ls.netloc) and _is_label_studio_path(
                parsed.path
            ):
                rel = urlunparse(parsed._replace(scheme="", netloc=""))
                return ImageRef(SourceKind.LABEL_STUDIO, rel, _label_studio_identity(rel))
        return ImageRef(SourceKind.HTTP, value, f"url:{strip_signature(value)}")
    if _is_label_studio_path(value):
        return ImageRef(SourceKind.LABEL_STUDIO, value, _label_studio_identity(value))
    if value.startswith("/") or value.startswith("./"):
        return ImageRef(SourceKind.LOCAL, value, f"file:{Path(value).resolve()}")
    if "://" in value:
        scheme = value.split("://", 1)[0]
        raise ImageError(
            f"unsupported image URL scheme {scheme!r} in {value!r}; use http(s), gs://, a Label Studio "
            "URL or a local path (for s3:// and azure-blob://, add the storage in Label Studio so it "
            "serves the file)"
        )
    raise ImageError(f"cannot tell what kind of image reference {value!r} is")


@dataclass(frozen=True)
class Fetched:
    """An image's bytes and the version of the object they came from ("" when the source
    names none: a data: URI, or a server that sends neither ETag nor Last-Modified)."""

    data: bytes
    version: str


@dataclass(frozen=True)
class LoadedImage:
    image: Image.Image  # RGB, EXIF orientation applied
    identity: str
    digest: str  # sha256 of the file bytes: identity + version + digest is the content key
    version: str = ""

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

    @property
    def key(self) -> str:
        return content_key(self.identity, self.digest, self.version)


def versioned(identity: str, version: str) -> str:
    """The identity of one version of an object: what the disk cache keys bytes by."""
    return f"{identity}@{version}" if version else identity


def content_key(identity: str, digest: str, version: str = "") -> str:
    """The cache key of an image: its stable identity and version plus its content digest."""
    return f"{versioned(identity, version)}#{digest[:16]}"


@dataclass(frozen=True)
class Validators:
    """What an http(s) server said identifies the version it sent (RFC 9110 validators)."""

    etag: str = ""
    last_modified: str = ""

    @classmethod
    def of(cls, headers: Mapping[str, str]) -> Validators:
        return cls(headers.get("ETag", ""), headers.get("Last-Modified", ""))

    @property
    def version(self) -> str:
        return (
            f"etag:{self.etag}" if self.etag else (f"lm:{self.last_modified}" if self.last_modified else "")
        )

    def conditions(self) -> dict[str, str]:
        """Headers that make the next GET a 304 while the object is unchanged."""
        if self.etag:
            return {"If-None-Match": self.etag}
        return {"If-Modified-Since": self.last_modified} if self.last_modified else {}

    def to_bytes(self) -> bytes:
        return json.dumps([self.etag, self.last_modified]).encode()

    @classmethod
    def from_bytes(cls, data: bytes | None) -> Validators:
        try:
            etag, modified = json.loads(data or b"null")
            return cls(str(etag), str(modified))
        except (TypeError, ValueError):
            return cls()


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB. Pillow's own convert clips 16- and 32-bit grey ("I;16", "I") to 0..255, which
    turns nearly every pixel white: those are scaled by their bit depth instead. A palette with
    transparency goes through RGBA, so its colours are kept (alpha is dropped, as for RGBA)."""
    if img.mode.startswith("I;16") or img.mode == "I":
        pixels = np.asarray(img, dtype=np.float64)
        top = max(65535.0, float(pixels.max(initial=0)))  # "I" holding 16-bit values is 16-bit
        grey = np.rint(np.clip(pixels, 0, None) * (255.0 / top)).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        return img.convert("RGBA").convert("RGB")
    return img.convert("RGB")


def decode_image(data: bytes, max_pixels: int, what: str = "image") -> Image.Image:
    """Decode bytes to an RGB image with its EXIF orientation applied.

    The pixel count is checked from the header, before any pixel is decoded.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(io.BytesIO(data))
            pixels = img.width * img.height
            if pixels > max_pixels:
                raise ImageError(
                    f"{what} is {img.width}x{img.height} = {pixels:,} pixels, above the limit of "
                    f"{max_pixels:,} (LABELSTACK_IMAGE_MAX_PIXELS)"
                )
            img.load()
            img = ImageOps.exif_transpose(img)
            return to_rgb(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{what} is not an image Pillow can read") from None
    except (
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise ImageError(f"{what} is corrupt or truncated: {exc}") from None


_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif", "GIF": ".gif"}


def upright_bytes(data: bytes, max_pixels: int, what: str = "image") -> tuple[bytes, str]:
    """The image as a dataset should store it: the original bytes when no EXIF rotation
    is needed (no re-encoding, so exports are byte-stable), else the rotated pixels as PNG."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            orientation = img.getexif().get(0x0112, 1)
            ext = _EXTENSIONS.get(img.format or "", "")
    except Exception:
        raise ImageError(f"{what} is not an image Pillow can read") from None
    if orientation in (1, None) and ext:
        return data, ext
    buf = io.BytesIO()
    decode_image(data, max_pixels, what).save(buf, format="PNG")
    return buf.getvalue(), ".png"


class ImageLoader:
    """Fetches and decodes images; thread-safe."""

    def __init__(
        self,
        *,
        max_pixels: int,
        max_bytes: int,
        timeout: float,
        cache: DiskCache | None = None,
        gcs_fetch: Callable[[str, float, str], bytes] | None = None,
        gcs_generation: Callable[[str, float], str] | None = None,
        local_roots: Sequence[Path] = (),
        max_downloads: int = 16,
    ) -> None:
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.cache = cache
        self.local_roots = tuple(Path(r).expanduser().resolve() for r in local_roots)
        self.max_downloads = max_downloads
        self._downloads = threading.BoundedSemaphore(max_downloads)
        self._gcs_fetch = gcs_fetch or _gcs_fetch
        self._gcs_generation = gcs_generation or _gcs_generation
        self._session = requests.Session()

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageLoader:
        """The limits and the disk cache the settings give."""
        return cls(
            max_pixels=settings.image_max_pixels,
            max_bytes=settings.image_max_bytes,
            timeout=settings.image_timeout,
            cache=DiskCache(settings.image_cache_path, settings.image_cache_bytes),
            local_roots=settings.local_roots,
            max_downloads=settings.max_downloads,
        )

    def load(
        self, value: str, ls: LabelStudioClient | None = None, deadline: float | None = None
    ) -> LoadedImage:
        """Fetch and decode one image. ``deadline`` (``time.monotonic()``) bounds the whole
        request it belongs to; the download's own is ``LABELSTACK_IMAGE_TIMEOUT`` from now."""
        ref = resolve_ref(value, ls.url if ls else None)
        got = self.fetch_versioned(ref, ls, deadline)
        image = decode_image(got.data, self.max_pixels, what=_short(value))
        digest = hashlib.sha256(got.data).hexdigest()
        return LoadedImage(image=image, identity=ref.identity, digest=digest, version=got.version)

    def load_many(
        self,
        values: Sequence[str],
        ls: LabelStudioClient | None = None,
        workers: int = 8,
        deadline: float | None = None,
    ) -> list[LoadedImage | ImageError]:
        """Load several images concurrently; a failure is returned in place, not raised."""

        def one(value: str) -> LoadedImage | ImageError:
            try:
                return self.load(value, ls, deadline)
            except ImageError as exc:
                log.warning("image %s failed: %s", _short(value), exc.reason)
                return exc

        if len(values) <= 1:
            return [one(v) for v in values]
        with ThreadPoolExecutor(max_workers=min(workers, len(values)), thread_name_prefix="image") as pool:
            return list(pool.map(one, values))

    def dataset_bytes(self, value: str, ls: LabelStudioClient | None = None) -> tuple[bytes, str]:
        """A task's image for a dataset folder: upright bytes and their extension."""
        ref = resolve_ref(value, ls.url if ls else None)
        return upright_bytes(self.fetch(ref, ls), self.max_pixels, _short(value))

    def fetch(
        self,
        ref: ImageRef,
        ls: LabelStudioClient | None = None,
        deadline: float | None = None,
        *,
        fresh: bool = False,
    ) -> bytes:
        """The image's bytes (see :meth:`fetch_versioned`)."""
        return self.fetch_versioned(ref, ls, deadline, fresh=fresh).data

    def fetch_versioned(
        self,
        ref: ImageRef,
        ls: LabelStudioClient | None = None,
        deadline: float | None = None,
        *,
        fresh: bool = False,
    ) -> Fetched:
        """The image's bytes and version. The disk cache serves only the object's current version:
        a GCS object's generation is read first (one metadata request), an http(s) or Label Studio
        file is asked for with a conditional GET (a 304 costs a round trip, no body). ``fresh``
        skips the cache altogether."""
        if ref.kind is SourceKind.LOCAL:
            return self._read_local(ref.location)
        if ref.kind is SourceKind.DATA:
            return Fetched(_decode_data_uri(ref.location), "")
        started = time.monotonic()
        own = started + self.timeout
        until = own if deadline is None else min(own, deadline)
        cache = None if fresh else self.cache
        with self._download_slot(ref, until):
            if ref.kind is SourceKind.GCS:
                got = self._fetch_gcs(ref, until, cache)
            else:
                got = self._fetch_conditional(ref, ls, until, cache)
        log.debug(
            "%s (%s): %d bytes in %.3fs", ref.identity, got.version, len(got.data), time.monotonic() - started
        )
        return got

    def _cache_put(self, ref: ImageRef, got: Fetched, validators: Validators | None = None) -> None:
        if self.cache is None or not got.version:
            return  # without a version a copy could never be trusted again
        self.cache.put(versioned(ref.identity, got.version), got.data)
        if validators is not None:
            self.cache.put(_validators_key(ref.identity), validators.to_bytes())

    def _fetch_conditional(
        self, ref: ImageRef, ls: LabelStudioClient | None, until: float, cache: DiskCache | None
    ) -> Fetched:
        known = Validators.from_bytes(cache.get(_validators_key(ref.identity))) if cache else Validators()
        body: bytes | None = None
        headers: Mapping[str, str] = {}
        if cache is not None and known.version:
            body, headers = self._get(ref, ls, until, known.conditions())
            cached = cache.get(versioned(ref.identity, known.version)) if body is None else None
            if cached is not None:  # 304: our copy is the current version
                return Fetched(cached, known.version)
        if body is None:  # nothing to compare with, or the copy was evicted: a plain GET
            body, headers = self._get(ref, ls, until, {})
        if body is None:
            raise ImageError(f"could not fetch {_short(ref.location)}: 304 to an unconditional request")
        validators = Validators.of(headers)
        got = Fetched(body, validators.version)
        self._cache_put(ref, got, validators)
        return got

    def _get(
        self, ref: ImageRef, ls: LabelStudioClient | None, until: float, conditions: Mapping[str, str]
    ) -> tuple[bytes | None, Mapping[str, str]]:
        """(body, headers); body None for a 304 Not Modified."""
        if ref.kind is SourceKind.LABEL_STUDIO:
            return self._fetch_label_studio(ref.location, ls, until, conditions)
        return self._fetch_http(ref.location, until, conditions)

    def _read_local(self, path: str) -> Fetched:
        resolved = confine(path, self.local_roots)
        try:
            info = resolved.stat()
            if stat.S_ISDIR(info.st_mode):
                raise ImageError(f"{path} is a directory, not an image")
            if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
                raise ImageError(f"{path} is not a regular file")
            if info.st_size > self.max_bytes:
                raise ImageError(f"{path} is {info.st_size:,} bytes, above the limit of {self.max_bytes:,}")
            # mtime and size name the version: a file replaced in place changes at least one.
            return Fetched(resolved.read_bytes(), f"mtime:{info.st_mtime_ns}-size:{info.st_size}")
        except FileNotFoundError:
            raise ImageError(f"no such file: {path}") from None
        except PermissionError:
            raise ImageError(f"permission denied reading {path}") from None
        except OSError as exc:
            raise ImageError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None

    @contextmanager
    def _download_slot(self, ref: ImageRef, until: float) -> Iterator[None]:
        """One of the worker's download slots, waited for no later than the deadline."""
        if not self._downloads.acquire(timeout=max(0.0, until - time.monotonic())):
            raise ImageError(
                f"could not fetch {_short(ref.location)}: all {self.max_downloads} download slots of "
                "this worker stayed busy until the deadline (LABELSTACK_MAX_DOWNLOADS)"
            )
        try:
            yield
        finally:
            self._downloads.release()

    def _read_stream(self, resp: requests.Response, what: str, until: float) -> bytes:
        """The body, read until ``until`` at the latest: each read waits at most the time that is
        left, so a server that trickles a byte at a time cannot stretch the download."""
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise ImageError(f"{what} is {int(declared):,} bytes, above the limit of {self.max_bytes:,}")
        raw = resp.raw
        chunks: list[bytes] = []
        total = 0
        while True:
            left = until - time.monotonic()
            if left <= 0:
                raise ImageError(f"could not fetch {what}: the download did not finish within its deadline")
            sock = getattr(getattr(raw, "connection", None), "sock", None)
            if sock is not None:
                sock.settimeout(left)
            chunk = raw.read1(1 << 16, decode_content=True)
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > self.max_bytes:
                raise ImageError(f"{what} is larger than the limit of {self.max_bytes:,} bytes")
            chunks.append(chunk)

    def _fetch_http(
        self, url: str, until: float, conditions: Mapping[str, str]
    ) -> tuple[bytes | None, Mapping[str, str]]:
        what = _short(url)
        with (
            _transport_errors(what),
            self._session.get(url, stream=True, timeout=_timeouts(until), headers=dict(conditions)) as resp,
        ):
            if resp.status_code == 304 and conditions:
                return None, resp.headers
            if resp.status_code != 200:
                raise ImageError(f"could not fetch {what}: HTTP {resp.status_code}")
            return self._read_stream(resp, what, until), resp.headers

    def _fetch_label_studio(
        self, path: str, ls: LabelStudioClient | None, until: float, conditions: Mapping[str, str]
    ) -> tuple[bytes | None, Mapping[str, str]]:
        what = _short(path)
        if ls is None:
            raise ImageError(
                f"{what} is a Label Studio file, but no Label Studio URL and token are configured "
                "(set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY)"
            )
        try:
            with (
                _transport_errors(f"{what} from Label Studio"),
                ls.request(
                    "GET",
                    path,
                    stream=True,
                    timeout=_timeouts(until),
                    what=f"fetch {what}",
                    headers=dict(conditions),
                ) as resp,
            ):
                if resp.status_code == 304 and conditions:
                    return None, resp.headers
                return self._read_stream(resp, what, until), resp.headers
        except LabelStudioError as exc:
            raise ImageError(
                f"could not fetch {what} from Label Studio: {exc.status or 'no answer'} {exc.reason}"
            ) from None

    def _fetch_gcs(self, ref: ImageRef, until: float, cache: DiskCache | None) -> Fetched:
        uri = ref.location
        try:
            generation = self._gcs_generation(uri, max(0.1, until - time.monotonic()))
            key = versioned(ref.identity, generation)
            cached = cache.get(key) if cache is not None else None
            if cached is not None:
                return Fetched(cached, generation)
            data = self._gcs_fetch(uri, max(0.1, until - time.monotonic()), generation)
        except ImageError:
            raise
        except Exception as exc:
            raise ImageError(f"could not fetch {uri}: {type(exc).__name__}: {exc}") from None
        if len(data) > self.max_bytes:
            raise ImageError(f"{uri} is {len(data):,} bytes, above the limit of {self.max_bytes:,}")
        got = Fetched(data, generation)
        self._cache_put(ref, got)
        return got


#: Never served, whatever the roots: reading them leaks the process's environment or blocks.
FORBIDDEN_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


def confine(path: str, roots: Sequence[Path]) -> Path:
    """``path`` resolved (symlinks and ``..`` followed), if it lies under one of ``roots``.
    Raises :class:`ImageError` before anything is opened otherwise."""
    if not roots:
        raise ImageError(
            f"{_short(path)} is a local path, and this backend serves no local files "
            "(set LABELSTACK_LOCAL_ROOTS to the folders it may read)"
        )
    try:
        resolved = (Path.cwd() / path).resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
        raise ImageError(f"{_short(path)} is not a usable local path") from None
    if any(resolved.is_relative_to(f) for f in FORBIDDEN_ROOTS) or not any(
        resolved.is_relative_to(r) for r in roots
    ):
        raise ImageError(
            f"{_short(path)} is outside the folders this backend may read (LABELSTACK_LOCAL_ROOTS)"
        )
    return resolved


@contextmanager
def _transport_errors(what: str) -> Iterator[None]:
    """A failed or overdue transfer as the task's reason (the body is read outside requests'
    own wrapping, so urllib3's errors arrive too)."""
    try:
        yield
    except (requests.Timeout, urllib3.exceptions.TimeoutError):
        raise ImageError(f"could not fetch {what}: the download did not finish within its deadline") from None
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        raise ImageError(f"could not fetch {what}: {type(exc).__name__}") from None


def _timeouts(until: float) -> tuple[float, float]:
    """(connect, read) for requests: neither waits past the deadline."""
    left = max(0.1, until - time.monotonic())
    return min(left, 5.0), left


def _validators_key(identity: str) -> str:
    return f"{identity}#validators"


@contextmanager
def _gcs_errors(uri: str) -> Iterator[None]:
    from google.api_core import exceptions as gexc

    try:
        yield
    except gexc.NotFound:
        raise ImageError(f"no such object: {uri}") from None
    except gexc.Forbidden:
        raise ImageError(f"access denied to {uri}: check the service account's storage permissions") from None


def _gcs_generation(uri: str, timeout: float) -> str:
    """The object's generation: GCS gives a replaced object a new one."""
    from labelstack_backend import gcs

    bucket, key = gcs.parse_gs_uri(uri)
    with _gcs_errors(uri):
        blob = gcs.client().bucket(bucket).get_blob(key, timeout=timeout)
    if blob is None:
        raise ImageError(f"no such object: {uri}")
    return f"g{blob.generation}"


def _gcs_fetch(uri: str, timeout: float, generation: str) -> bytes:
    """That generation's bytes, so that the cache never files newer bytes under an older version."""
    from labelstack_backend import gcs

    bucket, key = gcs.parse_gs_uri(uri)
    number = int(generation[1:]) if generation[1:].isdigit() else None
    with _gcs_errors(uri):
        data: bytes = (
            gcs.client().bucket(bucket).blob(key, generation=number).download_as_bytes(timeout=timeout)
        )
    return data


def _decode_data_uri(uri: str) -> bytes:
    header, _, payload = uri.partition(",")
    if ";base64" not in header:
        raise ImageError("only base64 data: URIs are supported")
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        raise ImageError("the data: URI is not valid base64") from None


def _short(value: str, limit: int = 120) -> str:
    if value.startswith("data:"):
        return "inline data: image"
    return value if len(value) <= limit else value[: limit - 3] + "..."
