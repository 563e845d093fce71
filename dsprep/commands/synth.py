"""``dsprep synth``: synthetic images with exact annotations, from object crops and backgrounds."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import click

from ..core import DatasetError, DsprepError, OutputError
from ..report import Summary, progress
from .common import DsprepGroup, _csv, _finish, _load, dataset_options, run_jobs, worker_options
from ..color import METHODS as COLOR_METHODS

def _range(text: str, name: str, cast=float):
    try:
        parts = [cast(v) for v in text.split(":")]
    except ValueError as e:
        raise DsprepError(f"--{name}: expected LOW:HIGH or a single value, not '{text}'") from e
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or parts[0] > parts[1]:
        raise DsprepError(f"--{name}: expected LOW:HIGH with LOW <= HIGH, not '{text}'")
    return tuple(parts)


def _counts(text: str):
    try:
        if ":" in text:
            lo, hi = _range(text, "per-image", int)
            values = tuple(range(lo, hi + 1))
        else:
            values = tuple(int(v) for v in text.split(","))
    except ValueError as e:
        raise DsprepError(f"--per-image: expected a list (4,8,16) or a range (4:64), not '{text}'") from e
    if not values or min(values) < 0:
        raise DsprepError(f"--per-image: counts must be 0 or more, not '{text}'")
    return values


def _weights(text: Optional[str], classes):
    if not text:
        return ()
    out = []
    for item in _csv(text):
        name, sep, value = item.partition("=")
        try:
            w = float(value)
        except ValueError as e:
            raise DsprepError(f"--class-weights: expected NAME=WEIGHT, not '{item}'") from e
        if not sep or w < 0:
            raise DsprepError(f"--class-weights: expected NAME=WEIGHT with WEIGHT >= 0, not '{item}'")
        if name not in classes:
            raise DsprepError(f"--class-weights: no object folder '{name}' (classes: {', '.join(classes)})")
        out.append((name, w))
    if sum(w for _, w in out) <= 0:
        raise DsprepError("--class-weights: at least one weight must be positive")
    return tuple(out)


@click.command()
@click.option("--backgrounds", required=True, type=click.Path(), help="Folder of background images.")
@click.option("--objects", required=True, type=click.Path(),
              help="Folder of class folders of object crops (objects/car/*.png: class = folder name).")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Output data set folder.")
@click.option("-n", "count", type=click.IntRange(min=1), default=1000, show_default=True, help="Images to make.")
@click.option("--format", "fmt", type=click.Choice(["voc", "dota"]), default="voc", show_default=True)
@click.option("--ext", type=click.Choice([".jpg", ".png"]), default=".jpg", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes (any --workers).")
@click.option("--split", default="train", show_default=True, help="VOC split list to write the ids to.")
@click.option("--canvas", default=None, help="Output size WxH (default: each background's own size).")
@click.option("--fit", type=click.Choice(["crop", "resize", "pad"]), default="crop", show_default=True,
              help="Background to canvas: random crop (pad when smaller), stretch, or pad/cut at the top-left.")
@click.option("--per-image", default="4,8,16", show_default=True, help="Objects per image: a list or LOW:HIGH.")
@click.option("--rotate", default="0:360", show_default=True, help="Rotation range, degrees.")
@click.option("--scale", default="0.8:1.2", show_default=True, help="Scale range.")
@click.option("--flip", type=click.Choice(["none", "h", "v", "hv"]), default="h", show_default=True,
              help="Random flips (each with probability 1/2).")
@click.option("--class-weights", default=None, help="e.g. car=2,bus=1 (default: classes drawn uniformly).")
@click.option("--max-overlap", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Largest overlap between boxes (intersection over the smaller box); 0 = disjoint.")
@click.option("--blend", type=click.Choice(["none", "gaussian", "poisson"]), default="none", show_default=True)
@click.option("--mask-from", type=click.Choice(["auto", "alpha", "nonblack"]), default="auto", show_default=True,
              help="Object transparency: PNG alpha, or every non-black pixel opaque (auto: alpha when present).")
@click.option("--alpha-threshold", type=click.IntRange(0, 254), default=127, show_default=True,
              help="A pixel is visible (inside the box) when its alpha is above this.")
@click.option("--masks", is_flag=True, help="Also write VOC SegmentationObject/ and SegmentationClass/ PNGs.")
@click.option("--color", "color_method", default=None,
              type=click.Choice(COLOR_METHODS),
              help="Colour-correct each background first.")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, show_default=True)
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out folder.")
@click.option("--append", is_flag=True, help="Add to an existing output, numbering after its last image.")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True)
@click.option("--quiet", "-q", is_flag=True)
@worker_options
def synth(backgrounds, objects, out, count, fmt, ext, seed, split, canvas, fit, per_image, rotate, scale, flip,
          class_weights, max_overlap, blend, mask_from, alpha_threshold, masks, color_method, jpeg_quality, overwrite,
          append, on_error, quiet, workers, scheduler):
    """Paste object crops onto backgrounds: synthetic images with exact annotations."""
    from ..images import is_image
    from ..outputs import prepare_output_dir
    from ..jobs.synth import SynthConfig, synth_one
    from ..resize import parse_size
    from ..synth import SynthParams
    from ..voc import write_split_list
    if overwrite and append:
        raise DsprepError("--overwrite and --append exclude each other")
    bg_dir, obj_dir = Path(backgrounds), Path(objects)
    for d, what in ((bg_dir, "--backgrounds"), (obj_dir, "--objects")):
        if not d.is_dir():
            raise DatasetError(f"{d}: {what} folder not found")
    bgs = tuple(str(p) for p in sorted(bg_dir.rglob("*")) if p.is_file() and is_image(p))
    if not bgs:
        raise DatasetError(f"{bg_dir}: no background images")
    obj = tuple((d.name, tuple(str(p) for p in sorted(d.iterdir()) if p.is_file() and is_image(p)))
                for d in sorted(obj_dir.iterdir()) if d.is_dir())
    obj = tuple((c, files) for c, files in obj if files)
    if not obj:
        raise DatasetError(f"{obj_dir}: no class folders with object images (expected objects/<class>/*.png)")
    try:
        size = parse_size(canvas) if canvas else None
    except ValueError as e:
        raise DsprepError(f"--canvas: {e}") from e
    params = SynthParams(canvas=size, fit=fit, per_image=_counts(per_image), rotate=_range(rotate, "rotate"),
                         scale=_range(scale, "scale"), flip=flip if flip != "none" else "",
                         class_weights=_weights(class_weights, [c for c, _ in obj]), max_overlap=max_overlap,
                         blend=blend, alpha_threshold=alpha_threshold)
    if params.scale[0] <= 0:
        raise DsprepError("--scale: values must be positive")
    out_dir = prepare_output_dir(out, overwrite=overwrite, allow_existing=append)
    image_dir = out_dir / ("JPEGImages" if fmt == "voc" else "images")
    subdirs = [image_dir, out_dir / ("Annotations" if fmt == "voc" else "labelTxt")]
    if masks:
        subdirs += [out_dir / "SegmentationObject", out_dir / "SegmentationClass"]
    for d in subdirs:
        d.mkdir(parents=True, exist_ok=True)
    start = 0
    if append:
        taken = [int(p.stem[len("synth_"):]) for p in image_dir.glob("synth_*") if p.stem[6:].isdigit()]
        start = max(taken) + 1 if taken else 0
    cfg = SynthConfig(out=str(out_dir), backgrounds=bgs, objects=obj, params=params, seed=seed, fmt=fmt, ext=ext,
                      mask_from=mask_from, masks=masks, color=color_method, jpeg_quality=jpeg_quality)
    summary = Summary("synth")
    names = [r["name"] for _, r in run_jobs(synth_one, [(i, cfg) for i in range(start, start + count)], summary,
                                            on_error, workers, scheduler, quiet, "synthesizing",
                                            name_of=lambda it: f"image {it[0]}") if r is not None]
    if fmt == "voc":
        (out_dir / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
        write_split_list(out_dir / "ImageSets" / "Main" / f"{split}.txt", names, append=append)
    _finish(summary, str(out_dir), ["images", "objects", "dropped_too_large", "dropped_no_room"])
