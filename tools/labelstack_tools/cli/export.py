"""``labelstack export``: a project's finished annotations as a versioned YOLO-seg or COCO dataset."""

from __future__ import annotations

import argparse

from labelstack_backend.images import ImageLoader
from labelstack_tools.cli.common import (
    add_label_studio_options,
    console,
    label_studio,
    resolve_project,
    settings,
)
from labelstack_tools.datasets.export import ExportOptions, export_project

HELP = "export finished annotations as a versioned YOLO-seg or COCO dataset"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "export",
        help=HELP,
        description=HELP + ". Each export lands in <dest>/<format>-<version>/ "
        "with a manifest.json; exporting again with nothing changed writes nothing.",
    )
    add_label_studio_options(p)
    p.add_argument("dest", help="a local folder or gs://bucket/prefix")
    p.add_argument("--format", choices=["yolo", "coco"], default="yolo")
    p.add_argument(
        "--images",
        choices=["copy", "link"],
        default="copy",
        help="copy image files into the dataset, or (COCO only) reference their URIs",
    )
    p.add_argument(
        "--brush-as", choices=["rle", "polygon"], default="rle", help="COCO: brush masks as RLE or polygons"
    )
    p.add_argument("--val-fraction", type=float, default=0.2, help="YOLO: share of tasks in the val split")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    loader = ImageLoader.from_settings(settings())
    ls = label_studio(args)
    project = resolve_project(ls, args.project)
    options = ExportOptions(
        format=args.format, images=args.images, brush_as=args.brush_as, val_fraction=args.val_fraction
    )
    with console.status("exporting") as status:
        result = export_project(ls, project, args.dest, loader, options, progress=status.update)
    counts = result.manifest["counts"]
    verb = "exported" if result.created else "unchanged since the last export:"
    console.print(f"{verb} version {result.version} -> {result.location}")
    console.print(
        f"  {counts['images']} images, {counts['objects']} objects: "
        + ", ".join(f"{k} {v}" for k, v in counts["per_class"].items())
    )
    for reason in result.manifest["skipped"]:
        console.print(f"  [yellow]skipped[/] {reason}")
    print(result.location)
    return 0
