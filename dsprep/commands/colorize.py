"""``dsprep colorize``: predicted index maps as VOC palette PNGs."""
from __future__ import annotations

from pathlib import Path

import click

from .common import finish, run_jobs, shared, start_summary


@click.command()
@click.argument("predictions", nargs=-1, required=True, type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Output folder: <name>.png for every input, same relative names.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out folder.")
@shared("classes", "run", "workers")
def colorize(predictions, out, overwrite, common):
    """Write index maps (8-bit PNGs or .npy arrays of class indices, as a network's argmax gives them) as palette
    PNGs with the VOC colour map: same values, coloured as VOC's SegmentationClass files are.  With --classes
    (index 0 first), a value beyond the classes (other than 255, void) is an error naming the file."""
    from ..jobs.colorize import ColorizeOptions, colorize_one, index_files
    from ..outputs import OutputDir
    pairs = index_files(predictions)
    summary = start_summary("colorize")
    summary.add("inputs", len(pairs))
    n = len(common.classes) if common.classes else None
    with OutputDir(out, overwrite=overwrite, inputs=[p for p in predictions if Path(p).is_dir()]) as out_dir:
        opts = ColorizeOptions(str(out_dir), n)
        for _ in run_jobs(colorize_one, [(s, r, opts) for s, r in pairs], summary, common, "colorizing",
                          name_of=lambda it: it[0]):
            pass
    finish(summary, str(out_dir), ["images"], common)
