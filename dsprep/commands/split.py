"""``dsprep split``: the data set written again with new splits (train/val/test ...), stratified by class."""
from __future__ import annotations

import click

from ..core import UsageError
from ..jobs.convert import write_dataset
from .common import FormatChoice, library_parser, explain_lossy, finish, load, map_classes, run_jobs, shared, start_summary


_ratios = library_parser("ops.stratify", "parse_ratios")


def _group(ctx, param, value):
    if value in ("none", "duplicates"):
        return value
    if value.startswith("regex:"):
        from ..ops.stratify import groups_by_regex
        try:
            groups_by_regex([], value[len("regex:"):])
        except ValueError as e:
            raise click.BadParameter(str(e), ctx, param) from e
        return value
    raise click.BadParameter(f"'{value}' is not none, regex:PATTERN or duplicates", ctx, param)


@click.command("split")
@click.argument("dataset", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Output folder (never inside the input data set).")
@click.option("--ratios", required=True, callback=_ratios,
              help="The splits and their fractions of the images: NAME=FRACTION,... summing to 1, e.g. "
                   "train=0.7,val=0.2,test=0.1.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed: the same seed gives the same split (byte-identical output), another seed another.")
@click.option("--group", default="none", show_default=True, callback=_group,
              help="Keep together what must not be split: none; regex:PATTERN: images whose file names give the "
                   "same first group of PATTERN (searched in the path relative to DATASET when PATTERN has a '/'), "
                   "e.g. regex:'^(.+)_frame\\d+'; duplicates: near-duplicate images (as dsprep dedup finds them).")
@click.option("--link", type=click.Choice(["hard", "symlink", "copy"]), default="hard", show_default=True,
              help="How images are placed: hard links (copies across file systems), symbolic links, or copies.")
@click.option("--to", "target", default=None, type=FormatChoice("write"),
              help="Write in this format [default: the data set's own].")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out folder.")
@shared("dataset", "classes", "classmap", "run", "workers")
def split(dataset, out, ratios, seed, group, link, target, overwrite, common):
    """Write DATASET again with new splits: dsprep split DATASET --out DIR --ratios train=0.7,val=0.2,test=0.1.

    Every image goes to exactly one split. The split is stratified for multi-object images: each class's objects
    are divided close to the asked fractions (far closer than a random split), the images of each split are within
    2% of the asked fraction (one image on small data sets), and every class with at least as many images as there
    are splits is in every split. The summary gives each split's images and objects and how far the classes are
    from the asked fractions, beside a random split of the same images."""
    import numpy as np
    from ..formats import format_spec, writable_formats
    from ..outputs import OutputDir
    from ..ops.stratify import assign_splits, describe
    ds = load(dataset, common)
    if target is None and format_spec(ds.format).writer is None:
        raise UsageError(f"--to: dsprep cannot write {ds.format} data sets; choose a format with --to "
                         f"({', '.join(writable_formats())})")
    target = target or ds.format
    summary = start_summary("split", ds)
    ds = map_classes(ds, common, summary)
    dedup = {}
    if group == "duplicates":  # the images are read (in --workers processes) to find near copies
        dedup["run"] = lambda fn, items, desc: run_jobs(fn, items, summary, common, desc, name_of=lambda it: it[0])
    records, quality = assign_splits(ds, ratios, group, np.random.default_rng(seed), **dedup)
    with OutputDir(out, overwrite=overwrite, inputs=[dataset]) as out_dir:
        done = write_dataset(out_dir, target, ds.classes, ds.meta, records, summary, common, link=link,
                             desc="splitting", image_files=ds.image_getter is None, source_format=ds.format)
    lines, counts = describe(done, ratios, quality)
    for k, v in counts.items():
        summary.add(k, v)
    finish(summary, str(out_dir), ["images", "objects"] + list(counts), common)
    for line in lines:
        click.echo(line, err=True)
    explain_lossy(summary, target)
