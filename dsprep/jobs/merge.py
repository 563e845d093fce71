"""Per-chunk work of ``merge-dota``: polygon NMS over the detections of some images of one class."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np


@dataclass(frozen=True)
class MergeChunk:
    """Detections of one class for a few images: per image its indices into the class file's detections, its quads
    ``(k, 4, 2)`` and scores ``(k,)``."""

    source: str
    images: Tuple[Tuple[str, np.ndarray, np.ndarray, np.ndarray], ...]
    thresh: float
    iou: str


def merge_chunk(chunk: MergeChunk) -> dict:
    """``{"kept_list": [(stem, kept indices in score order)], "kept": n}``: one NMS call for all the chunk's images
    (their detections never suppress each other)."""
    from ..merge import nms
    if not chunk.images:
        return {"kept_list": [], "kept": 0}
    polys = np.concatenate([p for _, _, p, _ in chunk.images])
    scores = np.concatenate([s for _, _, _, s in chunk.images])
    sizes = [len(i) for _, i, _, _ in chunk.images]
    groups = np.repeat(np.arange(len(sizes)), sizes)
    keep = nms(polys, scores, chunk.thresh, chunk.iou, groups)  # in score order
    starts = np.concatenate([[0], np.cumsum(sizes)])
    kept: List[Tuple[str, np.ndarray]] = []
    g = groups[keep]
    for k, (stem, idx, _, _) in enumerate(chunk.images):
        kept.append((stem, idx[keep[g == k] - starts[k]]))
    return {"kept_list": kept, "kept": int(len(keep))}


def chunks_of(source: str, dets, thresh: float, iou: str, target: int) -> List[MergeChunk]:
    """The images of one class file in chunks of about ``target`` detections (an image is never split)."""
    from ..merge import group_by_image
    out, cur, size = [], [], 0
    for stem, idx in group_by_image(dets.stems).items():
        cur.append((stem, idx, dets.polys[idx], dets.scores[idx]))
        size += len(idx)
        if size >= target:
            out.append(MergeChunk(source, tuple(cur), thresh, iou))
            cur, size = [], 0
    if cur:
        out.append(MergeChunk(source, tuple(cur), thresh, iou))
    return out
