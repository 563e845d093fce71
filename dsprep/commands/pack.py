"""``dsprep voc-to-h5`` / ``voc-to-pickle``: a data set packed into one file for training input."""
from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

import click

from ..color import METHODS as COLOR_METHODS
from ..core import DsprepError, OutputError, UsageError
from ..report import part_kind
from .common import SIZE, class_map, finish, load, run_jobs, shared, start_summary


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
    from ..hdf5 import H5Writer, PackOptions, PickleWriter, annotation_only_results, pack_items
    from ..jobs.pack import pack_one
    from ..outputs import check_not_input
    scheduler = common.scheduler
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
        from ..classmap import apply_to_records
        for key, recs in groups.items():
            groups[key], counts = apply_to_records(recs, cmap)
            for k in ("class_renamed", "class_dropped"):
                mapped[k] = mapped.get(k, 0) + counts.get(k, 0)
        classes = cmap.classes(classes)
    opts = PackOptions(size=wh, resize=resize, compression=compression, color=color_method,
                       annotations_only=annotations_only, encode=encode)
    summary = start_summary(writer_name)
    for k, n in mapped.items():
        summary.add(k, n)
    for where, reason in load_skips:
        summary.skip(where, reason)
    if shards:
        _pack_shards(out_path, groups, classes, opts, shards, summary, common, overwrite)
        return
    writer_cls = H5Writer if writer_name == "voc-to-h5" else PickleWriter
    # Local workers write fixed-size pixels into the file themselves; a cluster returns them to this process.
    with writer_cls(out_path, groups, classes, opts, overwrite=overwrite, direct=not scheduler) as writer:
        if opts.mode == "annotations":
            results = annotation_only_results(groups)
        else:
            results = run_jobs(pack_one, pack_items(writer, groups, opts), summary, common, "packing",
                               name_of=lambda it: it[2][0].image_path)
        # closed (workers stopped) before the writer removes its temporary file on an error
        with contextlib.closing(results):
            for (split, index, _), prepared in results:
                writer.add(split, index, prepared)
    summary.counts.clear()
    summary.add("inputs", sum(len(recs) for recs in groups.values()) +
                sum(1 for where, _ in load_skips if part_kind(where) is None))
    summary.add("images", writer.stats["images"])
    summary.add("objects", writer.stats["objects"])
    for k, n in mapped.items():
        summary.add(k, n)
    finish(summary, str(out_path), ["images", "objects"], common)


def _pack_shards(out_path, groups, classes, opts, shards, summary, common, overwrite):
    """Workers write K complete shard files; this process ties them together in one master file.

    A run that does not complete (an error, Ctrl-C, SIGTERM, a killed worker) leaves no shard file and no
    temporary behind (see :class:`dsprep.hdf5.ShardRun`), so the same command can simply be run again."""
    from ..hdf5 import ShardRun, has_polygons, pack_shard, shard_path, shard_ranges, write_master
    if opts.mode == "annotations" or opts.compression != "none":
        raise DsprepError("--shards works with --size or --encoded, without --compression")
    paths = [shard_path(out_path, k, shards) for k in range(shards)]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise OutputError(f"{existing[0]}: already exists (use --overwrite to replace it)")
    ranges = {s: shard_ranges(len(recs), shards) for s, recs in groups.items()}
    polygons = has_polygons(groups)  # decided for the whole data set: every shard stores the same arrays
    tasks = [(str(paths[k]), {s: groups[s][slice(*ranges[s][k])] for s in groups}, classes, opts, common.on_error,
              overwrite, polygons) for k in range(shards)]
    with ShardRun(out_path, paths, overwrite):
        # the executor is shut down (no worker still writing) before ShardRun removes what this run made
        with contextlib.closing(run_jobs(pack_shard, tasks, summary, common, "packing shards",
                                         name_of=lambda t: t[0])) as results:
            for _, res in results:
                if res is None:
                    name, reason = summary.skipped[-1]
                    raise DsprepError(f"shard {name} failed ({reason}): the master file was not written")
                for f, reason in res["skipped"]:
                    summary.skip(f, reason)
        write_master(out_path, paths, list(groups), classes, opts, overwrite=overwrite)
    finish(summary, f"{out_path} (+{shards} shards)", ["images", "objects"], common)


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
    """Pack a data set into one HDF5 file for fast training input (see README for the layout)."""
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
    A pickle is loaded whole into memory (VOC2012 at 512x512 is ~13.5 GB per process): best with
    --annotations-only."""
    _pack(dataset, out, splits, size, resize, encoded, compression, color_method, annotations_only, common, overwrite,
          "voc-to-pickle", encode=encode)
