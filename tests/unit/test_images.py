from __future__ import annotations

import base64
import io
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labelstack_backend.errors import ImageError
from labelstack_backend.imagecache import DiskCache
from labelstack_backend.images import ImageLoader, SourceKind, decode_image, resolve_ref, strip_signature
from labelstack_tools.localstack.ports import free_port
from tests.support.trickle import TrickleServer

LS = "http://ls.example:8080"


@pytest.mark.parametrize(
    ("value", "kind", "identity"),
    [
        (
            "/data/upload/3/abc-photo.jpg",
            SourceKind.LABEL_STUDIO,
            "label-studio:/data/upload/3/abc-photo.jpg",
        ),
        (
            "/data/local-files/?d=runway/look%201.jpg",
            SourceKind.LABEL_STUDIO,
            "local-files:runway/look 1.jpg",
        ),
        (
            "/tasks/7/resolve/?fileuri=" + base64.b64encode(b"gs://bucket/a.jpg").decode(),
            SourceKind.LABEL_STUDIO,
            "storage:gs://bucket/a.jpg",
        ),
        (
            "/projects/2/presign/?fileuri=" + base64.b64encode(b"s3://b/k.png").decode().rstrip("="),
            SourceKind.LABEL_STUDIO,
            "storage:s3://b/k.png",
        ),
        (f"{LS}/data/upload/3/x.jpg", SourceKind.LABEL_STUDIO, "label-studio:/data/upload/3/x.jpg"),
        ("gs://archive/ss24/look-01.jpg", SourceKind.GCS, "gs://archive/ss24/look-01.jpg"),
        ("file:///srv/img/a.png", SourceKind.LOCAL, "file:/srv/img/a.png"),
        (
            "https://cdn.example/a.jpg?X-Goog-Signature=abc&X-Goog-Expires=600&w=640",
            SourceKind.HTTP,
            "url:https://cdn.example/a.jpg?w=640",
        ),
    ],
)
def test_resolve_ref_kinds_and_stable_identities(value, kind, identity):
    ref = resolve_ref(value, LS)
    assert (ref.kind, ref.identity) == (kind, identity)


def test_signed_urls_of_the_same_object_share_an_identity():
    a = "https://s3.example/b/k.jpg?X-Amz-Signature=aaa&X-Amz-Date=1&X-Amz-Expires=60"
    b = "https://s3.example/b/k.jpg?X-Amz-Signature=bbb&X-Amz-Date=2&X-Amz-Expires=60"
    assert resolve_ref(a).identity == resolve_ref(b).identity
    assert strip_signature("https://h/p?sig=1&se=2&page=3") == "https://h/p?page=3"


@pytest.mark.parametrize("value", ["", "   ", "s3://bucket/key.jpg", "ftp://x/y.jpg", "just-a-name.jpg"])
def test_unusable_references_fail_with_a_reason(value):
    with pytest.raises(ImageError) as err:
        resolve_ref(value, LS)
    assert err.value.reason


def png_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (60, 20), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 10, 20))  # blue strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif, quality=100)
    out = decode_image(buf.getvalue(), max_pixels=10_000)
    assert out.size == (20, 60)
    top = np.asarray(out)[2, 10]
    assert top[2] > 200 and top[0] < 60  # the left strip is now on top


def test_decompression_bomb_is_refused_before_decoding():
    huge = Image.new("1", (20_000, 20_000))
    data = png_bytes(huge, optimize=True)
    assert len(data) < 2_000_000
    started = time.monotonic()
    with pytest.raises(ImageError, match="above the limit"):
        decode_image(data, max_pixels=40_000_000)
    assert time.monotonic() - started < 2  # header only: no 400 MP decode happened


@pytest.mark.parametrize("data", [b"", b"not an image at all", png_bytes(Image.new("RGB", (40, 40)))[:60]])
def test_corrupt_and_truncated_images_fail_with_a_reason(data):
    import ultralytics  # noqa: F401  - it patches Image.open; bad bytes must still be an ImageError

    with pytest.raises(ImageError):
        decode_image(data, max_pixels=10_000_000)


def loader(tmp_path, **kw):
    args = {
        "max_pixels": 10_000_000,
        "max_bytes": 5_000_000,
        "timeout": 3.0,
        "cache": DiskCache(tmp_path / "c", 10**8),
        "local_roots": (tmp_path,),
    }
    args.update(kw)
    return ImageLoader(**args)


def test_http_images_load_and_come_from_the_cache_afterwards(tmp_path, file_server):
    img = Image.new("RGB", (30, 20), (1, 2, 3))
    (file_server.root / "a.png").write_bytes(png_bytes(img))
    ld = loader(tmp_path)
    first = ld.load(f"{file_server.url}/a.png?X-Amz-Signature=one")
    second = ld.load(f"{file_server.url}/a.png?X-Amz-Signature=two")  # re-signed URL: same object
    assert (second.width, second.height, second.digest) == (30, 20, first.digest)
    # The server's 304 to the conditional GET confirmed the copy: its bytes came from the cache.
    assert ld.cache is not None and ld.cache.hits == 2 and first.version.startswith("lm:")


def test_http_errors_are_image_errors_with_the_status(tmp_path, file_server):
    with pytest.raises(ImageError, match="HTTP 404"):
        loader(tmp_path).load(f"{file_server.url}/missing.jpg")


def test_unreachable_host_fails_fast(tmp_path):
    started = time.monotonic()
    with pytest.raises(ImageError, match="could not fetch"):
        loader(tmp_path).load(f"http://127.0.0.1:{free_port()}/x.jpg")
    assert time.monotonic() - started < 5


def test_byte_limit_applies_to_downloads_and_files(tmp_path, file_server):
    big = png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)))
    (file_server.root / "big.png").write_bytes(big)
    (tmp_path / "big.png").write_bytes(big)
    ld = loader(tmp_path, max_bytes=10_000)
    with pytest.raises(ImageError, match="limit"):
        ld.load(f"{file_server.url}/big.png")
    with pytest.raises(ImageError, match="limit"):
        ld.load(str(tmp_path / "big.png"))


def test_label_studio_urls_need_label_studio_access(tmp_path):
    with pytest.raises(ImageError, match="LABEL_STUDIO_URL"):
        loader(tmp_path).load("/data/upload/1/x.jpg")


def test_data_uris_and_local_files(tmp_path):
    raw = png_bytes(Image.new("RGB", (7, 5)))
    uri = "data:image/png;base64," + base64.b64encode(raw).decode()
    assert loader(tmp_path).load(uri).image.size == (7, 5)
    (tmp_path / "x.png").write_bytes(raw)
    assert loader(tmp_path).load(str(tmp_path / "x.png")).image.size == (7, 5)
    with pytest.raises(ImageError, match="no such file"):
        loader(tmp_path).load(str(tmp_path / "nope.png"))


def test_load_many_keeps_order_and_isolates_failures(tmp_path, file_server):
    for i in range(3):
        (file_server.root / f"{i}.png").write_bytes(png_bytes(Image.new("RGB", (10 + i, 10))))
    values = [f"{file_server.url}/0.png", f"{file_server.url}/404.png", f"{file_server.url}/2.png"]
    out = loader(tmp_path).load_many(values)
    assert out[0].width == 10 and isinstance(out[1], ImageError) and out[2].width == 12


def test_disk_cache_stays_within_its_byte_bound(tmp_path):
    cache = DiskCache(tmp_path / "c", max_bytes=10_000)
    for i in range(30):
        cache.put(f"k{i}", bytes(1000))
        time.sleep(0.002)
    assert cache.size() <= 10_000
    assert cache.get("k29") is not None
    assert cache.get("k0") is None


def _encoded(img, fmt="PNG", **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_16_bit_grey_is_scaled_not_clipped():
    pixels = np.zeros((8, 8), dtype=np.uint16)
    pixels[0, :4] = (0, 257 * 64, 257 * 128, 65535)
    data = _encoded(Image.fromarray(pixels))
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    rgb = decode_image(data, 10**6)
    assert rgb.mode == "RGB"
    assert [rgb.getpixel((x, 0)) for x in range(4)] == [(0, 0, 0), (64,) * 3, (128,) * 3, (255,) * 3]
    assert np.asarray(rgb)[1:].max() == 0, "black stays black (Pillow's own convert turns it white-ish)"


@pytest.mark.parametrize(
    ("image", "fmt", "expected"),
    [
        (Image.new("CMYK", (4, 4), (255, 0, 0, 0)), "JPEG", (0, 255, 255)),
        (Image.new("CMYK", (4, 4), (0, 0, 0, 0)), "TIFF", (255, 255, 255)),
        (Image.new("LA", (4, 4), (100, 0)), "PNG", (100, 100, 100)),
        (Image.new("RGBA", (4, 4), (10, 20, 30, 0)), "PNG", (10, 20, 30)),
    ],
    ids=["cmyk-jpeg", "cmyk-tiff", "la", "rgba"],
)
def test_other_modes_keep_their_colours(image, fmt, expected):
    got = decode_image(_encoded(image, fmt), 10**6).getpixel((0, 0))
    assert all(abs(a - b) <= 2 for a, b in zip(got, expected, strict=True)), got


def test_a_palette_with_transparency_keeps_its_colours():
    img = Image.new("P", (4, 4), 0)
    img.putpalette([200, 10, 20, 0, 0, 255] + [0] * 762)
    img.putpixel((1, 1), 1)
    rgb = decode_image(_encoded(img, transparency=0), 10**6)
    assert rgb.getpixel((0, 0)) == (200, 10, 20) and rgb.getpixel((1, 1)) == (0, 0, 255)


def _png_16_bit_rgb(pixels: np.ndarray) -> bytes:
    """A 48-bit RGB PNG written by hand: Pillow cannot save one."""
    height, width, _ = pixels.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_16_bit_rgb_is_scaled_per_channel():
    pixels = np.zeros((2, 3, 3), dtype=np.uint16)
    pixels[0, 0] = (65535, 0, 257 * 128)
    pixels[0, 1] = (257 * 10, 257 * 20, 257 * 30)
    rgb = decode_image(_png_16_bit_rgb(pixels), 10**6)
    assert rgb.getpixel((0, 0)) == (255, 0, 128) and rgb.getpixel((1, 0)) == (10, 20, 30)
    assert rgb.getpixel((2, 1)) == (0, 0, 0)


@pytest.fixture
def outside(tmp_path):
    """An image beside the allowed root, and a symlink to it from inside."""
    root = tmp_path / "root"
    root.mkdir()
    secret = tmp_path / "secret.png"
    secret.write_bytes(png_bytes(Image.new("RGB", (3, 3))))
    (root / "link.png").symlink_to(secret)
    (root / "ok.png").write_bytes(png_bytes(Image.new("RGB", (5, 4))))
    return root, secret


def test_local_files_are_served_only_under_their_roots(tmp_path, outside, monkeypatch):
    root, secret = outside
    confined = loader(tmp_path, local_roots=(root,))
    assert confined.load(str(root / "ok.png")).image.size == (5, 4)
    assert confined.load(f"file://{root / 'ok.png'}").image.size == (5, 4)
    opened = []
    real_read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda p: opened.append(p) or real_read(p))
    refused = [
        str(secret),
        f"file://{secret}",
        str(root / ".." / "secret.png"),
        str(root / "link.png"),  # a symlink out of the root is followed, then refused
        "/etc/passwd",
        "file:///etc/passwd",
    ]
    for value in refused:
        with pytest.raises(ImageError, match="outside the folders this backend may read"):
            confined.load(value)
    assert opened == [], "nothing outside the roots is opened"


@pytest.mark.parametrize(
    "value", ["/proc/self/environ", "file:///proc/self/environ", "/sys/kernel/notes", "/dev/zero"]
)
def test_proc_sys_and_dev_are_never_read_even_under_a_root_of_slash(tmp_path, value):
    with pytest.raises(ImageError, match="outside the folders"):
        loader(tmp_path, local_roots=(Path("/"),)).load(value)


def test_without_roots_local_paths_are_refused_with_the_setting_to_use(tmp_path):
    (tmp_path / "x.png").write_bytes(png_bytes(Image.new("RGB", (2, 2))))
    with pytest.raises(ImageError, match="LABELSTACK_LOCAL_ROOTS"):
        loader(tmp_path, local_roots=()).load(str(tmp_path / "x.png"))


def test_a_fifo_under_a_root_is_refused_instead_of_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(ImageError, match="not a regular file"):
        loader(tmp_path).load(str(tmp_path / "pipe.png"))


def test_the_roots_setting_splits_and_resolves(tmp_path):
    from labelstack_backend.settings import Settings

    roots = Settings.from_env(
        {"LABELSTACK_LOCAL_ROOTS": f"{tmp_path}/a/../b,{tmp_path}/c:{tmp_path}/d"}
    ).local_roots
    assert roots == (tmp_path / "b", tmp_path / "c", tmp_path / "d")
    assert Settings.from_env({}).local_roots == ()


def test_a_download_has_one_deadline_for_all_its_reads(tmp_path):
    server = TrickleServer(interval=0.1)
    try:
        started = time.monotonic()
        with pytest.raises(ImageError, match="deadline"):
            loader(tmp_path, timeout=1.5).load(f"http://127.0.0.1:{server.port}/slow.png")
        assert time.monotonic() - started < 3.0
    finally:
        server.close()


def test_a_request_deadline_bounds_its_downloads_too(tmp_path):
    server = TrickleServer(interval=0.1)
    try:
        started = time.monotonic()
        with pytest.raises(ImageError, match="deadline"):
            loader(tmp_path, timeout=30).load(
                f"http://127.0.0.1:{server.port}/slow.png", deadline=time.monotonic() + 1.0
            )
        assert time.monotonic() - started < 2.5
    finally:
        server.close()


def test_downloads_wait_for_a_slot_no_later_than_their_deadline(tmp_path, file_server):
    (file_server.root / "a.png").write_bytes(png_bytes(Image.new("RGB", (4, 4))))
    one = loader(tmp_path, max_downloads=1)
    assert one._downloads.acquire(blocking=False)  # another request holds the only slot
    started = time.monotonic()
    with pytest.raises(ImageError, match="download slots"):
        one.load(f"{file_server.url}/a.png", deadline=time.monotonic() + 0.5)
    assert time.monotonic() - started < 1.5
    one._downloads.release()
    assert one.load(f"{file_server.url}/a.png").image.size == (4, 4)
