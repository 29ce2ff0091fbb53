"""Sizes of the built images: uncompressed (the store's layers) and compressed (gzip layers, what
a registry stores and a node pulls), plus the biggest folders of the backend's virtualenv.

    python -m bench.images            # after `make images` (buildah)

Pushes each image into a temporary OCI layout with gzip layers and sums the blobs (compressed),
then decompresses each layer and counts it (uncompressed: the layers' tar streams). Needs buildah and the images `scripts/images.sh` tagged.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.support import containers

MB = 1_000_000


def layer_sizes(image: str) -> tuple[int, int]:
    """(uncompressed, compressed) bytes of the image as a registry holds it: pushed into a
    temporary OCI layout with gzip layers (config and manifest included in the compressed
    figure), each layer then decompressed and counted."""
    with tempfile.TemporaryDirectory() as tmp:
        layout = Path(tmp) / "oci"
        subprocess.run(
            [
                "buildah",
                "push",
                "--quiet",
                "--compression-format",
                "gzip",
                "--format",
                "oci",
                image,
                f"oci:{layout}",
            ],
            check=True,
            capture_output=True,
        )
        blobs = layout / "blobs" / "sha256"
        compressed = sum(blob.stat().st_size for blob in blobs.iterdir())
        (entry,) = json.loads((layout / "index.json").read_text())["manifests"]
        manifest = json.loads((blobs / entry["digest"].split(":", 1)[1]).read_text())
        uncompressed = 0
        for layer in manifest["layers"]:
            with gzip.open(blobs / layer["digest"].split(":", 1)[1]) as stream:
                while chunk := stream.read(1 << 22):
                    uncompressed += len(chunk)
        return uncompressed, compressed


def largest_folders(image: str, folder: str, count: int) -> list[tuple[str, int]]:
    """The ``count`` biggest entries of ``folder`` inside the image, in bytes."""
    with containers.container(image) as ctr:
        done = ctr.exec(["sh", "-c", f"du -sb {folder}/* | sort -rn | head -n {count}"])
    rows = []
    for line in done.stdout.splitlines():
        size, path = line.split("\t", 1)
        rows.append((Path(path).name, int(size)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    report: dict[str, dict[str, Any]] = {}
    for part in ("operator", "backend"):
        image = containers.image(part)
        uncompressed, compressed = layer_sizes(image)
        report[part] = {
            "image": image,
            "uncompressed_mb": round(uncompressed / MB),
            "compressed_mb": round(compressed / MB),
        }
    site = "/opt/venv/lib/python3*/site-packages"
    report["backend"]["largest"] = {
        name: round(size / MB) for name, size in largest_folders(containers.image("backend"), site, 8)
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print("| image | uncompressed | compressed (gzip layers) |")
    print("| --- | --- | --- |")
    for part in ("operator", "backend"):
        row = report[part]
        print(f"| `{row['image']}` | {row['uncompressed_mb']} MB | {row['compressed_mb']} MB |")
    print()
    print(
        "backend site-packages, largest:",
        ", ".join(f"{k} {v} MB" for k, v in report["backend"]["largest"].items()),
    )


if __name__ == "__main__":
    main()
