"""``dsprep tile-dota`` (DOTA_devkit-identical tiles) and ``merge-dota`` (detections mapped back)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import click

from ..core import DatasetError, DsprepError, OutputError
from ..report import Summary, progress
from .common import DsprepGroup, _csv, _finish, _load, dataset_options, run_jobs, worker_options


def _rate(value: str) -> float:
    try:
        r = float(value)
    except ValueError as e:
        raise click.BadParameter(f"'{value}' is not a number") from e
    if not r > 0:
        raise click.BadParameter(f"rate must be positive, got {value}")
    return r


@click.command("tile-dota")
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
    from ..jobs.tile import TileOptions, plan_tile_jobs, tile_one
    from ..outputs import prepare_output_dir
    from ..parallel import parse_workers
    from ..tiling import tile_origins
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


@click.command("merge-dota")
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
    from ..outputs import atomic_write_text, prepare_output_dir
    from ..merge import format_task1, merge, parse_task1
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
