"""``dsprep color``: illumination correction of image files or folders."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import click

from ..core import DatasetError, DsprepError, OutputError
from ..report import Summary, progress
from .common import DsprepGroup, _csv, _finish, _load, dataset_options, run_jobs, worker_options
from ..color import METHODS as COLOR_METHODS

@click.command()
@click.argument("method", type=click.Choice(COLOR_METHODS))
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "-o", type=click.Path(file_okay=False), help="Output folder (same relative names).")
@click.option("--fraction", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Top (and bottom) luma fraction [default: 0.05; two-point 0.03].")
@click.option("--min-pixels", type=click.IntRange(min=1), default=100, show_default=True,
              help="Leave an image unchanged when its reference set has fewer pixels.")
@click.option("--p", "p", type=click.FloatRange(min=1), default=6.0, show_default=True,
              help="Minkowski norm of shades-of-gray.")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, show_default=True)
@click.option("--in-place", is_flag=True, help="Overwrite the input files (atomically) instead of --out.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out folder.")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True)
@click.option("--quiet", "-q", is_flag=True)
@worker_options
def color(method, inputs, out, fraction, min_pixels, p, jpeg_quality, in_place, overwrite, on_error, quiet,
          workers, scheduler):
    """Illumination correction (reference white and relatives) of image files or folders."""
    from ..outputs import prepare_output_dir
    from ..jobs.color import ColorOptions, color_one, color_pairs
    if in_place == bool(out):
        raise DsprepError("give either --out DIR or --in-place")
    if out:
        prepare_output_dir(out, overwrite=overwrite)
    pairs = color_pairs(inputs, out, in_place)
    opts = ColorOptions(method, fraction, min_pixels, p, jpeg_quality)
    summary = Summary(f"color {method}")
    for _ in run_jobs(color_one, [(s, d, opts) for s, d in pairs], summary, on_error, workers, scheduler, quiet,
                      "correcting", name_of=lambda it: it[0]):
        pass
    _finish(summary, out or "in place", ["images", "unchanged"])
