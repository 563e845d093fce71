"""``dsprep synth``: synthetic images with exact annotations, from object crops and backgrounds."""
from __future__ import annotations

import os
from pathlib import Path

import click

from ..color import METHODS as COLOR_METHODS
from ..core import DatasetError, Interrupted, UsageError
from ..synth import BLENDS, FITS
from .common import SIZE, finish, run_jobs, shared, start_summary
from .convert import _FormatChoice


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
@click.option("--format", "out_format", type=_FormatChoice(), default="voc", show_default=True,
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
    from ..fill import sidecar_path
    from ..images import available_memory, is_image
    from ..jobs.synth import SynthConfig, synth_one
    from ..outputs import OutputDir
    from ..synth import SynthParams, canvas_bytes, parse_counts, parse_range, parse_weights
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
    sidecars = tuple(sidecar_path(b) if os.path.isfile(sidecar_path(b)) else None for b in bgs)
    summary = start_summary("synth")
    summary.add("inputs", count)
    # keep_on_error: an interrupted run keeps its finished prefix, so --append can complete it exactly
    with OutputDir(out, overwrite=overwrite, allow_existing=append, inputs=[backgrounds, objects],
                   keep_on_error=True) as out_dir:
        from ..core import ImageRecord
        from ..dataset import format_module
        existing, classes = _existing(out_dir, out_format, append, [c for c, _ in obj])
        writer = format_module(out_format).Writer(classes, {"root": str(Path(out_dir).resolve())})
        probe = ImageRecord(f"synth_000000{ext}", 1, 1, split=split_name, meta={"stem": "synth_000000"})
        subdirs = [out_dir / Path(writer.image_path(probe)).parent]
        subdirs += [out_dir / Path(rel).parent for rel in writer.record_files(probe)[0]]
        if masks:
            subdirs += [out_dir / "SegmentationObject", out_dir / "SegmentationClass"]
        subdirs = list(dict.fromkeys(subdirs))
        for d in subdirs:
            d.mkdir(parents=True, exist_ok=True)
        image_dir = subdirs[0]
        if masks:
            _write_labelmap(out_dir, [c for c, _ in obj])
        start = 0
        if append:
            # numbered after every image already there, whatever split (folder) it is in
            taken = [int(p.stem[len("synth_"):]) for p in out_dir.rglob("synth_*") if p.stem[6:].isdigit()]
            start = max(taken) + 1 if taken else 0
        cfg = SynthConfig(out=str(out_dir), backgrounds=bgs, sidecars=sidecars, objects=obj, params=params, seed=seed,
                          fmt=out_format, ext=ext, mask_from=mask_from, masks=masks, color=color_method,
                          jpeg_quality=jpeg_quality, orient=common.exif != "ignore", writer=writer, split=split_name)
        names, records, done = [], [], 0
        try:
            for _, r in run_jobs(synth_one, [(i, cfg) for i in range(start, start + count)], summary, common,
                                 "synthesizing", name_of=lambda it: f"image {it[0]}"):
                done += 1
                if r is not None:
                    names.append(r["name"])
                    records.append(r["record"])
        except BaseException as e:
            # Results arrive in index order: the first `done` images are complete; later ones a worker may have
            # finished out of order are removed, so the output is exactly a shorter uninterrupted run.
            removed = _remove_from(out_dir, subdirs, start + done)
            _write_lists(out_dir, writer, split_name, names, existing + records, append)
            if isinstance(e, KeyboardInterrupt):
                raise Interrupted(getattr(e, "signum", 2),
                                  f"kept the {done} finished images ({start}..{start + done - 1}) and their list; "
                                  f"{removed} out-of-order files removed; finish the run with --append -n "
                                  f"{count - done}") from e
            raise
        _write_lists(out_dir, writer, split_name, names, existing + records, append)
    finish(summary, str(out_dir), ["images", "objects", "truncated", "hidden", "dropped_too_large", "dropped_no_room"],
           common)


def _existing(out_dir: Path, out_format: str, append: bool, classes):
    """With --append: the records already in the output (for the data-set files written at the end: a COCO JSON,
    a data.yaml) and the class list extended by the new classes; VOC and DOTA need neither."""
    if not append or out_format in ("voc", "dota"):
        return [], list(classes)
    from ..dataset import load_dataset
    try:
        ds = load_dataset(out_dir, fmt=out_format, on_error="skip")
    except DatasetError:
        return [], list(classes)
    return list(ds.records), list(ds.classes) + [c for c in classes if c not in ds.classes]


def _write_lists(out_dir: Path, writer, split_name: str, names, records, append: bool) -> None:
    """The data-set files: VOC's split list (appended to), or the writer's own (COCO JSON, data.yaml ...)."""
    from ..jobs.convert import write_dataset_files
    from ..voc import write_split_list
    if writer.NAME in ("voc", "dota"):  # split lists: appended to (the images already listed stay listed)
        lists = out_dir / ("ImageSets/Main" if writer.NAME == "voc" else "ImageSets")
        lists.mkdir(parents=True, exist_ok=True)
        write_split_list(lists / f"{split_name}.txt", names, append=append)
    else:
        write_dataset_files(out_dir, writer, records)


def _write_labelmap(out_dir: Path, classes) -> None:
    """``labelmap.txt``: what the SegmentationClass values mean (background 0, then the classes in folder order),
    with their palette colours, as Datumaro and ``dsprep.vocmasks.read_labelmap`` read it."""
    from ..outputs import atomic_write_text
    from ..vocmasks import voc_palette
    pal = voc_palette()
    lines = [f"{name}:{','.join(str(int(v)) for v in pal[i])}::" for i, name in enumerate(["background"] + classes)]
    atomic_write_text(out_dir / "labelmap.txt", "# label:color_rgb:parts:actions\n" + "\n".join(lines) + "\n")


def _remove_from(out_dir: Path, subdirs, first: int) -> int:
    """Remove ``synth_<i>.*`` with ``i >= first`` from the output folders; returns how many files."""
    n = 0
    for d in subdirs:
        for p in d.glob("synth_*"):
            digits = p.stem[len("synth_"):]
            if digits.isdigit() and int(digits) >= first:
                p.unlink()
                n += 1
    return n
