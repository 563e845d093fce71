"""``dsprep convert``: a data set written in another format."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import click

from ..core import DatasetError, DsprepError, OutputError
from ..report import Summary, progress
from .common import DsprepGroup, _csv, _finish, _load, dataset_options, run_jobs, worker_options


@click.group(cls=DsprepGroup)
def convert():
    """Convert a data set between VOC and DOTA."""


def _convert(dataset, out, target, split, on_error, quiet, overwrite, workers, scheduler):
    from ..dataset import format_module
    from ..jobs.convert import ConvertOptions, convert_one, write_dataset_files
    from ..outputs import prepare_output_dir
    ds = _load(dataset, split, on_error, quiet)
    out_dir = prepare_output_dir(out, overwrite=overwrite)
    writer = format_module(target).Writer(ds.classes)
    opts = ConvertOptions(out=str(out_dir), writer=writer)
    summary = Summary(f"convert {ds.format}-to-{target}")
    done = [item[0] for item, r in run_jobs(
        convert_one, [(r, opts) for r in ds.records], summary, on_error, workers, scheduler, quiet, "converting",
        name_of=lambda it: it[0].image_path) if r is not None]
    write_dataset_files(out_dir, writer, done)
    _finish(summary, str(out_dir), ["images", "objects"])


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
