"""The ``dsprep`` command line: the group every command hangs from.

Commands live in :mod:`dsprep.commands`, one module per command family; each parses its options, calls the library
and reports.  A :class:`~dsprep.core.DsprepError` becomes one ``error: ...`` line and its exit code; any other
exception is a bug and keeps its traceback.  A command's module is imported when the command runs (or when
``--help`` lists it), so ``dsprep merge-dota`` never loads OpenCV and start-up stays small.
"""
from __future__ import annotations

import importlib

import click

from . import __version__
from .commands.common import DsprepGroup

# name -> (module in dsprep.commands, attribute), in the order of a typical workflow (``dsprep --help`` lists them
# so): get and inspect the data, fix it, prepare it, make more of it, pack it for training, score the detector
COMMANDS = {
    "demo": ("demo", "demo"),
    "fetch": ("fetch", "fetch"),
    "info": ("info", "info"),
    "dedup": ("dedup", "dedup"),
    "anchors": ("anchors", "anchors"),
    "visualize": ("visualize", "visualize"),
    "review": ("review", "review"),
    "convert": ("convert", "convert"),
    "split": ("split", "split"),
    "merge": ("merge", "merge"),
    "crop": ("crop", "crop"),
    "tile-dota": ("tile", "tile_dota"),
    "tile": ("tile", "tile"),
    "synth": ("synth", "synth"),
    "color": ("color", "color"),
    "colorize": ("colorize", "colorize"),
    "voc-to-h5": ("pack", "voc_to_h5"),
    "voc-to-pickle": ("pack", "voc_to_pickle"),
    "merge-dota": ("tile", "merge_dota"),
    "eval": ("eval", "eval_cmd"),
}


class _LazyCommands(dict):
    """``name -> click command``, each imported on first access (the group's ``commands`` mapping)."""

    def __init__(self, spec):
        super().__init__((name, None) for name in spec)
        self.spec = dict(spec)

    def __getitem__(self, name):
        cmd = super().__getitem__(name)
        if cmd is None:
            module, attr = self.spec[name]
            cmd = getattr(importlib.import_module(f"{__package__}.commands.{module}"), attr)
            super().__setitem__(name, cmd)
        return cmd

    def get(self, name, default=None):
        return self[name] if name in self else default

    def items(self):
        return [(name, self[name]) for name in self]

    def values(self):
        return [self[name] for name in self]


@click.group(cls=DsprepGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="dsprep")
def main():
    """dsprep: turn raw object-detection data into training-ready data."""


main.commands = _LazyCommands(COMMANDS)
