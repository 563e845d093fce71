"""``dsprep convert``: a data set written in another format (any format dsprep reads to any it writes)."""
from __future__ import annotations

from pathlib import Path

import click

from .common import FormatChoice, finish, load, run_jobs, shared, start_summary

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
@shared("dataset", "classes", "run", "workers")
def convert(dataset, target, out, overwrite, common):
    """Convert DATASET to another format: dsprep convert DATASET --to voc|dota|coco|yolo|yolo-obb|labelme --out DIR.

    Class indices (YOLO) and COCO category ids follow the data set's class list (--classes pins it); COCO ids are
    kept. What the target format cannot hold is counted and named in the summary (polygon_to_box,
    segmentation_dropped, crowd_skipped ...). `convert voc-to-dota` and `convert dota-to-voc` are kept as
    aliases of --to dota and --to voc."""
    from ..formats import format_spec
    from ..jobs.convert import ConvertOptions, LOSSY, convert_one, unique_names, write_dataset_files
    from ..outputs import OutputDir
    ds = load(dataset, common)
    summary = start_summary(f"convert {ds.format}-to-{target}", ds)
    with OutputDir(out, overwrite=overwrite, inputs=[dataset]) as out_dir:
        writer = format_spec(target).writer(ds.classes, {"dataset_meta": ds.meta,
                                                         "root": str(Path(out_dir).resolve())})
        records, renamed = unique_names(ds.records, writer)
        if renamed:
            summary.add("renamed_duplicate_name", renamed)
        opts = ConvertOptions(out=str(out_dir), writer=writer, image_files=ds.image_getter is None)
        done = [item[0] for item, r in run_jobs(convert_one, [(r, opts) for r in records], summary, common,
                                                "converting", name_of=lambda it: it[0].image_path) if r is not None]
        for kind, n in write_dataset_files(out_dir, writer, done).items():
            summary.add(kind, n)
    finish(summary, str(out_dir), ["images", "objects"], common)
    for kind in summary.counts:
        if kind in LOSSY and summary.counts[kind]:
            click.echo(f"  {kind}: {summary.counts[kind]} ({LOSSY[kind].format(target=target.upper())})", err=True)
