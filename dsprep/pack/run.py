"""A whole packing run (``voc-to-h5`` / ``voc-to-pickle``): the images prepared on the one executor and written into
one file, or workers writing shard files tied together in a master file.  Commands parse, call these and report."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Dict, List

from ..core import DsprepError, ImageRecord, OutputError
from ..jobs.run import run_jobs
from ..report import Summary
from .prepare import PackOptions


def pack_dataset(out: Path, groups: Dict[str, List[ImageRecord]], classes: List[str], opts: PackOptions,
                 kind: str, summary: Summary, common, overwrite: bool = False) -> Dict[str, int]:
    """Pack ``groups`` (split name -> records) into ``out``: ``kind`` ``"h5"`` or ``"pickle"``.  Local workers
    write fixed-size pixels into the file themselves; a cluster returns them to this process.  Returns the
    writer's counts (``images``, ``objects``, ``masks``: objects stored with a mask)."""
    from ..jobs.pack import pack_one
    from .writers import H5Writer, PickleWriter, annotation_only_results, pack_items
    writer_cls = H5Writer if kind == "h5" else PickleWriter
    with writer_cls(out, groups, classes, opts, overwrite=overwrite, direct=not common.scheduler) as writer:
        if opts.mode == "annotations":
            results = annotation_only_results(groups, opts)
        else:
            results = run_jobs(pack_one, pack_items(writer, groups, opts), summary, common, "packing",
                               name_of=lambda it: it[2][0].image_path)
        # closed (workers stopped) before the writer removes its temporary file on an error
        with contextlib.closing(results):
            for (split, index, _), prepared in results:
                writer.add(split, index, prepared)
    return dict(writer.stats)


def pack_shards(out: Path, groups: Dict[str, List[ImageRecord]], classes: List[str], opts: PackOptions,
                shards: int, summary: Summary, common, overwrite: bool = False) -> None:
    """Workers write ``shards`` complete shard files; this process ties them together in one master file.

    A run that does not complete (an error, Ctrl-C, SIGTERM, a killed worker) leaves no shard file and no
    temporary behind (see :class:`dsprep.pack.shards.ShardRun`), so the same command can simply be run again."""
    from .shards import ShardRun, pack_shard, shard_path, shard_ranges, write_master
    from .writers import has_polygons
    if opts.mode == "annotations" or opts.compression != "none":
        raise DsprepError("--shards works with --size or --encoded, without --compression")
    paths = [shard_path(out, k, shards) for k in range(shards)]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise OutputError(f"{existing[0]}: already exists (use --overwrite to replace it)")
    ranges = {s: shard_ranges(len(recs), shards) for s, recs in groups.items()}
    polygons = has_polygons(groups)  # decided for the whole data set: every shard stores the same arrays
    tasks = [(str(paths[k]), {s: groups[s][slice(*ranges[s][k])] for s in groups}, classes, opts, common.on_error,
              overwrite, polygons) for k in range(shards)]
    with ShardRun(out, paths, overwrite):
        # the executor is shut down (no worker still writing) before ShardRun removes what this run made
        with contextlib.closing(run_jobs(pack_shard, tasks, summary, common, "packing shards",
                                         name_of=lambda t: t[0])) as results:
            for _, res in results:
                if res is None:
                    name, reason = summary.skipped[-1]
                    raise DsprepError(f"shard {name} failed ({reason}): the master file was not written")
                for f, reason in res["skipped"]:
                    summary.skip(f, reason)
        write_master(out, paths, list(groups), classes, opts, overwrite=overwrite)
