"""The ``dsprep`` command line: the group every command hangs from.

Commands live in :mod:`dsprep.commands`, one module per command family; each parses its options, calls the library
and reports.  A :class:`~dsprep.core.DsprepError` becomes one ``error: ...`` line and its exit code; any other
exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import sys

import click

from . import __version__
from .commands import color, convert, crop, demo, eval as eval_, fetch, info, pack, review, synth, tile, visualize
from .commands.common import DsprepGroup


@click.group(cls=DsprepGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="dsprep")
def main():
    """dsprep: turn raw object-detection data into training-ready data."""


# the order of a typical workflow (``dsprep --help`` lists them so): get and inspect the data, fix it, prepare it,
# make more of it, pack it for training, score the detector
for _cmd in (demo.demo, fetch.fetch, info.info, visualize.visualize, review.review, convert.convert, crop.crop,
             tile.tile_dota, synth.synth, color.color, pack.voc_to_h5, pack.voc_to_pickle, tile.merge_dota,
             eval_.eval_cmd):
    main.add_command(_cmd)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
