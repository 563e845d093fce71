"""The ``dsprep`` command line: parse options, call the library, report.  No logic of its own."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable, Iterable, List, Optional

import click

from . import __version__
from .color import METHODS as COLOR_METHODS
from .core import DatasetError, DsprepError, OutputError
from .report import Summary, progress


class DsprepGroup(click.Group):
    """Turns a :class:`DsprepError` into one ``error: ...`` line and its exit code; other errors are bugs."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DsprepError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)

    def list_commands(self, ctx):  # keep the order commands were added in: the order of a typical workflow
        return list(self.commands)


def _csv(value: Optional[str]) -> List[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def dataset_options(f):
    f = click.option("--quiet", "-q", is_flag=True, help="No progress bar.")(f)
    f = click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
                     help="fail: stop at the first bad file; skip: go on and list skipped files at the end.")(f)
    f = click.option("--split", default=None, help="Only the images listed for this split (e.g. train).")(f)
    return f


def worker_options(f):
    f = click.option("--scheduler", default=None, envvar="DSPREP_SCHEDULER",
                     help="Dask scheduler address (tcp://HOST:8786), or 'local' for a throwaway cluster "
                          "[env: DSPREP_SCHEDULER]. Needs dsprep[dask].")(f)
    f = click.option("--workers", "-j", default="1", show_default=True,
                     help="Local worker processes (a number or 'auto').")(f)
    return f


def _load(path, split, on_error, quiet):
    from .dataset import load_dataset
    return load_dataset(path, split=split, on_error=on_error,
                        progress=lambda it: progress(it, desc="reading annotations", quiet=quiet, unit="file"))


def run_jobs(fn: Callable, items: List, summary: Summary, on_error: str, workers, scheduler, quiet: bool,
             desc: str, name_of: Callable = lambda item: str(item)) -> Iterable[dict]:
    """Run per-image jobs through the executor layer, feeding the bar, applying ``--on-error``.

    Yields ``(item, result)`` in input order; ``result`` is None for an item skipped by ``--on-error skip``."""
    from .parallel import executor, run
    with executor(workers, scheduler) as backend, progress(total=len(items), desc=desc, quiet=quiet) as bar:
        for item, result, err in run(backend, fn, items, on_done=lambda _: bar.update(1),
                                     isolate_failures=on_error == "skip", describe=name_of):
            if err is None:
                for k, v in result.items():
                    if isinstance(v, int) and not isinstance(v, bool):
                        summary.add(k, v)
                yield item, result
            elif isinstance(err, DsprepError):
                if on_error == "fail":
                    raise err
                summary.skip(name_of(item), str(err))
                yield item, None
            else:
                raise err


def _finish(summary: Summary, out: Optional[str], order: List[str]) -> None:
    click.echo(summary.line(out, order), err=True)
    for line in summary.details():
        click.echo(line, err=True)


@click.group(cls=DsprepGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="dsprep")
def main():
    """dsprep: turn raw object-detection data (PASCAL VOC, DOTA) into training-ready data."""


@main.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--images", "-n", default=24, show_default=True, help="How many demo images to generate.")
@click.option("--seed", default=0, show_default=True)
@click.option("--overwrite", is_flag=True, help="Write into a non-empty OUT.")
@click.option("--quiet", "-q", is_flag=True)
@click.pass_context
def demo(ctx, out, images, seed, overwrite, quiet):
    """Generate a small VOC data set and run every main command on it."""
    from .demo import make_voc_demo
    from .io import prepare_output_dir
    root = prepare_output_dir(out, overwrite=overwrite)
    voc = root / "voc"
    make_voc_demo(voc, n_images=images, seed=seed)
    click.echo(f"demo: generated {images} images -> {voc}", err=True)
    ctx.invoke(info, dataset=str(voc), as_json=False, split=None, on_error="fail", quiet=quiet)
    ctx.invoke(visualize_boxes, dataset=str(voc), out=str(root / "boxes"), classes=None, limit=None, show=False,
               grid=True, ext=".jpg", overwrite=overwrite, split=None, on_error="fail", quiet=quiet, workers="1",
               scheduler=None)
    ctx.invoke(crop, dataset=str(voc), out=str(root / "crops"), classes=None, pad=0, min_size=4,
               backgrounds=str(root / "backgrounds"), blank=None, upright=False, overwrite=overwrite, split=None,
               on_error="fail", quiet=quiet, workers="1", scheduler=None)
    # crop -> synth -> visualize -> info, on the crops and blanked backgrounds made above
    ctx.invoke(synth, backgrounds=str(root / "backgrounds"), objects=str(root / "crops"), out=str(root / "synth"),
               count=max(4, images // 2), fmt="voc", ext=".jpg", seed=seed, split="train", canvas="480x360",
               fit="crop", per_image="3:8", rotate="0:360", scale="0.8:1.2", flip="h", class_weights=None,
               max_overlap=0.0, blend="none", mask_from="auto", alpha_threshold=127, masks=True,
               color_method=None, jpeg_quality=95, overwrite=overwrite, append=False, on_error="fail", quiet=quiet,
               workers="1", scheduler=None)
    ctx.invoke(visualize_boxes, dataset=str(root / "synth"), out=str(root / "synth_boxes"), classes=None,
               limit=None, show=False, grid=True, ext=".jpg", overwrite=overwrite, split=None, on_error="fail",
               quiet=quiet, workers="1", scheduler=None)
    ctx.invoke(info, dataset=str(root / "synth"), as_json=False, split=None, on_error="fail", quiet=quiet)
    ctx.invoke(color, method="reference-white", inputs=(str(voc / "JPEGImages"),), out=str(root / "color"),
               fraction=None, min_pixels=100, p=6.0, jpeg_quality=95, in_place=False, overwrite=overwrite,
               on_error="fail", quiet=quiet, workers="1", scheduler=None)
    ctx.invoke(convert_voc_to_dota, dataset=str(root / "synth"), out=str(root / "dota"), overwrite=overwrite,
               split=None, on_error="fail", quiet=quiet, workers="1", scheduler=None)
    ctx.invoke(tile_dota, dataset=str(root / "dota"), out=str(root / "tiles"), size=256, gap=64, rates=("1",),
               thresh=0.7, ext=".png", pad=False, skip_empty=False, overwrite=overwrite, on_error="fail",
               quiet=quiet, workers="1", scheduler=None)
    packed = root / "voc.h5"
    ctx.invoke(voc_to_h5, dataset=str(voc), out=str(packed), splits=("train", "val"), size="256x256",
               resize="letterbox", encoded=False, compression="none", color_method=None, overwrite=overwrite,
               shards=None, on_error="fail", quiet=quiet, workers="1", scheduler=None)
    click.echo(f"demo: done; look at {root} (read {packed} with dsprep.hdf5.DetectionH5)", err=True)


@main.command()
@click.argument("dataset", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@dataset_options
def info(dataset, as_json, split, on_error, quiet):
    """What is in a data set, and what is wrong with it."""
    from .dataset import format_summary, summarize
    ds = _load(dataset, split, on_error, quiet)
    s = summarize(ds)
    if as_json:
        click.echo(json.dumps(s, ensure_ascii=False, indent=1))
    else:
        click.echo(format_summary(s))


@main.group(cls=DsprepGroup)
def visualize():
    """Draw annotations on images to check them by eye."""


@visualize.command("boxes")
@click.argument("dataset", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Folder for the drawn images.")
@click.option("--classes", default=None, help="Only these classes (comma-separated).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many images.")
@click.option("--show", is_flag=True, help="Also show each image in a window (needs a GUI build of OpenCV).")
@click.option("--grid", is_flag=True, help="Also write one contact sheet (grid.png) of the drawn images.")
@click.option("--ext", type=click.Choice([".jpg", ".png"]), default=".jpg", show_default=True)
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out folder.")
@dataset_options
@worker_options
def visualize_boxes(dataset, out, classes, limit, show, grid, ext, overwrite, split, on_error, quiet, workers,
                    scheduler):
    """Draw every box (or polygon) on its image, one file per image in --out."""
    from .draw import contact_sheet, drawable
    from .io import atomic_write_text, prepare_output_dir, safe_name, write_image
    from .jobs import VisualizeOptions, visualize_one
    if show:
        _check_gui()
    ds = _load(dataset, split, on_error, quiet)
    wanted = _csv(classes)
    unknown = [c for c in wanted if c not in ds.classes]
    if unknown:
        raise DsprepError(f"--classes: no objects of class {', '.join(unknown)} in {dataset} "
                          f"(classes: {', '.join(ds.classes)})")
    out_dir = prepare_output_dir(out, overwrite=overwrite)
    records = ds.records[:limit] if limit else ds.records
    index = {c: i for i, c in enumerate(ds.classes)}
    opts = VisualizeOptions(out=str(out_dir), class_index=index, classes=tuple(wanted), ext=ext,
                            thumb=256 if grid else 0)
    # packed files hold their images; folder data sets are read by the jobs themselves
    items = [(r, ds.image_getter(r) if ds.image_getter else None, opts) for r in records]
    summary = Summary("visualize")
    thumbs = []
    for item, result in run_jobs(visualize_one, items, summary, on_error, workers, scheduler, quiet, "drawing",
                                 name_of=lambda it: it[0].image_path):
        if result is not None and result.get("thumb") is not None:
            thumbs.append(result["thumb"])
        if show and result is not None and not _show(out_dir / (safe_name(item[0].stem) + ext)):
            show = False  # 'q' pressed: keep writing, stop showing
    if not all(drawable(c) for c in ds.classes):
        atomic_write_text(out_dir / "legend.txt", "".join(f"#{i}\t{c}\n" for i, c in enumerate(ds.classes)))
    if grid and thumbs:
        write_image(out_dir / "grid.png", contact_sheet(thumbs[:256]))
    _finish(summary, str(out_dir), ["images", "objects"])


def _check_gui() -> None:
    """--show opens a window: refuse at once (before any work) when this OpenCV cannot."""
    import cv2
    try:
        cv2.namedWindow("dsprep")
        cv2.destroyWindow("dsprep")
    except cv2.error as e:
        raise DsprepError("--show needs an OpenCV with a GUI (pip install opencv-python) and a display; this one "
                          "cannot open windows (drop --show: the images are written to --out)") from e


def _show(path: Path) -> bool:
    """Show one written image; returns False when the user pressed q or Esc."""
    import cv2
    cv2.imshow("dsprep", cv2.imread(str(path)))
    key = cv2.waitKey(0) & 0xFF
    if key in (ord("q"), 27):
        cv2.destroyAllWindows()
        return False
    return True


@main.command()
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
    from .io import prepare_output_dir
    from .jobs import CropOptions, crop_one
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


def _rate(value: str) -> float:
    try:
        r = float(value)
    except ValueError as e:
        raise click.BadParameter(f"'{value}' is not a number") from e
    if not r > 0:
        raise click.BadParameter(f"rate must be positive, got {value}")
    return r


@main.command("tile-dota")
@click.argument("dataset", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Output folder: OUT/images/ and OUT/labelTxt/.")
@click.option("--size", type=click.IntRange(min=1), default=1024, show_default=True, help="Tile size (pixels).")
@click.option("--gap", type=click.IntRange(min=0), default=200, show_default=True, help="Overlap between tiles.")
@click.option("--rate", "rates", multiple=True, default=["1"], show_default=True,
              help="Resize factor; repeat for several (tile names carry it: P0706__0.5__0___0).")
@click.option("--thresh", type=click.FloatRange(0, 1), default=0.7, show_default=True,
              help="A cut object keeps its difficult flag when more than this fraction of it is kept, else 2.")
@click.option("--ext", default=".png", show_default=True, type=click.Choice([".png", ".jpg", ".bmp", ".tif"]),
              help="Tile image format.")
@click.option("--pad", is_flag=True, help="Pad border tiles to SIZE x SIZE (not devkit-compatible).")
@click.option("--skip-empty", is_flag=True, help="Write no image or label for tiles without objects.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out folder.")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True)
@click.option("--quiet", "-q", is_flag=True)
@worker_options
def tile_dota(dataset, out, size, gap, rates, thresh, ext, pad, skip_empty, overwrite, on_error, quiet, workers,
              scheduler):
    """Split DOTA images into tiles, identical to DOTA_devkit ImgSplit.py output."""
    from .jobs import TileOptions, plan_tile_jobs, tile_one
    from .io import prepare_output_dir
    from .parallel import parse_workers
    from .tiling import tile_origins
    tile_origins(size, size, gap)  # validates size/gap before any work
    root = Path(dataset)
    if not root.is_dir():
        raise DatasetError(f"{root}: data set not found")
    rate_values = [_rate(r) for r in rates]
    out_dir = prepare_output_dir(out, overwrite=overwrite)
    (out_dir / "images").mkdir(exist_ok=True)
    (out_dir / "labelTxt").mkdir(exist_ok=True)
    # the cluster's size is not known before connecting: plan for two slots there
    jobs = plan_tile_jobs(root, rate_values, 2 if scheduler else parse_workers(workers), size, gap)
    opts = TileOptions(out=str(out_dir), size=size, gap=gap, thresh=thresh, ext=ext, pad=pad, skip_empty=skip_empty,
                       on_error=on_error)
    summary = Summary("tile-dota")
    for _, res in run_jobs(tile_one, [(j, opts) for j in jobs], summary, on_error, workers, scheduler, quiet,
                           "tiling", name_of=lambda it: it[0].image):
        for where, reason in (res or {}).get("skipped_lines", []):
            summary.skip(where, reason)
    _finish(summary, str(out_dir), ["images", "tiles", "objects", "cut", "difficult_2", "dropped"] +
            (["empty_skipped"] if skip_empty else []))


@main.command("merge-dota")
@click.argument("detections", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Folder for merged Task1_*.txt.")
@click.option("--nms-thresh", type=click.FloatRange(0, 1), default=0.3, show_default=True,
              help="Suppress a detection whose IoU with a higher-scored one is above this.")
@click.option("--iou", type=click.Choice(["poly", "box"]), default="poly", show_default=True,
              help="Exact polygon IoU, or axis-aligned box IoU.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out folder.")
@click.option("--quiet", "-q", is_flag=True)
def merge_dota(detections, out, nms_thresh, iou, overwrite, quiet):
    """Map per-tile detections (Task1_<class>.txt) back to their images, with NMS."""
    from .io import atomic_write_text, prepare_output_dir
    from .merge import format_task1, merge, parse_task1
    src = Path(detections)
    files = sorted(src.glob("Task1_*.txt")) if src.is_dir() else [src]
    if not src.exists():
        raise DatasetError(f"{src}: not found")
    if not files:
        raise DatasetError(f"{src}: no Task1_<class>.txt files")
    out_dir = prepare_output_dir(out, overwrite=overwrite)
    summary = Summary("merge-dota")
    for f in progress(files, desc="merging", quiet=quiet, unit="class"):
        dets = parse_task1(f.read_text(encoding="utf-8"), str(f))
        kept = merge(dets, nms_thresh, iou)
        atomic_write_text(out_dir / f.name, format_task1(dets, kept))
        summary.add("classes")
        summary.add("detections", len(dets.stems))
        summary.add("kept", sum(len(v) for v in kept.values()))
    _finish(summary, str(out_dir), ["classes", "detections", "kept"])


@main.group(cls=DsprepGroup)
def convert():
    """Convert a data set between VOC and DOTA."""


def _convert(dataset, out, target, split, on_error, quiet, overwrite, workers, scheduler):
    from .io import prepare_output_dir
    from .jobs import ConvertOptions, convert_one, write_split_files
    ds = _load(dataset, split, on_error, quiet)
    out_dir = prepare_output_dir(out, overwrite=overwrite)
    opts = ConvertOptions(out=str(out_dir), target=target)
    summary = Summary(f"convert {ds.format}-to-{target}")
    done = [(item[0], r["stem"]) for item, r in run_jobs(
        convert_one, [(r, opts) for r in ds.records], summary, on_error, workers, scheduler, quiet, "converting",
        name_of=lambda it: it[0].image_path) if r is not None]
    write_split_files(out_dir, target, [rec for rec, _ in done], [stem for _, stem in done])
    _finish(summary, str(out_dir), ["images", "objects", "clipped"])


def convert_options(f):
    for deco in reversed([click.argument("dataset", type=click.Path()),
                          click.option("--out", "-o", required=True, type=click.Path(file_okay=False)),
                          click.option("--overwrite", is_flag=True, help="Write into a non-empty --out folder."),
                          dataset_options, worker_options]):
        f = deco(f)
    return f


@convert.command("dota-to-voc")
@convert_options
def convert_dota_to_voc(dataset, out, overwrite, split, on_error, quiet, workers, scheduler):
    """DOTA (images/ + labelTxt/) to VOC: the axis-aligned box of each polygon, difficult kept."""
    _convert(dataset, out, "voc", split, on_error, quiet, overwrite, workers, scheduler)


@convert.command("voc-to-dota")
@convert_options
def convert_voc_to_dota(dataset, out, overwrite, split, on_error, quiet, workers, scheduler):
    """VOC to DOTA: each box as a clockwise quad (top-left, top-right, bottom-right, bottom-left)."""
    _convert(dataset, out, "dota", split, on_error, quiet, overwrite, workers, scheduler)


@main.command()
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
    from .io import prepare_output_dir
    from .jobs import ColorOptions, color_one, color_pairs
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


def pack_options(f):
    f = click.option("--overwrite", is_flag=True, help="Replace an existing OUT file.")(f)
    f = click.option("--color", "color_method", default=None,
                     type=click.Choice(COLOR_METHODS),
                     help="Colour-correct every image first (see dsprep color).")(f)
    f = click.option("--compression", type=click.Choice(["none", "lzf", "gzip"]), default="none",
                     show_default=True, help="HDF5 compression (one image per chunk when set).")(f)
    f = click.option("--encoded", is_flag=True,
                     help="Store the original encoded files (full resolution; the default without --size).")(f)
    f = click.option("--resize", type=click.Choice(["letterbox", "stretch"]), default="letterbox",
                     show_default=True, help="How --size is reached: keep aspect and pad, or stretch.")(f)
    f = click.option("--size", default=None, help="Store every image at this size, e.g. 512x512.")(f)
    f = click.option("--split", "splits", multiple=True,
                     help="Pack these splits (repeatable), one group each; default: everything as 'all'.")(f)
    return f


def _pack(dataset, out, splits, size, resize, encoded, compression, color_method, annotations_only, on_error,
          quiet, workers, scheduler, overwrite, writer_name, shards=0):
    from .core import class_list
    from .hdf5 import H5Writer, PackOptions, PickleWriter, annotation_only_results, pack_items
    from .resize import parse_size
    if size and encoded:
        raise DsprepError("--size and --encoded exclude each other (fixed-size arrays, or the original files)")
    try:
        wh = parse_size(size) if size else None
    except ValueError as e:
        raise DsprepError(f"--size: {e}") from e
    out_path = Path(out)
    if out_path.exists() and not overwrite:
        raise OutputError(f"{out_path}: already exists (use --overwrite to replace it)")
    groups = {}
    for split in (splits or [None]):
        ds = _load(dataset, split, on_error, quiet)
        groups[split or "all"] = ds.records
    classes = class_list(r for recs in groups.values() for r in recs)
    opts = PackOptions(size=wh, resize=resize, compression=compression, color=color_method,
                       annotations_only=annotations_only)
    summary = Summary(writer_name)
    if shards:
        _pack_shards(out_path, groups, classes, opts, shards, summary, on_error, quiet, workers, scheduler, overwrite)
        return
    writer_cls = H5Writer if writer_name == "voc-to-h5" else PickleWriter
    # Local workers write fixed-size pixels into the file themselves; a cluster returns them to this process.
    with writer_cls(out_path, groups, classes, opts, overwrite=overwrite, direct=not scheduler) as writer:
        if opts.mode == "annotations":
            results = annotation_only_results(groups)
        else:
            results = run_jobs(pack_one, pack_items(writer, groups, opts), summary, on_error, workers, scheduler,
                               quiet, "packing", name_of=lambda it: it[2][0])
        for (split, index, _), prepared in results:
            writer.add(split, index, prepared)
    summary.counts.clear()
    summary.add("images", writer.stats["images"])
    summary.add("objects", writer.stats["objects"])
    _finish(summary, str(out_path), ["images", "objects"])


def _pack_shards(out_path, groups, classes, opts, shards, summary, on_error, quiet, workers, scheduler, overwrite):
    """Workers write K complete shard files; this process ties them together in one master file."""
    from .hdf5 import pack_shard, shard_path, shard_ranges, write_master
    if opts.mode == "annotations" or opts.compression != "none":
        raise DsprepError("--shards works with --size or --encoded, without --compression")
    paths = [shard_path(out_path, k, shards) for k in range(shards)]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise OutputError(f"{existing[0]}: already exists (use --overwrite to replace it)")
    ranges = {s: shard_ranges(len(recs), shards) for s, recs in groups.items()}
    tasks = [(str(paths[k]), {s: groups[s][slice(*ranges[s][k])] for s in groups}, classes, opts, on_error,
              overwrite) for k in range(shards)]
    for _, res in run_jobs(pack_shard, tasks, summary, on_error, workers, scheduler, quiet, "packing shards",
                           name_of=lambda t: t[0]):
        if res is None:
            raise DsprepError("a shard failed: the master file was not written")
        for f, reason in res["skipped"]:
            summary.skip(f, reason)
    write_master(out_path, paths, list(groups), classes, opts, overwrite=overwrite)
    _finish(summary, f"{out_path} (+{shards} shards)", ["images", "objects"])


def pack_one(task):
    """Worker entry point for packing: ``(split, index, (path, options))`` -> prepared image."""
    from .hdf5 import prepare_image
    return prepare_image(task[2])


@main.command("voc-to-h5")
@click.argument("dataset", type=click.Path())
@click.argument("out", type=click.Path(dir_okay=False))
@pack_options
@click.option("--shards", type=click.IntRange(min=1), default=None,
              help="Workers write this many shard files beside OUT, tied together in OUT by virtual datasets.")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True)
@click.option("--quiet", "-q", is_flag=True)
@worker_options
def voc_to_h5(dataset, out, splits, size, resize, encoded, compression, color_method, overwrite, shards, on_error,
              quiet, workers, scheduler):
    """Pack a data set into one HDF5 file for fast training input (see README for the layout)."""
    _pack(dataset, out, splits, size, resize, encoded, compression, color_method, False, on_error, quiet, workers,
          scheduler, overwrite, "voc-to-h5", shards=shards or 0)


@main.command("voc-to-pickle")
@click.argument("dataset", type=click.Path())
@click.argument("out", type=click.Path(dir_okay=False))
@pack_options
@click.option("--annotations-only", is_flag=True, help="Store only the annotations (images read from their files).")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True)
@click.option("--quiet", "-q", is_flag=True)
@worker_options
def voc_to_pickle(dataset, out, splits, size, resize, encoded, compression, color_method, overwrite,
                  annotations_only, on_error, quiet, workers, scheduler):
    """Pack into one pickle of numpy arrays. WARNING: load pickles only from trusted sources (loading runs code);
    a pickle is loaded whole into memory (VOC2012 at 512x512 is ~13.5 GB per process): best with
    --annotations-only."""
    _pack(dataset, out, splits, size, resize, encoded, compression, color_method, annotations_only, on_error, quiet,
          workers, scheduler, overwrite, "voc-to-pickle")


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


@main.command()
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
    from .io import is_image, prepare_output_dir
    from .jobs import SynthConfig, synth_one
    from .resize import parse_size
    from .synth import SynthParams
    from .voc import write_split_list
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
