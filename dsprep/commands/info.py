"""``dsprep info``: what is in a data set, and what is wrong with it."""
from __future__ import annotations

import contextlib
import json

import click

from .. import signals
from .common import load, run_jobs, shared, start_summary


@click.command()
@click.argument("dataset", type=click.Path())
@click.option("--check-images", is_flag=True,
              help="Also decode every image and list each one that is empty, truncated or corrupt (slower; "
                   "parallel with --workers).")
@click.option("--rare-below", type=click.IntRange(0, None), default=20, show_default=True,
              help="A class with fewer objects than this is reported as rare_class.")
@click.option("--plots", default=None, type=click.Path(file_okay=False),
              help="Also draw charts into this folder as PNG: objects per class (per split), box width against "
                   "height, aspect ratios, objects per image, box centres. Needs dsprep[plots] (matplotlib).")
@click.option("--overwrite", is_flag=True, help="Write the charts into a non-empty --plots folder.")
@click.option("--masks/--no-masks", default=None,
              help="Read the object masks: mask pixels per class, and masks that disagree with their boxes or "
                   "images (mask_outside_box, mask_empty, mask_unreadable) [default: when the data set keeps its "
                   "masks as images (VOC SegmentationObject); COCO and labelme shapes are rasterized only with "
                   "--masks, as images are decoded only with --check-images].")
@shared("dataset", "classes", "run", "workers")
def info(dataset, check_images, rare_below, plots, overwrite, masks, common):
    """What is in a data set, and what is wrong with it (image headers, and object masks where the data set has
    them; --check-images decodes every image).

    With --json the report itself is printed as one JSON document."""
    from ..info import check_images as check_all, check_masks, format_summary, summarize
    from ..dataset import keeps_mask_files
    from ..ops.maskstats import has_masks, masks_wanted
    from ..outputs import OutputDir
    if plots is not None:
        from ..ops.plots import pyplot
        pyplot()  # a missing extra is one line before any work
    # the charts' folder is checked (not inside the data set, empty unless --overwrite) before any work
    with (OutputDir(plots, overwrite=overwrite, inputs=[dataset], option="--plots") if plots is not None
          else contextlib.nullcontext()) as out_dir:
        ds = load(dataset, common)
        if check_images:
            check_all(ds, lambda fn, items, desc: run_jobs(fn, items, start_summary("check"), common, desc,
                                                            name_of=lambda it: it[0]))
        mask_stats = None
        # by default only masks kept as images (VOC: read for the images that have one); COCO / labelme shapes
        # would be rasterized object by object (~10x the rest of info on a 100,000-annotation file): --masks
        if masks_wanted(masks, ds.format, default=keeps_mask_files(ds.format)):
            mask_stats = check_masks(ds, lambda fn, items, desc: run_jobs(
                fn, items, start_summary("masks"), common, desc, name_of=lambda it: it[0].image_path))
        s = summarize(ds, rare_below, mask_stats)
        if out_dir is not None:
            s["plots"] = _draw(ds, out_dir)
    signals.settle()  # the report is all that is left: a late Ctrl-C must not add a line to it
    if common.as_json:
        click.echo(json.dumps(s, ensure_ascii=False, indent=1))
    else:
        click.echo(format_summary(s))
        if masks is None and mask_stats is None and has_masks(ds.format) and not keeps_mask_files(ds.format):
            click.echo(f"masks: not read ({ds.format} shapes; --masks counts their pixels per class and checks them)")


def _draw(ds, out_dir):
    """Write the charts into ``out_dir`` (through the one output path); returns their paths."""
    from ..ops.boxstats import gather
    from ..outputs import atomic_write_bytes
    from ..ops.plots import make_charts
    charts = make_charts(gather(ds.records, ds.classes), [r.split for r in ds.records])
    for name, png in charts.items():
        atomic_write_bytes(out_dir / name, png)
    click.echo(f"charts: {len(charts)} PNG files -> {out_dir}", err=True)
    return [str(out_dir / name) for name in charts]
