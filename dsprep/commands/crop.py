"""``dsprep crop``: objects cut out per class, and blanked backgrounds."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import click

from ..core import DatasetError, DsprepError, OutputError
from ..report import Summary, progress
from .common import DsprepGroup, _csv, _finish, _load, dataset_options, run_jobs, worker_options


@click.command()
@click.argument("dataset", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Folder for the crops: OUT/<class>/<image>_<k>.png.")
@click.option("--classes", default=None, help="Only these classes (comma-separated).")
@click.option("--pad", type=click.IntRange(min=0), default=0, show_default=True, help="Extra pixels around each box.")
@click.option("--min-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="Skip crops narrower or shorter than this (pixels).")
@click.option("--backgrounds", type=click.Path(file_okay=False), default=None,
              help="Also write each image with the --blank classes filled black, into this folder.")
@click.option("--blank", default=None, help="Classes to blank out in --backgrounds (default: the cropped classes).")
@click.option("--upright", is_flag=True, help="DOTA polygons: turn each crop upright (its rotated rectangle).")
@click.option("--overwrite", is_flag=True, help="Write into non-empty output folders.")
@dataset_options
@worker_options
def crop(dataset, out, classes, pad, min_size, backgrounds, blank, upright, overwrite, split, on_error, quiet,
         workers, scheduler):
    """Cut every object out into a folder per class (RGBA with polygon alpha for DOTA data)."""
    from ..outputs import prepare_output_dir
    from ..jobs.crop import CropOptions, crop_one
    ds = _load(dataset, split, on_error, quiet)
    wanted = _csv(classes)
    out_dir = prepare_output_dir(out, overwrite=overwrite)
    bg_dir = prepare_output_dir(backgrounds, overwrite=overwrite) if backgrounds else None
    opts = CropOptions(out=str(out_dir), classes=tuple(wanted), pad=pad, min_size=min_size,
                       backgrounds=str(bg_dir) if bg_dir else None,
                       blank=tuple(_csv(blank)) if blank is not None else None,
                       rgba=ds.format == "dota", upright=upright)
    summary = Summary("crop")
    items = [(r, opts) for r in ds.records]
    for _ in run_jobs(crop_one, items, summary, on_error, workers, scheduler, quiet, "cropping",
                      name_of=lambda it: it[0].image_path):
        pass
    _finish(summary, str(out_dir), ["images", "crops", "too_small"] + (["backgrounds"] if bg_dir else []))
