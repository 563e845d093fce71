"""``dsprep convert``: a data set written in another format (any format dsprep reads to any it writes)."""
from __future__ import annotations

import click

from .common import FormatChoice, explain_lossy, finish, load, map_classes, shared, start_summary

# the names convert had before it took --to; they stay
ALIASES = {"voc-to-dota": "dota", "dota-to-voc": "voc"}


class _ConvertCommand(click.Command):
    """``convert voc-to-dota SRC ...`` is ``convert SRC ... --to dota``."""

    def parse_args(self, ctx, args):
        if args and args[0] in ALIASES:
            args = list(args[1:]) + ["--to", ALIASES[args[0]]]
        return super().parse_args(ctx, args)


@click.command(cls=_ConvertCommand)
@click.argument("dataset", type=click.Path())
@click.option("--to", "target", required=True, type=FormatChoice("write"),
              help="The format to write (any format is read: detected, or --format).")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Output folder (never inside the input data set).")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out folder.")
@shared("dataset", "classes", "classmap", "run", "workers")
def convert(dataset, target, out, overwrite, common):
    """Convert DATASET to another format: dsprep convert DATASET --to voc|dota|coco|yolo|yolo-obb|yolo-seg|labelme
    --out DIR.

    Class indices (YOLO, VOC's SegmentationClass values) and COCO category ids follow the data set's class list
    (--classes pins it); COCO ids are kept. Object shapes travel: polygons, RLE masks, quads and VOC's
    SegmentationObject masks become VOC masks, COCO polygons or RLE, labelme and YOLO-seg polygons. What the target
    format cannot hold is counted and named in the summary (polygon_to_box, segmentation_dropped,
    mask_holes_dropped, crowd_skipped ...). `convert voc-to-dota` and `convert dota-to-voc` are kept as
    aliases of --to dota and --to voc."""
    from ..jobs.convert import write_dataset
    from ..outputs import OutputDir
    ds = load(dataset, common)
    summary = start_summary(f"convert {ds.format}-to-{target}", ds)
    ds = map_classes(ds, common, summary)
    with OutputDir(out, overwrite=overwrite, inputs=[dataset]) as out_dir:
        write_dataset(out_dir, target, ds.classes, ds.meta, ds.records, summary, common, desc="converting",
                      image_files=ds.image_getter is None, source_format=ds.format)
    finish(summary, str(out_dir), ["images", "objects"], common)
    explain_lossy(summary, target)
