"""The union of several data sets (``dsprep merge``): records, one class list, per-class facts, names kept apart.

Pure logic over :class:`~dsprep.core.Dataset` objects already read; the command writes the result through the
format writers.

* classes are joined by name: the first input's class list in its order, then each later input's new names in
  theirs (:func:`~dsprep.core.decide_classes` with that list declared);
* records keep their splits, so same-named splits are joined (``train`` of A and ``train`` of B are one ``train``);
* an image whose output name (as the target writer places it) is already taken by an earlier input is renamed
  ``<stem>_<k>`` (``k`` the input's position, from 1), then ``<stem>_<k>_2`` ... and the rename is reported;
* COCO category ids, category entries and supercategories are kept from the first input that has them, unless
  another class already took the id.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Sequence, Tuple

from ..core import Dataset, ImageRecord, decide_classes


@dataclass
class Combined:
    records: List[ImageRecord]
    classes: List[str]
    meta: dict
    origin: List[int] = field(default_factory=list)  # the input each record came from (0-based)
    renamed: List[Tuple[int, str, str]] = field(default_factory=list)  # (input, image path, new stem)


def join_classes(datasets: Sequence[Dataset]) -> List[str]:
    """The class list of the union (see the module docstring)."""
    declared: List[str] = []
    seen = set()
    for ds in datasets:
        for c in ds.classes:
            if c not in seen:
                seen.add(c)
                declared.append(c)
    return decide_classes([r for ds in datasets for r in ds.records], declared=declared)


def join_meta(datasets: Sequence[Dataset]) -> dict:
    """Per-class facts of the union (COCO category ids and entries, supercategories): the first input's wins; an id
    another class already holds is left for the writer to assign anew."""
    ids: Dict[str, int] = {}
    used = set()
    tables: Dict[str, dict] = {"coco_categories": {}, "supercategories": {}}
    for ds in datasets:
        for name, cid in (ds.meta.get("category_ids") or {}).items():
            if name not in ids and cid not in used:
                ids[name] = cid
                used.add(cid)
        for key, table in tables.items():
            for name, value in (ds.meta.get(key) or {}).items():
                table.setdefault(name, value)
    out = {k: v for k, v in tables.items() if v}
    if ids:
        out["category_ids"] = ids
    return out


def combine(datasets: Sequence[Dataset], key: Callable[[ImageRecord], str]) -> Combined:
    """The union of ``datasets``; ``key(record)`` is where the target writer would put the record's image, so two
    records with one key would overwrite each other: the later input's is renamed (a copy; inputs are never
    changed)."""
    taken: Dict[str, int] = {}
    records, origin, renamed = [], [], []
    for k, ds in enumerate(datasets):
        mine: Dict[str, int] = {}
        own = {_key(key, rec) for rec in ds.records}  # a new name must not take one this input uses itself
        for rec in ds.records:
            name = _key(key, rec)
            if taken.get(name, k) != k:
                new = copy.copy(rec)
                new.meta = dict(rec.meta)
                base = f"{rec.stem}_{k + 1}"
                for n in range(1, 10 ** 6):
                    new.meta["stem"] = base if n == 1 else f"{base}_{n}"
                    if not {_key(key, new)} & (taken.keys() | own | mine.keys()):
                        break
                renamed.append((k, rec.image_path, new.meta["stem"]))
                rec, name = new, _key(key, new)
            mine.setdefault(name, k)
            records.append(rec)
            origin.append(k)
        for name in mine:
            taken.setdefault(name, k)
    return Combined(records, join_classes(datasets), join_meta(datasets), origin, renamed)


def _key(key: Callable[[ImageRecord], str], rec: ImageRecord) -> str:
    return os.path.splitext(key(rec))[0].lower()  # case-insensitive file systems too
