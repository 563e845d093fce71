"""What a packed ``.h5`` file may make HDF5 read: its own bytes, and the shard files dsprep wrote beside it.

HDF5 can store a dataset's bytes in other files (external storage), link to objects in other files (external
links) and map a dataset onto datasets of other files (virtual datasets).  A pack from a stranger could use any of
these to make dsprep read ``../private/secret.bin`` as pixels; a virtual dataset whose source file is missing reads
as zeros without a word.  So before anything is read, every object of a pack is checked: no external storage, no
external link, and virtual sources only in the pack itself or in the shard files its ``shards`` attribute names
(plain names beside it), each of which must exist, be a dsprep pack, hold the dataset mapped, and be checked the
same way (a shard may not be virtual itself).
"""
from __future__ import annotations

import json
import os
from typing import List, Optional, Sequence

import h5py

from .core import DatasetError

def _objects(f: h5py.File):
    """``(name, link, object)`` for every link below the root, without following external links (explicit stack:
    a deep hostile hierarchy is no recursion)."""
    stack = [("", f)]
    while stack:
        prefix, group = stack.pop()
        for key in group.keys():
            name = f"{prefix}/{key}" if prefix else key
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                yield name, link, None
                continue
            obj = group.get(key)
            yield name, link, obj
            if isinstance(obj, h5py.Group) and not isinstance(link, h5py.SoftLink):
                stack.append((name, obj))


def check_pack_storage(path: str, f: h5py.File, pack_format: str, shards: Optional[Sequence[str]] = None,
                       _shard: bool = False) -> List[str]:
    """Refuse (``DatasetError`` naming ``path`` and the dataset) a pack whose data lies outside itself and its own
    shards; returns the shard files its virtual datasets read (checked to exist and to be packs: their ``format``
    attribute is ``pack_format``)."""
    folder = os.path.dirname(os.path.abspath(path))
    if shards is None:
        try:
            shards = json.loads(f.attrs.get("shards", "[]"))
        except (TypeError, ValueError) as e:
            raise DatasetError(f"{path}: damaged dsprep packed file (its shards attribute: {e})") from e
        if not (isinstance(shards, list) and all(isinstance(s, str) for s in shards)):
            raise DatasetError(f"{path}: damaged dsprep packed file (its shards attribute is not a list of names)")
    for s in shards:
        if s in ("", ".", "..") or "/" in s or "\\" in s or os.path.basename(s) != s:
            raise DatasetError(f"{path}: refused: shard {s!r} is not a file name beside the pack (a pack reads only "
                               f"its own shard files)")
    missing = [s for s in shards if not os.path.isfile(os.path.join(folder, s))]
    if missing:
        raise DatasetError(f"{path}: shard file(s) missing beside it: {', '.join(missing)}")
    used: List[str] = []
    for name, link, obj in _objects(f):
        if isinstance(link, h5py.ExternalLink):
            raise DatasetError(f"{path}: refused: /{name} is an external link to {link.filename}:{link.path} "
                               f"(a pack reads nothing outside itself and its own shards)")
        if not isinstance(obj, h5py.Dataset):
            continue
        if obj.external:
            files = ", ".join(sorted({str(e[0], "utf-8", "replace") if isinstance(e[0], bytes) else str(e[0])
                                      for e in obj.external}))
            raise DatasetError(f"{path}: refused: /{name} keeps its bytes in external file(s) {files} (a pack "
                               f"reads nothing outside itself and its own shards)")
        if not obj.is_virtual:
            continue
        if _shard:
            raise DatasetError(f"{path}: refused: /{name} of a shard is a virtual dataset (dsprep's shards hold "
                               f"their own bytes)")
        for src in obj.virtual_sources():
            file_name, dset = src.file_name, src.dset_name
            if file_name == ".":
                continue
            if file_name not in shards:
                raise DatasetError(f"{path}: refused: /{name} maps onto {file_name!r}, which is not one of this "
                                   f"pack's shard files (a pack reads nothing outside itself and its own shards)")
            shard = os.path.join(folder, file_name)
            if not os.path.isfile(shard):
                raise DatasetError(f"{path}: shard file missing beside it: {file_name} (/{name} would read as "
                                   f"zeros)")
            if shard not in used:
                used.append(shard)
            try:
                with h5py.File(shard, "r") as s:
                    if s.attrs.get("format") != pack_format:
                        raise DatasetError(f"{shard}: not a dsprep packed file, though {path} reads /{name} "
                                           f"from it")
                    if not isinstance(s.get(dset), h5py.Dataset):
                        raise DatasetError(f"{shard}: has no dataset {dset} (/{name} of {path} would read as "
                                           f"zeros)")
                    check_pack_storage(shard, s, pack_format, shards=[], _shard=True)
            except OSError as e:
                raise DatasetError(f"{shard}: not a readable HDF5 file, though {path} reads /{name} from it "
                                   f"({e})") from e
    return used
