"""Per-chunk work of ``merge-dota``: polygon NMS over the detections of some images (of one or several classes)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np


@dataclass(frozen=True)
class MergeChunk:
    """Detections of a few (class file, image) groups: per group its class file, image stem, indices into the class
    file's detections, quads ``(k, 4, 2)`` and scores ``(k,)``."""

    groups: Tuple[Tuple[str, str, np.ndarray, np.ndarray, np.ndarray], ...]
    thresh: float
    iou: str


def merge_chunk(chunk: MergeChunk) -> dict:
    """``{"kept_list": [(class file, stem, kept indices in score order)]}``: one NMS call for all the chunk's groups
    (detections of different groups never suppress each other)."""
    from ..ops.merge import nms
    if not chunk.groups:
        return {"kept_list": []}
    polys = np.concatenate([g[3] for g in chunk.groups])
    scores = np.concatenate([g[4] for g in chunk.groups])
    sizes = [len(g[2]) for g in chunk.groups]
    groups = np.repeat(np.arange(len(sizes)), sizes)
    keep = nms(polys, scores, chunk.thresh, chunk.iou, groups)  # in score order
    starts = np.concatenate([[0], np.cumsum(sizes)])
    g = groups[keep]
    order = np.argsort(g, kind="stable")  # by group, score order kept within each
    bounds = np.searchsorted(g[order], np.arange(len(sizes) + 1))
    kept: List[Tuple[str, str, np.ndarray]] = []
    for k, (source, stem, idx, _, _) in enumerate(chunk.groups):
        mine = keep[order[bounds[k]:bounds[k + 1]]]
        kept.append((source, stem, idx[mine - starts[k]]))
    return {"kept_list": kept}


def plan_chunks(parsed: dict, thresh: float, iou: str, target: int) -> List[MergeChunk]:
    """The (class file, image) groups of every parsed class file, in chunks of about ``target`` detections (a group
    is never split)."""
    from ..ops.merge import group_by_image
    out, cur, size = [], [], 0
    for source, dets in parsed.items():
        for stem, idx in group_by_image(dets.stems).items():
            cur.append((str(source), stem, idx, dets.polys[idx], dets.scores[idx]))
            size += len(idx)
            if size >= target:
                out.append(MergeChunk(tuple(cur), thresh, iou))
                cur, size = [], 0
    if cur:
        out.append(MergeChunk(tuple(cur), thresh, iou))
    return out


def read_class_file(path) -> tuple:
    """``(path, Task1Detections, None)`` or ``(path, None, error)`` for one task-1 file."""
    from ..core import DatasetError, DsprepError
    from ..ops.merge import parse_task1
    try:
        with open(path, encoding="utf-8") as f:
            return path, parse_task1(f.read(), str(path)), None
    except (DsprepError, OSError, UnicodeDecodeError) as e:
        return path, None, e if isinstance(e, DsprepError) else DatasetError(f"{path}: cannot read ({e})")


def write_class_file(args) -> int:
    """Write one merged task-1 file; returns its line count."""
    from ..ops.merge import format_task1
    from ..outputs import atomic_write_text
    target, dets, kept = args
    atomic_write_text(target, format_task1(dets, dict(sorted(kept.items()))))
    return sum(len(v) for v in kept.values())


def forked(fn, items: list, processes: int, weight=lambda item: 1) -> list:
    """``[fn(item) for item in items]`` shared out over ``processes`` forked processes
    (:func:`dsprep.parallel.fork_map`) in contiguous parts of about equal ``weight``: for local work too short to
    pay a worker pool's start (0.3 s), such as a whole merge of 50,000 detections."""
    from ..parallel import fork_map
    if processes <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    w = np.cumsum([max(1, weight(item)) for item in items])
    cuts = np.searchsorted(w, w[-1] * np.arange(1, processes) / processes, side="left") + 1
    bounds = [0] + sorted(set(int(min(c, len(items))) for c in cuts)) + [len(items)]
    parts = [items[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]
    return [r for part in fork_map(lambda part: [fn(item) for item in part], parts) for r in part]
