"""``dsprep convert``: a data set written in another format."""
from __future__ import annotations

import click

from .common import DsprepGroup, finish, load, run_jobs, shared, start_summary


@click.group(cls=DsprepGroup)
def convert():
    """Convert a data set between VOC and DOTA."""


def _convert(dataset, out, target, overwrite, common):
    from ..dataset import format_module
    from ..jobs.convert import ConvertOptions, convert_one, write_dataset_files
    from ..outputs import OutputDir
    ds = load(dataset, common)
    writer = format_module(target).Writer(ds.classes)
    summary = start_summary(f"convert {ds.format}-to-{target}", ds)
    with OutputDir(out, overwrite=overwrite, inputs=[dataset]) as out_dir:
        opts = ConvertOptions(out=str(out_dir), writer=writer)
        done = [item[0] for item, r in run_jobs(convert_one, [(r, opts) for r in ds.records], summary, common,
                                                "converting", name_of=lambda it: it[0].image_path) if r is not None]
        write_dataset_files(out_dir, writer, done)
    finish(summary, str(out_dir), ["images", "objects"], common)


def convert_options(f):
    for deco in reversed([click.argument("dataset", type=click.Path()),
                          click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
                                       help="Output folder (never inside the input data set)."),
                          click.option("--overwrite", is_flag=True, help="Write into a non-empty --out folder."),
                          shared("dataset", "classes", "run", "workers")]):
        f = deco(f)
    return f


@convert.command("dota-to-voc")
@convert_options
def convert_dota_to_voc(dataset, out, overwrite, common):
    """DOTA (images/ + labelTxt/) to VOC: the axis-aligned box of each polygon, difficult kept."""
    _convert(dataset, out, "voc", overwrite, common)


@convert.command("voc-to-dota")
@convert_options
def convert_voc_to_dota(dataset, out, overwrite, common):
    """VOC to DOTA: each box as a clockwise quad (top-left, top-right, bottom-right, bottom-left)."""
    _convert(dataset, out, "dota", overwrite, common)
