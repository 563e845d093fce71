"""``dsprep crop``: objects cut out per class (with their silhouettes), and backgrounds with the objects filled in."""
from __future__ import annotations

import contextlib

import click

from ..ops.inpaint import FILLS
from .common import check_classes_known, csv_list, finish, load, run_jobs, shared, start_summary


def _background_options(f):
    """The options of ``--backgrounds``, in --help order: what is blanked, how it is filled, which are kept."""
    fill_help = ("How blanked regions are filled: texture (the image's own texture copied in from places whose "
                 "surroundings match, blended to the border), inpaint (Telea diffusion: smooth, leaves a blob), blur "
                 "(a smooth pyramid average), mean (the image's mean colour), black; or none: no fill, the largest "
                 "rectangle of the image without a --blank object is cut out as it is (see --min-free).")
    options = [
        click.option("--blank", default=None,
                     help="Classes to blank out in --backgrounds (default: the cropped classes)."),
        click.option("--fill", type=click.Choice(FILLS + ("none",)), default="texture", show_default=True,
                     help=fill_help),
        click.option("--min-free", type=click.FloatRange(0, 1), default=0.25, show_default=True,
                     help="--fill none: write a background only when its object-free rectangle is at least this "
                          "fraction of the image (others are counted as no_free_region)."),
        click.option("--blank-margin", type=click.IntRange(0, 100), default=3, show_default=True,
                     help="Pixels around an object's own mask that are blanked with it (its mixed edge pixels)."),
        click.option("--max-blanked", type=click.FloatRange(0, 1), default=0.5, show_default=True,
                     help="Skip (and count) a background whose blanked pixels are more than this fraction of the "
                          "image."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.command()
@click.argument("dataset", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Folder for the crops: OUT/<class>/<image>_<k>.png.")
@click.option("--only", default=None, help="Crop only objects of these classes (comma-separated).")
@click.option("--pad", type=click.IntRange(min=0), default=0, show_default=True, help="Extra pixels around each box.")
@click.option("--min-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="Skip crops narrower or shorter than this (pixels).")
@click.option("--mask", "mask_mode", type=click.Choice(["auto", "grabcut", "none"]), default="auto",
              show_default=True,
              help="Crop transparency: auto: RGBA whose alpha is the object's own mask or polygon where the data set "
                   "has one (VOC SegmentationObject, DOTA quads), a plain rectangle otherwise; grabcut: also derive "
                   "a mask from the box with GrabCut where there is none; none: plain rectangles.")
@click.option("--backgrounds", type=click.Path(file_okay=False), default=None,
              help="Also write each image with the --blank objects removed (filled by --fill) into this folder, with "
                   "a NAME.blanked.json beside each one saying where objects were (synth --avoid-blanked reads it).")
@_background_options
@click.option("--upright", is_flag=True, help="Polygons: turn each crop upright (its rotated rectangle).")
@click.option("--overwrite", is_flag=True, help="Write into non-empty output folders.")
@shared("dataset", "run", "workers")
def crop(dataset, out, only, pad, min_size, mask_mode, backgrounds, blank, fill, min_free, blank_margin, max_blanked,
         upright, overwrite, common):
    """Cut every object out into a folder per class (RGBA with the object's mask as alpha where it has one)."""
    from ..jobs.crop import CropOptions, crop_one
    from ..outputs import OutputDir, check_not_input
    ds = load(dataset, common)
    wanted = csv_list(only)
    check_classes_known(wanted, ds, "--only")
    blank_list = csv_list(blank) if blank is not None else None
    check_classes_known(blank_list or [], ds, "--blank")
    if backgrounds:
        check_not_input(backgrounds, [out], "--backgrounds")
    summary = start_summary("crop", ds)
    with contextlib.ExitStack() as stack:
        out_dir = stack.enter_context(OutputDir(out, overwrite=overwrite, inputs=[dataset]))
        bg_dir = stack.enter_context(OutputDir(backgrounds, overwrite=overwrite, inputs=[dataset],
                                               option="--backgrounds")) if backgrounds else None
        opts = CropOptions(out=str(out_dir), fmt=ds.format, classes=tuple(wanted), pad=pad, min_size=min_size,
                           backgrounds=str(bg_dir) if bg_dir else None,
                           blank=tuple(blank_list) if blank_list is not None else None, mask=mask_mode,
                           upright=upright, fill=fill, blank_margin=blank_margin, max_blanked=max_blanked,
                           min_free=min_free)
        crops, backs = [], []
        for (rec, _), result in run_jobs(crop_one, [(r, opts) for r in ds.records], summary, common, "cropping",
                                         name_of=lambda it: it[0].image_path):
            if result is not None:
                crops.append((rec, result["files"]))
                if result.get("background"):
                    backs.append((rec, [result["background"]]))
        _write_split_lists(out_dir, crops)
        if bg_dir:
            _write_split_lists(bg_dir, backs)
    finish(summary, str(out_dir), ["images", "crops", "masked", "grabcut", "too_small"]
           + ((["backgrounds", "no_free_region"] if fill == "none" else ["backgrounds", "too_blanked"]) if bg_dir
              else []), common)


def _write_split_lists(folder, written) -> None:
    """The data set's splits kept beside the crops (or backgrounds): ``ImageSets/<split>.txt`` listing the files
    cut from each split's images (relative paths, an image's files in every split it is in), so a split's crops
    can be used alone (e.g. only the training split's objects for ``synth``)."""
    from pathlib import Path
    from ..outputs import atomic_write_bytes
    from ..splits import list_files, split_order, splits_of
    lists = {}
    for rec, files in written:
        for split in splits_of(rec):
            lists.setdefault(split, []).extend(files)
    for rel, data in list_files({s: lists[s] for s in split_order(lists)}, "ImageSets").items():
        (Path(folder) / rel).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(Path(folder) / rel, data)
