"""DOTA label text (``x1 y1 ... x4 y4 class difficult``), the public face.

``parse_dota(text) -> (ImageRecord, [Problem], skipped)`` and ``format_dota(rec) -> str`` are pure; ``read_dota``
reads a label file; ``dota_items`` lists an ``images/`` + ``labelTxt/`` folder; ``update_dota`` writes edited
objects into a file keeping every other byte; ``self_intersecting`` and ``quad_problems`` check quads.  The
implementation (and the format's description for the registry) is :mod:`dsprep.formats.dota`.
"""
from .formats.dota import (HEADER_KEYS, Writer, dota_items, format_dota, parse_dota, quad_problems, read_dota,
                           self_intersecting, update_dota)

__all__ = ["HEADER_KEYS", "Writer", "dota_items", "format_dota", "parse_dota", "quad_problems", "read_dota",
           "self_intersecting", "update_dota"]
