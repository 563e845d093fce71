"""The one rule for image paths that annotation files name: they stay inside the data set.

A labelme ``imagePath``, a COCO ``file_name`` or a line of a YOLO list file is text from whoever made the data set.
``../private/id_rsa`` or ``/home/you/.ssh/id_rsa`` there must not make dsprep read, draw, pack or copy that file.
:func:`named_path` resolves such a path *lexically* (``..`` removed without following symbolic links) against the
annotation's folder and refuses it when it leaves every folder the data set consists of.  A symbolic link the user
placed inside the data set is the user's choice: the lexical path stays inside, so it is followed when read.

``--images-outside`` (``load_dataset(..., images_outside=True)``, which calls :func:`allow_outside`) lifts the
rule for one data set, for data sets one trusts whose
annotations point into another folder (labelme files in ``ann/`` naming ``../raw/x.jpg``).
"""
from __future__ import annotations

import os
from typing import Sequence

from .core import DatasetError

_ALLOW_OUTSIDE = False


class OutsideDataset(DatasetError):
    """An annotation names an image outside the data set."""


def allow_outside(allowed: bool) -> None:
    """Accept paths outside the data set (or not) from now on: every :func:`dsprep.dataset.load_dataset` sets it
    for the data set it reads (and the later re-reads of its files, as ``review`` does)."""
    global _ALLOW_OUTSIDE
    _ALLOW_OUTSIDE = bool(allowed)


def lexical(named: str, base: str) -> str:
    """``named`` (``\\`` separators as Windows tools write them) against ``base`` with ``.``/``..`` removed as
    text: no symbolic link is followed."""
    named = named.replace("\\", "/")
    return os.path.normpath(named if os.path.isabs(named) else os.path.join(base, named))


def is_inside(path: str, roots: Sequence[str]) -> bool:
    full = os.path.abspath(path)
    for root in roots:
        r = os.path.abspath(root)
        if full == r or full.startswith(r.rstrip(os.sep) + os.sep):
            return True
    return False


def named_path(named: str, base: str, roots: Sequence[str], source: str, what: str) -> str:
    """The path an annotation file (``source``) names as ``what`` (``imagePath 'x'``), resolved against ``base``;
    :class:`OutsideDataset` when it lies outside every folder in ``roots`` (unless :func:`allow_outside`)."""
    path = lexical(named, base)
    if not _ALLOW_OUTSIDE and not is_inside(path, roots):
        raise OutsideDataset(f"{source}: {what} lies outside the data set ({', '.join(map(str, roots))}): refused "
                             f"(dsprep reads only files inside the data set; --images-outside allows it for a "
                             f"data set you trust)")
    return path
