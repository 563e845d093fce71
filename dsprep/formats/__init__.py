"""The one registry of data-set formats: which module reads (and writes) which layout.

Each format is one module of this package holding a :class:`~dsprep.formats.spec.FormatSpec` named ``FORMAT``
(what it is called, how it is detected, read and written, what it can hold, its edit protocol).  Adding a format is
one new module and one line in :data:`FORMATS`; nothing else names formats.  Modules are imported by name when first
used, so the command line starts fast; format modules never import this registry (they share
:mod:`dsprep.formats.common` and :mod:`dsprep.formats.spec`).
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import List

from ..core import DatasetError, UsageError
from .spec import FormatSpec

# name -> the module holding its FORMAT (``--format`` and ``--to`` list them in this order)
FORMATS = {
    "h5": "dsprep.formats.packed",
    "dota": "dsprep.formats.dota",
    "coco": "dsprep.formats.coco",
    "yolo": "dsprep.formats.yolo",
    "yolo-obb": "dsprep.formats.yolo_obb",
    "yolo-seg": "dsprep.formats.yolo_seg",
    "labelme": "dsprep.formats.labelme",
    "voc": "dsprep.formats.voc",
}


def format_spec(name: str) -> FormatSpec:
    """The format called ``name`` (a :class:`UsageError` naming the known ones otherwise)."""
    if name not in FORMATS:
        raise UsageError(f"--format: unknown format '{name}' (known: {', '.join(FORMATS)})")
    spec = importlib.import_module(FORMATS[name]).FORMAT
    if spec.name != name:  # a registry line pointing at the wrong module
        raise ValueError(f"{FORMATS[name]}.FORMAT is named '{spec.name}', registered as '{name}'")
    return spec


def detect_format(path: Path) -> str:
    """The name of the format ``path`` is in.  :class:`DatasetError` when none recognises it, or when several do
    (naming them: ``--format`` chooses)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: data set not found")
    found = [name for name in FORMATS if format_spec(name).detect(path)]
    if len(found) == 1:
        return found[0]
    if found:
        raise DatasetError(f"{path}: could be read as {' or as '.join(found)}; choose one with --format "
                           f"({' / '.join(f'--format {n}' for n in found)})")
    if path.is_file():
        raise DatasetError(f"{path}: not a data set folder or a file format dsprep reads")
    looked = "; ".join(format_spec(n).layout for n in FORMATS)
    raise DatasetError(f"{path}: no data set found (looked for {looked})")


def writable_formats() -> List[str]:
    """Formats dsprep writes (``--to``)."""
    return [name for name in FORMATS if format_spec(name).writer is not None]


def editable_formats() -> List[str]:
    """Formats implementing the edit protocol (``dsprep review`` saves into their files)."""
    return [name for name in FORMATS if format_spec(name).edit is not None]
