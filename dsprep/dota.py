"""DOTA label text (``x1 y1 ... x4 y4 class difficult``), the public face.

``parse_dota(text) -> (ImageRecord, [Problem], skipped)`` and ``format_dota(rec) -> str`` are pure; ``read_dota``
reads a label file; ``dota_items`` lists an ``images/`` + ``labelTxt/`` folder (``split_folders`` the ``<split>/labelTxt/`` layout,
``SPLIT_LISTS`` where dsprep keeps a folder's split lists); ``update_dota`` writes edited
objects into a file keeping every other byte; ``self_intersecting`` and ``quad_problems`` check quads.  The
implementation (and the format's description for the registry) is :mod:`dsprep.formats.dota`.
"""
from .formats.dota import (HEADER_KEYS, SPLIT_LISTS, Writer, dota_items, format_dota, parse_dota, quad_problems,
                           read_dota, self_intersecting, split_folders, update_dota)

__all__ = ["HEADER_KEYS", "SPLIT_LISTS", "Writer", "dota_items", "format_dota", "parse_dota", "quad_problems",
           "read_dota", "self_intersecting", "split_folders", "update_dota"]
