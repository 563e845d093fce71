"""``dsprep anchors``: anchor boxes fitted to a data set's boxes at a training size, and how well given ones fit."""
from __future__ import annotations

import json

import click

from .. import signals
from .common import SIZE, load, shared


def _anchors_option(ctx, param, value):
    if value is None:
        return None
    from ..anchors import parse_anchors
    try:
        return parse_anchors(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx, param) from e


@click.command()
@click.argument("dataset", type=click.Path())
@click.option("--n", "n", type=click.IntRange(1, 64), default=9, show_default=True, help="How many anchors.")
@click.option("--size", type=SIZE, default="640", show_default=True,
              help="Training size: each image scaled so that its long side is this many pixels (one number).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the k-means start and the refinement (same seed, same anchors).")
@click.option("--anchors", "given", default=None, callback=_anchors_option,
              help="Existing anchors to judge: w,h pairs at the training size (10,13,16,30,33,23 or 10x13,16x30).")
@shared("dataset", "run")
def anchors(dataset, n, size, seed, given, common):
    """Anchor boxes for DATASET: k-means on 1 - IoU of the boxes scaled as for training (long side = --size),
    refined by random perturbation; prints them sorted by area with their mean best IoU and YOLOv5's best possible
    recall (ratio threshold 4), and with --anchors how well those fit. --json: {"anchors": [[w, h], ...],
    "mean_iou": x, "bpr": y, ...}."""
    from ..anchors import anchors_report, format_report, training_sizes
    from ..core import DatasetError, UsageError
    if size[0] != size[1]:
        raise UsageError(f"--size: one number, the long side the images are scaled to (not {size[0]}x{size[1]})")
    size = size[0]
    ds = load(dataset, common)
    wh = training_sizes(ds.records, size)
    try:
        report = anchors_report(wh, n, seed, given)
    except ValueError as e:
        raise DatasetError(f"{dataset}: {e}") from e
    report["size"] = size
    signals.settle()  # the report is all that is left: a late Ctrl-C must not add a line to it
    if common.as_json:
        click.echo(json.dumps(report, indent=1))
    else:
        click.echo(format_report(report, size))
