"""``dsprep color``: illumination correction of image files or folders."""
from __future__ import annotations

import contextlib
from pathlib import Path

import click

from ..ops.color import METHODS as COLOR_METHODS
from ..core import UsageError
from .common import finish, run_jobs, shared, start_summary


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
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, show_default=True,
              help="Quality of JPEG outputs.")
@click.option("--in-place", is_flag=True, help="Overwrite the input files (atomically) instead of --out.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out folder.")
@shared("exif", "run", "workers")
def color(method, inputs, out, fraction, min_pixels, p, jpeg_quality, in_place, overwrite, common):
    """Illumination correction (reference white and relatives) of image files or folders.

    Photos with an EXIF orientation are written turned as they display (--exif auto or apply; the tag itself is not
    copied), so the output looks like the input in every viewer."""
    from ..jobs.color import ColorOptions, color_one, color_pairs
    from ..outputs import OutputDir
    if in_place == bool(out):
        raise UsageError("give either --out DIR or --in-place")
    opts = ColorOptions(method, fraction, min_pixels, p, jpeg_quality, orient=common.exif != "ignore")
    summary = start_summary(f"color {method}")
    with contextlib.ExitStack() as stack:
        if out:
            stack.enter_context(OutputDir(out, overwrite=overwrite, inputs=[i for i in inputs if Path(i).is_dir()]))
        pairs = color_pairs(inputs, out, in_place)
        summary.add("inputs", len(pairs))
        for _ in run_jobs(color_one, [(s, d, opts) for s, d in pairs], summary, common, "correcting",
                          name_of=lambda it: it[0]):
            pass
    finish(summary, out or "in place", ["images", "unchanged"], common)
