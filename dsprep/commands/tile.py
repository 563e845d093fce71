"""``dsprep tile-dota`` (DOTA_devkit-identical), ``tile`` (any data set), ``merge-dota`` (detections mapped back)."""
from __future__ import annotations

from pathlib import Path

import click

from ..core import DatasetError, DsprepError
from .common import SIZE, explain_lossy, finish, run_jobs, shared, start_summary


def _rate(ctx, param, values):
    out = []
    for value in values:
        try:
            r = float(value)
        except ValueError as e:
            raise click.BadParameter(f"'{value}' is not a number", ctx, param) from e
        if not (r > 0 and r < float("inf")):
            raise click.BadParameter(f"rate must be a positive number, not {value}", ctx, param)
        out.append(r)
    return out


def _png_compression(ctx, param, value):
    from ..images import PNG_FAST
    if value is None or value == "fast":
        return PNG_FAST
    try:
        level = int(value)
    except ValueError as e:
        raise click.BadParameter(f"'{value}' is not 'fast' or a level 0-9", ctx, param) from e
    if not 0 <= level <= 9:
        raise click.BadParameter(f"{level} is not a level 0-9", ctx, param)
    return level


def geometry_options(f):
    """--gap, --rate and --thresh: the tiling geometry tile-dota and tile share."""
    f = click.option("--thresh", type=click.FloatRange(0, 1), default=0.7, show_default=True,
                     help="A cut object keeps its difficult flag when more than this fraction of it is kept, "
                          "else 2.")(f)
    f = click.option("--rate", "rates", multiple=True, default=["1"], show_default=True, callback=_rate,
                     help="Resize factor; repeat for several (tile names carry it: P0706__0.5__0___0).")(f)
    return click.option("--gap", type=click.IntRange(min=0), default=200, show_default=True,
                        help="Overlap between neighbouring tiles, in pixels.")(f)


png_compression_option = click.option(
    "--png-compression", default="fast", show_default=True, callback=_png_compression,
    help="PNG tiles: 'fast' (ISA-L's deflate: ~4x OpenCV's encoder, smaller files), or a zlib level 0-9 through "
         "OpenCV (9: smallest, slowest). PNG is lossless: every choice stores the same pixels.")


def _job_name(item) -> str:
    job = item[0]
    if len(job.origins) == 1 or job.layout is not None:
        left, up = job.origins[0]
        return f"{job.image} (tiles from {left},{up} at rate {job.rate})" if job.layout is not None else job.image
    return job.image


@click.command("tile-dota")
@click.argument("dataset", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Output folder: OUT/images/ and OUT/labelTxt/ (and OUT/SegmentationClass/, "
                   "OUT/SegmentationObject/ when the data set has VOC masks).")
@click.option("--size", type=SIZE, default="1024", show_default=True,
              help="Tile size in pixels: N (the devkit's square tiles; WxH must be square).")
@geometry_options
@click.option("--ext", default=".png", show_default=True, type=click.Choice([".png", ".jpg", ".bmp", ".tif"]),
              help="Tile image format.")
@click.option("--pad", is_flag=True, help="Pad border tiles to SIZE x SIZE (not devkit-compatible; masks are "
                                         "padded with 0, background).")
@click.option("--skip-empty", is_flag=True, help="Write no image or label for tiles without objects.")
@png_compression_option
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out folder.")
@shared("exif", "run", "workers")
def tile_dota(dataset, out, size, gap, rates, thresh, ext, pad, skip_empty, png_compression, overwrite, common):
    """Split DOTA images into tiles, identical to DOTA_devkit ImgSplit.py output.

    VOC mask files beside the images (SegmentationClass/<id>.png, SegmentationObject/<id>.png) are cut with them
    under the tiles' names (instance ids renumbered to the tile's objects), with ImageSets/Segmentation lists."""
    from ..jobs.tile import TileOptions, plan_tile_jobs, tile_one
    from ..jobs.tilemasks import mask_dataset_files
    from ..outputs import OutputDir
    from ..parallel import parse_workers
    from ..ops.tiling import tile_origins
    if size[0] != size[1]:
        raise click.BadParameter(f"{size[0]}x{size[1]}: DOTA_devkit tiles are square (give one number)",
                                 param_hint="--size")
    size = size[0]
    if gap >= size:
        raise click.BadParameter(f"{gap} must be smaller than --size {size}", param_hint="--gap")
    tile_origins(size, size, gap)
    root = Path(dataset)
    if not root.is_dir():
        raise DatasetError(f"{root}: data set not found")
    # the cluster's size is not known before connecting: plan for two slots there
    jobs, bad = plan_tile_jobs(root, rates, 2 if common.scheduler else parse_workers(common.workers), size, gap,
                               common.exif, common.on_error)
    summary = start_summary("tile-dota")
    summary.add("inputs", len({j.image for j in jobs}) + len(bad))
    if bad and common.on_error == "fail":
        raise DsprepError(bad[0][1])
    for where, reason in bad:
        summary.skip(where, reason)
    opts = TileOptions(out="", size=size, gap=gap, thresh=thresh, ext=ext, pad=pad, skip_empty=skip_empty,
                       on_error=common.on_error, png_compression=png_compression)
    with OutputDir(out, overwrite=overwrite, inputs=[dataset]) as out_dir:
        (out_dir / "images").mkdir(exist_ok=True)
        if (root / "labelTxt").is_dir():
            (out_dir / "labelTxt").mkdir(exist_ok=True)
        opts = TileOptions(**{**opts.__dict__, "out": str(out_dir)})
        masked = []
        for _, result in run_jobs(tile_one, [(j, opts) for j in jobs], summary, common, "tiling",
                                  name_of=_job_name):
            if result is not None:
                masked += result["masks_written"]
        _tile_split_lists(root, out_dir)
        _write_files(out_dir, mask_dataset_files(masked))
    finish(summary, str(out_dir), ["images", "tiles", "objects", "cut", "difficult_2", "dropped"] +
           (["empty_skipped"] if skip_empty else []), common)


def _write_files(out_dir: Path, files) -> None:
    from ..outputs import atomic_write_bytes
    for rel, data in files.items():
        (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out_dir / rel, data)


def _tile_split_lists(root: Path, out_dir: Path) -> None:
    """DOTA has no split files; where the source has dsprep's (``ImageSets/<split>.txt``, as ``convert --to dota``
    writes them), the tiles get the same lists: each tile in every split of the image it was cut from."""
    import os
    import re
    from ..formats.dota import SPLIT_LISTS
    from ..outputs import atomic_write_bytes
    from ..splits import list_files, membership, read_lists
    member = membership(read_lists(root / SPLIT_LISTS))
    if not member:
        return
    source = re.compile(r"^(?P<stem>.+)__[^_]+__\d+___\d+$")  # tiling.tile_name
    lists = {}
    for name in sorted(os.listdir(out_dir / "images")):
        tile = os.path.splitext(name)[0]
        m = source.match(tile)
        for split in member.get(m.group("stem"), ()) if m else ():
            lists.setdefault(split, []).append(tile)
    for rel, data in list_files(lists, SPLIT_LISTS).items():
        (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out_dir / rel, data)


@click.command("tile")
@click.argument("dataset", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Output folder: the tiles as a data set in the same format (or --to).")
@click.option("--size", type=SIZE, default="1024", show_default=True, help="Tile size in pixels: N (square tiles).")
@geometry_options
@click.option("--ext", default=None, type=click.Choice([".png", ".jpg", ".bmp", ".tif"]),
              help="Tile image format [default: each image's own].")
@click.option("--to", "to_format", default=None, help="Write the tiles in this format [default: the input's].")
@click.option("--pad", is_flag=True, help="Pad border tiles to SIZE x SIZE (masks with 0, background).")
@click.option("--skip-empty", is_flag=True, help="Write no image or annotation for tiles without objects.")
@png_compression_option
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out folder.")
@shared("dataset", "classes", "classmap", "run", "workers")
def tile(dataset, out, size, gap, rates, thresh, ext, to_format, pad, skip_empty, png_compression, overwrite,
         common):
    """Split any data set (boxes or polygons) into tiles, written in the same format: tile-dota's geometry.

    Objects are cut exactly as tile-dota cuts them (coordinates truncated, cut objects reduced to 4 points, difficult
    2 when at most --thresh of an object is kept, cut objects marked truncated); tiled TIFFs are read by windows.
    Masks go with the pixels: VOC's SegmentationClass/SegmentationObject PNGs are cut into the tiles' own (instance
    ids renumbered to the tile's objects, ImageSets/Segmentation lists kept), or into RLE segmentations for other
    formats; COCO/labelme segmentations (polygons, RLE) are clipped to each tile. An object with a mask gets the
    box of its mask in each tile; one with no mask pixel left in a tile is left out of it."""
    from ..formats import format_spec, writable_formats
    from ..jobs.convert import write_dataset_files
    from ..jobs.tile import TileOptions, plan_record_jobs, tile_record
    from ..jobs.tilemasks import mask_dataset_files
    from ..outputs import OutputDir
    from ..parallel import parse_workers
    from .common import load, map_classes
    if size[0] != size[1]:
        raise click.BadParameter(f"{size[0]}x{size[1]}: tiles are square (give one number)", param_hint="--size")
    size = size[0]
    if gap >= size:
        raise click.BadParameter(f"{gap} must be smaller than --size {size}", param_hint="--gap")
    if to_format is not None and to_format not in writable_formats():
        raise click.BadParameter(f"'{to_format}' is not a format dsprep writes ({', '.join(writable_formats())})",
                                 param_hint="--to")
    ds = load(dataset, common)
    summary = start_summary("tile", ds)
    ds = map_classes(ds, common, summary)
    target = to_format or ds.format
    writer_class = format_spec(target).writer
    if writer_class is None:
        raise click.BadParameter(f"dsprep cannot write {target} data sets; choose one with --to "
                                 f"({', '.join(writable_formats())})", param_hint="--to")
    writer = writer_class(ds.classes, {"dataset_meta": ds.meta})  # class ids (COCO, VOC's labels.txt) kept
    lossy = {}
    jobs, bad = plan_record_jobs(ds.records, rates, 2 if common.scheduler else parse_workers(common.workers), size,
                                 gap, ext, lossy, fmt=ds.format)
    for kind, n in lossy.items():
        summary.add(kind, n)
    if bad and common.on_error == "fail":
        raise DsprepError(bad[0][1])
    for where, reason in bad:
        summary.skip(where, reason)
    opts = TileOptions(out="", size=size, gap=gap, thresh=thresh, ext=ext or ".png", pad=pad,
                       skip_empty=skip_empty, on_error=common.on_error, png_compression=png_compression,
                       keep_gray=True)
    with OutputDir(out, overwrite=overwrite, inputs=[dataset]) as out_dir:
        opts = TileOptions(**{**opts.__dict__, "out": str(out_dir)})
        records, masked = [], []
        for _, result in run_jobs(tile_record, [(j, opts, writer) for j in jobs], summary, common, "tiling",
                                  name_of=_job_name):
            if result is not None:
                records += result["records"]
                masked += result["masks_written"]
        write_dataset_files(out_dir, writer, records)
        _write_files(out_dir, mask_dataset_files(masked))
    finish(summary, str(out_dir), ["images", "tiles", "objects", "cut", "difficult_2", "dropped"] +
           (["empty_skipped"] if skip_empty else []) + sorted(lossy), common)
    explain_lossy(summary, target)


@click.command("merge-dota")
@click.argument("detections", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Folder for merged Task1_*.txt.")
@click.option("--nms-thresh", type=click.FloatRange(0, 1), default=0.3, show_default=True,
              help="Suppress a detection whose IoU with a higher-scored one is above this.")
@click.option("--iou", type=click.Choice(["poly", "box"]), default="poly", show_default=True,
              help="Exact polygon IoU, or axis-aligned box IoU.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out folder.")
@shared("run", "workers")
def merge_dota(detections, out, nms_thresh, iou, overwrite, common):
    """Map per-tile detections (Task1_<class>.txt) back to their images, with NMS.

    With --workers N the files are read and written by N forked processes (they start in milliseconds) and merged
    on N workers; with --scheduler the merging runs on the Dask cluster; either way in chunks of whole images."""
    import os
    from ..jobs.merge import forked, merge_chunk, plan_chunks, read_class_file, write_class_file
    from ..outputs import OutputDir
    from ..parallel import parse_workers
    src = Path(detections)
    if not src.exists():
        raise DatasetError(f"{src}: not found")
    files = sorted(src.glob("Task1_*.txt")) if src.is_dir() else [src]
    if not files:
        raise DatasetError(f"{src}: no Task1_<class>.txt files")
    summary = start_summary("merge-dota")
    summary.add("inputs", len(files))
    local = 1 if common.scheduler else parse_workers(common.workers)
    parsed = {}
    for f, dets, err in forked(read_class_file, files, local, weight=lambda f: os.path.getsize(f)):
        if err is not None:
            if common.on_error == "fail":
                raise err
            summary.skip(str(f), str(err))
        else:
            parsed[f] = dets
    # work is shared out in chunks of whole images, about four per worker slot
    slots = 2 if common.scheduler else local
    total = sum(len(d.stems) for d in parsed.values())
    target = max(1, total // (4 * slots)) if slots > 1 else max(1, total)
    chunks = plan_chunks(parsed, nms_thresh, iou, target)
    kept = {str(f): {} for f in parsed}
    with OutputDir(out, overwrite=overwrite, inputs=[detections]) as out_dir:
        # the merging on the one executor (local workers or Dask): one --on-error behaviour, one progress bar
        for _, result in run_jobs(merge_chunk, chunks, summary, common, "merging",
                                  name_of=lambda c: f"{c.groups[0][0]} ({len(c.groups)} image and class groups)"):
            if result is None:  # skipped by --on-error skip (listed in the summary)
                continue
            for source, stem, idx in result["kept_list"]:
                kept[source][stem] = idx
        written = forked(write_class_file, [(out_dir / f.name, dets, kept[str(f)]) for f, dets in parsed.items()],
                         local, weight=lambda it: len(it[1].stems))
        summary.add("classes", len(parsed))
        summary.add("detections", sum(len(d.stems) for d in parsed.values()))
        summary.add("kept", sum(written))
    finish(summary, str(out_dir), ["classes", "detections", "kept"], common)
