"""``dsprep info``: what is in a data set, and what is wrong with it."""
from __future__ import annotations

import json

import click

from .. import signals
from .common import load, run_jobs, shared, start_summary


@click.command()
@click.argument("dataset", type=click.Path())
@click.option("--check-images", is_flag=True,
              help="Also decode every image and list each one that is empty, truncated or corrupt (slower; "
                   "parallel with --workers).")
@shared("dataset", "classes", "run", "workers")
def info(dataset, check_images, common):
    """What is in a data set, and what is wrong with it (headers only; --check-images decodes every image).

    With --json the report itself is printed as one JSON document."""
    from ..info import check_images as check_all, format_summary, summarize
    ds = load(dataset, common)
    if check_images:
        check_all(ds, lambda fn, items, desc: run_jobs(fn, items, start_summary("check"), common, desc,
                                                        name_of=lambda it: it[0]))
    s = summarize(ds)
    signals.settle()  # the report is all that is left: a late Ctrl-C must not add a line to it
    if common.as_json:
        click.echo(json.dumps(s, ensure_ascii=False, indent=1))
    else:
        click.echo(format_summary(s))
