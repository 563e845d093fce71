"""Sharded packing: workers write whole shard files, this process ties them together in one master file (HDF5
virtual datasets); a run that does not complete leaves nothing behind (:class:`ShardRun`)."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

from ..core import DsprepError
from ..images import LazyModule
from ..outputs import TemporaryPath, partial_files
from .prepare import PackOptions, prepare_image
from .reader import FORMAT, VERSION
from .writers import H5Writer, mask_arrays

h5py = LazyModule("h5py", globals())

def shard_path(out: Path, k: int, total: int) -> Path:
    out = Path(out)
    return out.with_name(f"{out.stem}.shard-{k:05d}-of-{total:05d}{out.suffix}")


def shard_ranges(n: int, shards: int) -> List[Tuple[int, int]]:
    edges = np.linspace(0, n, shards + 1).astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


class ShardRun:
    """One sharded packing run: if it does not complete (any exception: an error, Ctrl-C, SIGTERM turned into an
    exception, a killed worker), everything it wrote is removed on the way out:

    * the shard files at ``shards`` (this run's names), except files that were there before the run and that
      ``overwrite`` did not allow it to replace;
    * the ``.partial`` temporaries of the shards and of ``out`` (the master) that appeared during the run (a
      worker killed mid-write leaves its temporary behind); older ones are not this run's and are kept.

    Leave the executor (stop every worker) before leaving this context, or a worker could still rename a shard
    into place afterwards.
    """

    def __init__(self, out: Path, shards: Sequence[Path], overwrite: bool = False):
        self.out, self.shards, self.overwrite = Path(out), [Path(p) for p in shards], overwrite

    def __enter__(self) -> "ShardRun":
        self._existed = {p for p in self.shards if p.exists()}
        self._partials = set(partial_files([self.out] + self.shards))
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            return False
        doomed = [p for p in self.shards if self.overwrite or p not in self._existed]
        doomed += [p for p in partial_files([self.out] + self.shards) if p not in self._partials]
        for p in doomed:
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
            except OSError as e:  # keep the run's own error; say what is left
                print(f"warning: could not remove {p} ({e.strerror or e})", file=sys.stderr)
        return False


def pack_shard(args) -> dict:
    """Worker task: write shard ``k`` (its slice of every split) as a complete packed file, renamed into place when
    complete.  Images that cannot be read fail the shard, or are left out with ``on_error == "skip"``."""
    path, splits, classes, opts, on_error, overwrite, polygons = args
    skipped = []
    with H5Writer(Path(path), splits, classes, opts, overwrite=overwrite, direct=True, polygons=polygons) as w:
        for split, recs in splits.items():
            for i, rec in enumerate(recs):
                try:
                    prepared = prepare_image((rec, opts, w.slot(split, i)))
                except DsprepError as e:
                    if on_error != "skip":
                        raise
                    skipped.append((rec.image_path, str(e)))
                    prepared = None
                w.add(split, i, prepared)
    return {"images": w.stats["images"], "objects": w.stats["objects"], "masks": w.stats["masks"],
            "skipped": skipped}


def _offsets_end(offsets: List[np.ndarray]) -> int:
    """The end of the last non-empty block of offsets so far."""
    return int(next(o[-1] for o in reversed(offsets) if len(o)))


def write_master(out: Path, shards: Sequence[Path], split_names: Sequence[str], classes: Sequence[str],
                 opts: PackOptions, overwrite: bool = False) -> None:
    """One file that reads like any packed file: annotations copied (offsets shifted), pixels as HDF5 virtual
    datasets over the shards (referenced by file name, relative to the master's folder)."""
    with TemporaryPath(out, overwrite) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["version"] = VERSION
        f.attrs["classes"] = json.dumps(list(classes), ensure_ascii=False)
        f.attrs["options"] = json.dumps(asdict(opts), ensure_ascii=False)
        f.attrs["shards"] = json.dumps([p.name for p in shards])
        any_masks = False
        for p in shards:
            with h5py.File(p, "r") as s:
                any_masks |= any("mask_offsets" in s[split] for split in split_names)
        for split in split_names:
            parts = []
            for p in shards:
                with h5py.File(p, "r") as s:
                    g = s[split]
                    parts.append({k: g[k][()] for k in g.keys() if k not in ("images", "encoded")}
                                 | {"shape": g["images" if opts.mode == "fixed" else "encoded"].shape
                                    if opts.mode != "annotations" else None})
            g = f.create_group(split)
            g.attrs["mode"] = opts.mode
            if opts.mode == "fixed":
                g.attrs["size"] = opts.size
            counts = [len(pt["box_offsets"]) - 1 for pt in parts]
            g.attrs["count"] = sum(counts)
            # each shard's offsets shifted by the totals before it (a shard may hold no image of a split)
            box_off, enc_off = [np.zeros(1, np.int64)], [np.zeros(1, np.int64)]
            for pt in parts:
                box_off.append(pt["box_offsets"][1:] + _offsets_end(box_off))
                if "encoded_offsets" in pt:
                    enc_off.append(pt["encoded_offsets"][1:] + _offsets_end(enc_off))
            if any_masks:  # a shard none of whose objects has a mask stored none: its objects have no runs
                mb, mr, mc = [], [], []
                for pt in parts:
                    m = len(pt["boxes"])
                    has = "mask_offsets" in pt
                    mb.append(pt["mask_boxes"] if has else np.zeros((m, 4), np.int32))
                    mr.append(pt["mask_runs"] if has else np.zeros(0, np.uint32))
                    mc.append(np.diff(pt["mask_offsets"]) if has else np.zeros(m, np.int64))
                for name, arr in mask_arrays(mb, mr, mc).items():
                    g.create_dataset(name, data=arr)
            names = ("boxes", "labels", "difficult", "orig_size", "transform")
            for name in names + tuple(n for n in ("polygons", "orientation") if all(n in pt for pt in parts)):
                g.create_dataset(name, data=np.concatenate([pt[name] for pt in parts]))
            g.create_dataset("box_offsets", data=np.concatenate(box_off))
            text = h5py.string_dtype("utf-8")
            for name in ("filenames", "paths"):
                g.create_dataset(name, data=np.concatenate([pt[name] for pt in parts]).astype(object), dtype=text)
            if any("image_splits" in pt for pt in parts):  # (a shard whose images have no split has none)
                own = [pt["image_splits"] if "image_splits" in pt else np.array([b""] * n, object)
                       for pt, n in zip(parts, counts)]
                g.create_dataset("image_splits", data=np.concatenate(own).astype(object), dtype=text)
            if opts.mode == "encoded":
                g.create_dataset("encoded_offsets", data=np.concatenate(enc_off))
            if opts.mode in ("fixed", "encoded"):
                name = "images" if opts.mode == "fixed" else "encoded"
                total = sum(pt["shape"][0] for pt in parts)
                layout = h5py.VirtualLayout(shape=(total,) + tuple(parts[0]["shape"][1:]), dtype=np.uint8)
                pos = 0
                for p, pt in zip(shards, parts):
                    n = pt["shape"][0]
                    if n:
                        layout[pos:pos + n] = h5py.VirtualSource(p.name, f"{split}/{name}", shape=pt["shape"])
                    pos += n
                g.create_virtual_dataset(name, layout)
