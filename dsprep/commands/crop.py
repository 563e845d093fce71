"""``dsprep crop``: objects cut out per class, and blanked backgrounds."""
from __future__ import annotations

import contextlib

import click

from .common import check_classes_known, csv_list, finish, load, run_jobs, shared, start_summary


@click.command()
@click.argument("dataset", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Folder for the crops: OUT/<class>/<image>_<k>.png.")
@click.option("--only", default=None, help="Crop only objects of these classes (comma-separated).")
@click.option("--pad", type=click.IntRange(min=0), default=0, show_default=True, help="Extra pixels around each box.")
@click.option("--min-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="Skip crops narrower or shorter than this (pixels).")
@click.option("--backgrounds", type=click.Path(file_okay=False), default=None,
              help="Also write each image with the --blank classes blanked out, into this folder.")
@click.option("--blank", default=None, help="Classes to blank out in --backgrounds (default: the cropped classes).")
@click.option("--upright", is_flag=True, help="Polygons: turn each crop upright (its rotated rectangle).")
@click.option("--overwrite", is_flag=True, help="Write into non-empty output folders.")
@shared("dataset", "run", "workers")
def crop(dataset, out, only, pad, min_size, backgrounds, blank, upright, overwrite, common):
    """Cut every object out into a folder per class (RGBA with polygon alpha where objects are polygons)."""
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
        opts = CropOptions(out=str(out_dir), classes=tuple(wanted), pad=pad, min_size=min_size,
                           backgrounds=str(bg_dir) if bg_dir else None,
                           blank=tuple(blank_list) if blank_list is not None else None,
                           rgba=any(r.polygons is not None for r in ds.records), upright=upright)
        for _ in run_jobs(crop_one, [(r, opts) for r in ds.records], summary, common, "cropping",
                          name_of=lambda it: it[0].image_path):
            pass
    finish(summary, str(out_dir), ["images", "crops", "too_small"] + (["backgrounds"] if bg_dir else []), common)
