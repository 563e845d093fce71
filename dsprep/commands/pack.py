"""``dsprep voc-to-h5`` / ``voc-to-pickle``: a data set packed into one file for training input."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from ..ops.color import METHODS as COLOR_METHODS
from ..core import OutputError, UsageError
from ..report import part_kind
from .common import SIZE, class_map, finish, load, shared, start_summary


def pack_options(f):
    f = click.option("--overwrite", is_flag=True, help="Replace an existing OUT file.")(f)
    f = click.option("--color", "color_method", default=None,
                     type=click.Choice(COLOR_METHODS),
                     help="Colour-correct every image first (see dsprep color).")(f)
    f = click.option("--compression", type=click.Choice(["none", "lzf", "gzip"]), default="none",
                     show_default=True, help="HDF5 compression (one image per chunk when set).")(f)
    f = click.option("--encoded", is_flag=True,
                     help="Store the original encoded files (full resolution; the default without --size).")(f)
    f = click.option("--encode", type=click.Choice(["jpeg", "png"]), default=None,
                     help="With --size: store each resized image encoded as JPEG (a fraction of the raw size) or "
                          "PNG (lossless), decoded on read.")(f)
    f = click.option("--resize", type=click.Choice(["letterbox", "stretch"]), default="letterbox",
                     show_default=True, help="How --size is reached: keep aspect and pad, or stretch.")(f)
    f = click.option("--size", type=SIZE, default=None, help="Store every image at this size, e.g. 512x512.")(f)
    f = click.option("--split", "splits", multiple=True,
                     help="Only the images of this split; repeat to pack several, one group each [default: "
                          "everything, as 'all'].")(f)
    return f


def _pack(dataset, out, splits, size, resize, encoded, compression, color_method, annotations_only, common,
          overwrite, writer_name, shards=0, encode=None):
    from ..outputs import check_not_input
    from ..pack.prepare import PackOptions, masks_format
    if size and encoded:
        raise UsageError("--size and --encoded exclude each other (fixed-size arrays, or the original files)")
    if encode and not size:
        raise UsageError("--encode needs --size (without --size, --encoded keeps the original files)")
    if encode and annotations_only:
        raise UsageError("--encode and --annotations-only exclude each other (no pixels are stored)")
    wh = size
    out_path = Path(out)
    check_not_input(out_path, [dataset], "OUT")
    if out_path.exists() and not overwrite:
        raise OutputError(f"{out_path}: already exists (use --overwrite to replace it)")
    groups = {}
    load_skips = []
    for split in (splits or [None]):
        ds = load(dataset, replace(common, split=split))
        groups[split or "all"] = ds.records
        load_skips += ds.skipped
    classes = ds.classes  # decided from every annotation file, whatever --split selects
    cmap, mapped = class_map(common, classes, dataset), {}
    if cmap:  # --map / --drop
        from ..ops.classmap import apply_to_records
        for key, recs in groups.items():
            groups[key], counts = apply_to_records(recs, cmap)
            for k in ("class_renamed", "class_dropped"):
                mapped[k] = mapped.get(k, 0) + counts.get(k, 0)
        classes = cmap.classes(classes)
    opts = PackOptions(size=wh, resize=resize, compression=compression, color=color_method,
                       annotations_only=annotations_only, encode=encode, masks_from=masks_format(ds.format))
    summary = start_summary(writer_name)
    for k, n in mapped.items():
        summary.add(k, n)
    for where, reason in load_skips:
        summary.skip(where, reason)
    if shards:
        from ..pack.run import pack_shards
        pack_shards(out_path, groups, classes, opts, shards, summary, common, overwrite)
        finish(summary, f"{out_path} (+{shards} shards)", ["images", "objects"], common)
        return
    from ..pack.run import pack_dataset
    stats = pack_dataset(out_path, groups, classes, opts, "h5" if writer_name == "voc-to-h5" else "pickle", summary,
                         common, overwrite)
    summary.counts.clear()
    summary.add("inputs", sum(len(recs) for recs in groups.values()) +
                sum(1 for where, _ in load_skips if part_kind(where) is None))
    summary.add("images", stats["images"])
    summary.add("objects", stats["objects"])
    if stats.get("masks"):
        summary.add("masks", stats["masks"])
    for k, n in mapped.items():
        summary.add(k, n)
    finish(summary, str(out_path), ["images", "objects"], common)


@click.command("voc-to-h5")
@click.argument("dataset", type=click.Path())
@click.argument("out", type=click.Path(dir_okay=False))
@pack_options
@click.option("--shards", type=click.IntRange(min=1, max=100000), default=None,
              help="Workers write this many shard files beside OUT, tied together in OUT by virtual datasets "
                   "(a run that does not complete removes its shard files).")
@shared("exif", "classes", "classmap", "run", "workers")
@click.option("--format", "fmt", default=None, help="Read the data set as this format [default: detected].")
def voc_to_h5(dataset, out, splits, size, resize, encode, encoded, compression, color_method, overwrite, shards,
              common):
    """Pack a data set into one HDF5 file for fast training input (see docs/packing.md for the layout).

    Object masks (VOC mask files, COCO/labelme polygons and RLE) are stored too, resized by nearest neighbour as
    the images are; DetectionH5 returns them as masks, dsprep.torch as a tv_tensors.Mask."""
    _pack(dataset, out, splits, size, resize, encoded, compression, color_method, False, common, overwrite,
          "voc-to-h5", shards=shards or 0, encode=encode)


@click.command("voc-to-pickle")
@click.argument("dataset", type=click.Path())
@click.argument("out", type=click.Path(dir_okay=False))
@pack_options
@click.option("--annotations-only", is_flag=True, help="Store only the annotations (images read from their files).")
@shared("exif", "classes", "classmap", "run", "workers")
@click.option("--format", "fmt", default=None, help="Read the data set as this format [default: detected].")
def voc_to_pickle(dataset, out, splits, size, resize, encode, encoded, compression, color_method, overwrite,
                  annotations_only, common):
    """Pack into one pickle of numpy arrays (the same content as voc-to-h5). dsprep reads it back (DetectionH5,
    info, visualize) through a restricted loader that accepts only numpy arrays and plain Python values: a pickle
    that would run code is refused. Other programs' plain pickle.load() has no such guard: share .h5 files instead.
    Object masks are stored as voc-to-h5 stores them.
    A pickle is loaded whole into memory (VOC2012 at 512x512 is ~13.5 GB per process): best with
    --annotations-only."""
    _pack(dataset, out, splits, size, resize, encoded, compression, color_method, annotations_only, common, overwrite,
          "voc-to-pickle", encode=encode)
