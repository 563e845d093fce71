"""``dsprep synth``: synthetic images with exact annotations, from object crops and backgrounds."""
from __future__ import annotations

import click

from ..ops.color import METHODS as COLOR_METHODS
from ..core import UsageError
from ..ops.synth import BLENDS, FITS
from .common import SIZE, FormatChoice, finish, shared, start_summary


def _parsed(fn, option: str, *args):
    try:
        return fn(*args)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=option) from e


@click.command()
@click.option("--backgrounds", required=True, type=click.Path(), help="Folder of background images.")
@click.option("--objects", required=True, type=click.Path(),
              help="Folder of class folders of object crops (objects/car/*.png: class = folder name).")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Output data set folder.")
@click.option("-n", "count", type=click.IntRange(min=1), default=1000, show_default=True, help="Images to make.")
@click.option("--format", "out_format", type=FormatChoice("write"), default="voc", show_default=True,
              help="Format of the data set written (dota and yolo-obb get each object's rotated rectangle).")
@click.option("--ext", type=click.Choice([".jpg", ".png"]), default=".jpg", show_default=True,
              help="Format of the images written.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes (any --workers).")
@click.option("--split-name", default="train", show_default=True,
              help="Name of the split list the new image ids go to (VOC: ImageSets/Main/NAME.txt).")
@click.option("--canvas", type=SIZE, default=None, help="Output size WxH (default: each background's own size).")
@click.option("--fit", type=click.Choice(FITS), default="cover", show_default=True,
              help="Background to canvas: cover (scale to cover the canvas, random window), crop (random window at "
                   "the background's own scale, scaled up where smaller), resize (stretch), or pad (top-left at its "
                   "own scale, black padding: the only mode that pads).")
@click.option("--per-image", default="4,8,16", show_default=True, help="Objects per image: a list or LOW:HIGH.")
@click.option("--rotate", default="-15:15", show_default=True,
              help="Rotation range, degrees (counter-clockwise). The default keeps objects about upright, as they "
                   "stand in photos; 0:360 for views from above (aerial images).")
@click.option("--jitter", default=None, show_default="0.8:1.2",
              help="Object scale relative to the background's scale on the canvas (LOW:HIGH): objects keep their "
                   "size against the scene.")
@click.option("--scale", default=None,
              help="Absolute object scale range LOW:HIGH instead (overrides the background's scale; not with "
                   "--jitter).")
@click.option("--flip", type=click.Choice(["none", "h", "v", "hv"]), default="h", show_default=True,
              help="Random flips (each with probability 1/2).")
@click.option("--class-weights", default=None, help="e.g. car=2,bus=1 (default: classes drawn uniformly).")
@click.option("--max-overlap", type=click.FloatRange(0, 1), default=None, show_default="0, or 1 with --max-occlusion",
              help="Largest overlap between object extents (intersection over the smaller box); 0 = disjoint.")
@click.option("--max-occlusion", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Let later objects hide up to this fraction of each earlier object's visible pixels (0: no object "
                   "hides another). Boxes and masks are those of the visible parts.")
@click.option("--truncated-above", type=click.FloatRange(0, 1), default=0.15, show_default=True,
              help="Mark an object truncated when more than this fraction of it is hidden.")
@click.option("--drop-hidden", type=click.FloatRange(0, 1), default=0.7, show_default=True,
              help="Leave an object unannotated (counted as hidden; void in --masks) when more than this fraction "
                   "of it is hidden.")
@click.option("--blend", type=click.Choice(BLENDS), default="feather", show_default=True,
              help="How objects are blended in: feathered edges, plain alpha, gaussian-softened edges (= feather 2), "
                   "or Poisson (seamless) cloning.")
@click.option("--feather", type=click.FloatRange(0, 50), default=2.0, show_default=True,
              help="Width in pixels of the soft edge inside each object (--blend feather; below 0.5: hard edges).")
@click.option("--harmonize", is_flag=True,
              help="Match each object's colour statistics (Lab mean and spread) to the region it lands on.")
@click.option("--harmonize-strength", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="How far --harmonize moves them (0: not at all, 1: the region's statistics).")
@click.option("--avoid-blanked", is_flag=True,
              help="Keep objects off the places where crop blanked an object out of the background (read from each "
                   "background's NAME.blanked.json). By default filled regions are background like any other.")
@click.option("--allow-blanked", is_flag=True, hidden=True, help="The default now (kept for old command lines).")
@click.option("--mask-from", type=click.Choice(["auto", "alpha", "nonblack"]), default="auto", show_default=True,
              help="Object transparency: PNG alpha, or every non-black pixel opaque (auto: alpha when present).")
@click.option("--alpha-threshold", type=click.IntRange(0, 254), default=127, show_default=True,
              help="A pixel is visible (inside the box) when its alpha is above this.")
@click.option("--masks", is_flag=True, help="Also write VOC SegmentationObject/ and SegmentationClass/ PNGs.")
@click.option("--color", "color_method", default=None,
              type=click.Choice(COLOR_METHODS),
              help="Colour-correct each background first.")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, show_default=True,
              help="Quality of JPEG outputs.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out folder.")
@click.option("--append", is_flag=True,
              help="Add -n images to an existing output, numbering after its last image (also: finish an "
                   "interrupted run).")
@shared("exif", "run", "workers")
def synth(backgrounds, objects, out, count, out_format, ext, seed, split_name, canvas, fit, per_image, rotate, jitter,
          scale, flip, class_weights, max_overlap, max_occlusion, truncated_above, drop_hidden, blend, feather,
          harmonize, harmonize_strength, avoid_blanked, allow_blanked, mask_from, alpha_threshold, masks, color_method,
          jpeg_quality, overwrite, append, common):
    """Paste object crops onto backgrounds: synthetic images with exact annotations."""
    from ..formats import format_spec
    from ..images import available_memory
    from ..outputs import OutputDir
    from ..ops.synth import SynthParams, canvas_bytes, parse_counts, parse_range, parse_weights
    from ..ops.synth_run import background_sidecars, find_inputs, run_synth
    if overwrite and append:
        raise UsageError("--overwrite and --append exclude each other")
    if avoid_blanked and allow_blanked:
        raise UsageError("--avoid-blanked and --allow-blanked exclude each other")
    if scale is not None and jitter is not None:
        raise UsageError("--scale (absolute) and --jitter (relative to the background) exclude each other")
    if canvas is not None and canvas_bytes(canvas, masks) > available_memory():
        raise click.BadParameter(f"{canvas[0]}x{canvas[1]}: one such image needs "
                                 f"{canvas_bytes(canvas, masks) / 1e9:.1f} GB of memory, "
                                 f"{available_memory() / 1e9:.1f} GB are available", param_hint="--canvas")
    bgs, obj = find_inputs(backgrounds, objects)
    ranges = {}
    for option, text in (("--scale", scale), ("--jitter", jitter if jitter is not None else "0.8:1.2")):
        if text is not None:
            ranges[option] = _parsed(parse_range, option, text)
            if ranges[option][0] <= 0:
                raise click.BadParameter("scales must be positive", param_hint=option)
    params = SynthParams(canvas=canvas, fit=fit, per_image=_parsed(parse_counts, "--per-image", per_image),
                         rotate=_parsed(parse_range, "--rotate", rotate), scale=ranges.get("--scale"),
                         jitter=ranges["--jitter"], flip=flip if flip != "none" else "",
                         class_weights=_parsed(parse_weights, "--class-weights", class_weights, [c for c, _ in obj]),
                         max_overlap=max_overlap, max_occlusion=max_occlusion, truncated_above=truncated_above,
                         drop_above=drop_hidden, blend=blend, feather=feather,
                         harmonize=harmonize_strength if harmonize else 0.0, avoid_blanked=avoid_blanked,
                         alpha_threshold=alpha_threshold)
    sidecars = background_sidecars(bgs)
    summary = start_summary("synth")
    summary.add("inputs", count)
    # keep_on_error: an interrupted run keeps its finished prefix, so --append can complete it exactly
    with OutputDir(out, overwrite=overwrite, allow_existing=append, inputs=[backgrounds, objects],
                   keep_on_error=True) as out_dir:
        run_synth(out_dir, format_spec(out_format), bgs, sidecars, obj, params, seed, count, summary, common,
                  ext=ext, mask_from=mask_from, masks=masks, color=color_method, jpeg_quality=jpeg_quality,
                  split=split_name, append=append)
    finish(summary, str(out_dir), ["images", "objects", "truncated", "hidden", "dropped_too_large", "dropped_no_room"],
           common)
