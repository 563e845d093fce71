"""``dsprep demo``: a generated data set, and every main command run on it."""
from __future__ import annotations

from typing import List

import click

from ..core import DsprepError


def _step(ctx: click.Context, args: List[str]) -> None:
    """Run one dsprep command line as a user would type it (so the demo exercises the real options)."""
    from ..cli import main
    code = main.main(args=[str(a) for a in args], prog_name="dsprep", standalone_mode=False)
    if code:  # the command already printed its one-line error
        ctx.exit(code)


@click.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--images", "-n", type=click.IntRange(min=1), default=24, show_default=True,
              help="How many demo images to generate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same data set.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty OUT.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.pass_context
def demo(ctx, out, images, seed, overwrite, quiet):
    """Generate a small VOC data set and run every main command on it (eval scores a pretend detector)."""
    from ..demo import make_voc_demo
    from ..outputs import prepare_output_dir
    root = prepare_output_dir(out, overwrite=overwrite)
    voc = root / "voc"
    make_voc_demo(voc, n_images=images, seed=seed)
    click.echo(f"demo: generated {images} images -> {voc}", err=True)
    common = (["--overwrite"] if overwrite else []) + (["--quiet"] if quiet else [])
    q = ["--quiet"] if quiet else []
    _step(ctx, ["info", voc] + q)
    _step(ctx, ["visualize", "boxes", voc, "--out", root / "boxes", "--grid"] + common)
    # crop: silhouettes (the demo's masks as alpha) and backgrounds with the objects filled with their texture
    _step(ctx, ["crop", voc, "--out", root / "crops", "--min-size", "4", "--backgrounds", root / "backgrounds"]
          + common)
    # crop -> synth -> visualize -> info: filled canvases, feathered silhouettes, some occlusion, exact masks
    _step(ctx, ["synth", "--backgrounds", root / "backgrounds", "--objects", root / "crops", "--out", root / "synth",
                "-n", max(4, images // 2), "--seed", seed, "--canvas", "480x360", "--per-image", "3:8", "--masks",
                "--max-occlusion", "0.3"] + common)
    _step(ctx, ["visualize", "boxes", root / "synth", "--out", root / "synth_boxes", "--grid"] + common)
    _step(ctx, ["info", root / "synth"] + q)
    # colour: reference-white takes the brightest pixels as white: scenes with a sheet of paper under tinted lights
    from ..demo import make_tinted_scenes
    make_tinted_scenes(root / "tinted", 4, seed)
    _step(ctx, ["color", "reference-white", root / "tinted", "--out", root / "color"] + common)
    _step(ctx, ["convert", "voc-to-dota", root / "synth", "--out", root / "dota"] + common)
    _step(ctx, ["tile-dota", root / "dota", "--out", root / "tiles", "--size", "256", "--gap", "64"] + common)
    # a pretend detector's results on the val split, scored as the VOC devkit scores them
    from ..demo import make_demo_detections
    detections = make_demo_detections(voc, root / "detections", "val", seed)
    _step(ctx, ["eval", voc, detections, "--split", "val", "--plot", root / "eval_plots"] + common)
    packed = root / "voc.h5"
    _step(ctx, ["voc-to-h5", voc, packed, "--split", "train", "--split", "val", "--size", "256x256"] + common)
    click.echo(f"demo: done; look at {root} (read {packed} with dsprep.hdf5.DetectionH5)", err=True)


__all__ = ["demo", "DsprepError"]
