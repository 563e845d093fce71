"""The ``dsprep`` command line: the group every command hangs from.

Commands live in :mod:`dsprep.commands`, one module per command family; each parses its options, calls the library
and reports.  A :class:`~dsprep.core.DsprepError` becomes one ``error: ...`` line and its exit code; any other
exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import sys

import click

from . import __version__
from .commands import color, convert, crop, demo, fetch, info, pack, synth, tile, visualize
from .commands.common import DsprepGroup


@click.group(cls=DsprepGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="dsprep")
def main():
    """dsprep: turn raw object-detection data into training-ready data."""


# the order of a typical workflow (``dsprep --help`` lists them so)
main.add_command(fetch.fetch)  # getting the data comes first
for _cmd in (demo.demo, info.info, visualize.visualize, crop.crop, tile.tile_dota, tile.tile, tile.merge_dota,
             convert.convert, synth.synth, color.color, pack.voc_to_h5, pack.voc_to_pickle):
    main.add_command(_cmd)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
