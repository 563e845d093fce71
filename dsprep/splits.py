"""Which splits an image belongs to: one primary split (``ImageRecord.split``) and, where the source says so, more.

A data set's splits are part of the data: VOC's ``ImageSets/Main/<split>.txt`` lists, YOLO's ``data.yaml`` entries,
COCO's ``instances_<split>.json`` files.  One image may be listed in several (VOC 2007 lists an image in ``train``
*and* in ``trainval``).  The model keeps that as:

* ``rec.split`` -- the **primary** split, the one every writer honours (and the only one a command that assigns
  splits needs to set);
* ``rec.meta["splits"]`` -- every split the image is in, the primary first.  It is trusted only while its first
  entry *is* ``rec.split``: code that sets ``rec.split`` to something else (a ``split`` command re-assigning
  splits) thereby makes the older list stale, and :func:`splits_of` then answers ``[rec.split]``.

Formats whose splits are lists (VOC, DOTA's lists written by dsprep) write an image into every list it is in;
formats whose splits are folders or files of their own (YOLO, YOLO-OBB, COCO, labelme) write it once, under its
primary split, and a conversion counts those images (``split_membership_not_kept``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

from .core import ImageRecord

# Which of an image's splits is its primary one: the plain training / validation / test splits before their
# unions (``trainval``) and anything else (alphabetically).
_RANK = {"train": 0, "val": 1, "valid": 1, "validation": 1, "test": 2}


def split_order(names: Iterable[str]) -> List[str]:
    """``names`` without repeats, the primary-split candidates first: ``train, val, test``, then the rest sorted."""
    return sorted(dict.fromkeys(names), key=lambda s: (_RANK.get(s.lower(), 3), s))


def splits_of(rec: ImageRecord) -> List[str]:
    """Every split ``rec`` is in, its primary split (``rec.split``) first; ``[]`` for an image without a split."""
    if rec.split is None:
        return []
    more = rec.meta.get("splits")
    if more and more[0] == rec.split:
        return list(more)
    return [rec.split]


def set_splits(rec: ImageRecord, names: Sequence[str]) -> None:
    """Make ``rec`` a member of ``names`` (in :func:`split_order`, the first the primary split); in place, for
    readers building their records."""
    ordered = split_order(names)
    rec.split = ordered[0] if ordered else None
    if len(ordered) > 1:
        rec.meta["splits"] = tuple(ordered)
    else:
        rec.meta.pop("splits", None)


def several_splits(records: Iterable[ImageRecord]) -> int:
    """How many records are in more than one split."""
    return sum(1 for r in records if len(splits_of(r)) > 1)


def read_list(path) -> List[str]:
    """The entries of a split list file, one a line: blank lines and ``#`` comments (a line starting with ``#``,
    or `` #`` after the entry) are not entries."""
    with open(path, encoding="utf-8-sig") as f:
        return [t for t in map(strip_comment, f) if t]


def strip_comment(line: str) -> str:
    """A list line without its ``#`` comment and surrounding white space (``''`` for a comment or blank line); a
    ``#`` inside a name (``a#1.jpg``) is part of the name."""
    text = line.strip()
    if text.startswith("#"):
        return ""
    for sep in (" #", "\t#"):
        if sep in text:
            text = text.split(sep, 1)[0].rstrip()
    return text


def lists_by_split(records: Iterable[ImageRecord], name=lambda r: r.stem) -> Dict[str, List[str]]:
    """``{split: [name of each member]}`` over every membership of every record (records without a split left
    out), splits in :func:`split_order`, members in record order."""
    found: Dict[str, List[str]] = {}
    for rec in records:
        for s in splits_of(rec):
            found.setdefault(s, []).append(name(rec))
    return {s: found[s] for s in split_order(found)}


def list_files(lists: Dict[str, List[str]], folder: str) -> Dict[str, bytes]:
    """``{folder/<split>.txt: one name a line}``: split lists as files of a writer's ``finish``."""
    return {f"{folder}/{s}.txt": "".join(f"{n}\n" for n in names).encode("utf-8") for s, names in lists.items()}


def read_lists(folder: Path) -> Dict[str, List[str]]:
    """``{split: entries}`` of the ``<split>.txt`` files in ``folder`` (none: ``{}``)."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {p.stem: read_list(p) for p in sorted(folder.glob("*.txt"))}


def membership(lists: Dict[str, List[str]]) -> Dict[str, List[str]]:
    """``{entry: [its splits, primary first]}`` from ``{split: entries}`` (entries reduced to their stems)."""
    out: Dict[str, List[str]] = {}
    for split, entries in lists.items():
        for e in entries:
            stem = os.path.splitext(os.path.basename(e))[0]
            out.setdefault(stem, []).append(split)
    return {k: split_order(v) for k, v in out.items()}


def one_split_option(values: Optional[Sequence[str]]) -> Optional[str]:
    """``--split`` given once (or not): its value.  Given more than once it is refused (a usage error), never
    silently the last: a union of splits is what the format's own lists are for (``trainval``)."""
    from .core import UsageError
    vals = list(values or ())
    if len(vals) > 1:
        raise UsageError(f"--split given {len(vals)} times ({', '.join(vals)}): give one split (to use several, "
                         f"run once per split, or use a list that holds them, e.g. trainval)")
    return vals[0] if vals else None
