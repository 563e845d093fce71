"""``dsprep info``: what is in a data set, and what is wrong with it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import click

from ..core import DatasetError, DsprepError, OutputError
from ..report import Summary, progress
from .common import DsprepGroup, _csv, _finish, _load, dataset_options, run_jobs, worker_options


@click.command()
@click.argument("dataset", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@dataset_options
def info(dataset, as_json, split, on_error, quiet):
    """What is in a data set, and what is wrong with it."""
    from ..info import format_summary, summarize
    ds = _load(dataset, split, on_error, quiet)
    s = summarize(ds)
    if as_json:
        click.echo(json.dumps(s, ensure_ascii=False, indent=1))
    else:
        click.echo(format_summary(s))
