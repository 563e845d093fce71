"""Class mapping: rename or merge classes (``--map OLD:NEW``) and drop the objects of a class (``--drop CLASS``).

Pure logic over records and class lists; the options are parsed in :mod:`dsprep.commands.common`.

* a :class:`ClassMap` is built from the option values (:func:`parse_map`, :func:`parse_drop`) and checked against
  the class list of the data set it is applied to (:meth:`ClassMap.check`: a name the data set lacks is an error);
* renames are applied all at once, never chained (``a:b,b:c`` renames ``a`` to ``b`` and ``b`` to ``c``); several
  old names mapped to one new name merge those classes;
* ``--drop`` names classes of the data set as read (before renaming); a class both mapped and dropped is an error.

The class list after mapping keeps the order of the list before it: each class takes the place of the first
class mapped onto it (so YOLO indices stay where they were for every class that was not touched).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core import ImageRecord


@dataclass(frozen=True)
class ClassMap:
    """``rename``: old name -> new name; ``drop``: names whose objects are removed."""

    rename: Dict[str, str] = field(default_factory=dict)
    drop: Tuple[str, ...] = ()

    def __post_init__(self):
        both = [c for c in self.drop if c in self.rename]
        if both:
            raise ValueError(f"{', '.join(both)} is both mapped (--map) and dropped (--drop)")
        for old, new in self.rename.items():
            if not str(old) or not str(new):
                raise ValueError(f"'{old}:{new}': a class name cannot be empty (to remove a class, use --drop)")

    def __bool__(self) -> bool:
        return bool(self.rename or self.drop)

    def check(self, classes: Sequence[str]) -> None:
        """``ValueError`` naming every class of the map the data set lacks."""
        known = set(classes)
        for option, names in (("--map", list(self.rename)), ("--drop", list(self.drop))):
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ValueError(f"{option}: no class {', '.join(repr(n) for n in unknown)} in the data set "
                                 f"(classes: {', '.join(classes)})")

    def classes(self, classes: Sequence[str]) -> List[str]:
        """The class list after mapping (see the module docstring for its order)."""
        dropped = set(self.drop)
        out: List[str] = []
        for c in classes:
            if c in dropped:
                continue
            new = self.rename.get(c, c)
            if new not in out:
                out.append(new)
        return out

    def apply(self, rec: ImageRecord) -> Tuple[ImageRecord, Dict[str, int]]:
        """``(record, counts)``: a new record with its objects renamed and the dropped ones removed (``rec`` is
        left as it was), and how many objects were renamed (``class_renamed``) and dropped (``class_dropped``)."""
        if not len(rec) or not self:
            return rec, {}
        # one look-up per distinct class of the image, then whole-array indexing
        uniq, inv = np.unique(np.asarray(rec.names, dtype=str), return_inverse=True)
        inv = inv.reshape(-1)
        dropped = np.isin(uniq, list(self.drop))[inv]
        moved = np.isin(uniq, list(self.rename))[inv]
        counts = {}
        if not dropped.any() and not moved.any():
            return rec, counts
        out = rec.select(~dropped) if dropped.any() else rec.select(np.arange(len(rec)))
        if moved.any():
            new_names = np.array([self.rename.get(u, u) for u in uniq.tolist()], dtype=object)
            out.names = new_names[inv[~dropped]].tolist()
            counts["class_renamed"] = int(moved.sum())
        if dropped.any():
            counts["class_dropped"] = int(dropped.sum())
        return out, counts

    def meta(self, meta: dict) -> dict:
        """A data set's per-class facts (COCO category ids, category entries, supercategories: dicts keyed by class
        name) carried to the new names: a renamed class keeps its id unless another class already holds the new
        name; a merged class takes the facts of the first of its classes."""
        out = dict(meta)
        for key in ("category_ids", "coco_categories", "supercategories"):
            table = meta.get(key)
            if not isinstance(table, dict):
                continue
            new: dict = {}
            for name, value in table.items():
                if name in self.drop:
                    continue
                target = self.rename.get(name, name)
                if target not in new and (target == name or target not in table or target in self.rename):
                    new[target] = value
            out[key] = new
        return out


def parse_map(value: Optional[str]) -> Dict[str, str]:
    """``--map``: ``OLD:NEW[,OLD:NEW...]`` or a file holding one ``OLD:NEW`` a line (blank lines and ``#``
    comments skipped).  A name is split from its new name at the last ``:`` (so ``a:b:c`` renames ``a:b``).
    ``ValueError`` for a malformed pair, an empty name, or an old name given twice."""
    if value is None:
        return {}
    if os.path.isfile(value):
        try:
            with open(value, encoding="utf-8-sig") as f:
                pairs = [(f"{value}:{k}", line.strip()) for k, line in enumerate(f, 1)
                         if line.strip() and not line.lstrip().startswith("#")]
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read the class map file {value} ({e})") from e
    else:
        pairs = [(f"'{value}'", p.strip()) for p in value.split(",")]
    out: Dict[str, str] = {}
    for where, pair in pairs:
        old, sep, new = pair.rpartition(":")
        old, new = old.strip(), new.strip()
        if not sep or not old or not new:
            raise ValueError(f"{where}: '{pair}' is not OLD:NEW (to remove a class, use --drop)")
        if old in out:
            raise ValueError(f"{where}: class '{old}' is mapped twice")
        out[old] = new
    if not out:
        raise ValueError(f"'{value}' maps no class")
    return out


def parse_drop(value: Optional[str]) -> Tuple[str, ...]:
    """``--drop``: ``CLASS[,CLASS...]`` (a name given twice counts once)."""
    if value is None:
        return ()
    names = [v.strip() for v in value.split(",")]
    if "" in names:
        raise ValueError(f"'{value}' has an empty name (two commas in a row, or one at an end)")
    return tuple(dict.fromkeys(names))


def apply_to_records(records: Sequence[ImageRecord], cmap: ClassMap) -> Tuple[List[ImageRecord], Dict[str, int]]:
    """Every record mapped (:meth:`ClassMap.apply`), with the counts summed."""
    out, total = [], {}
    for rec in records:
        new, counts = cmap.apply(rec)
        out.append(new)
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v
    return out, total
