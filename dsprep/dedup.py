"""Duplicate images: exact copies and near copies (resized, recompressed, slightly cropped, brightened), and the
pairs of them that leak across splits.

Two stages, both on small gray images decoded at 1/2, 1/4 or 1/8 of their size (JPEG DCT scaling, see
:func:`dsprep.images.read_reduced_gray`):

1. **candidates**: a 64-bit DCT hash per image (the sign of the 8 x 8 lowest frequencies of a 32 x 32 reduction
   against their median, as pHash does); the Hamming distances of all pairs are computed in blocks with numpy bit
   operations, and every pair within ``hash_distance`` bits is a candidate.  A hash alone joins distinct images
   with a similar layout and misses crops, so it only proposes;
2. **verification**: the normalized cross-correlation of the two 64 x 64 thumbnails (lightly blurred, so a
   recompression or a one-pixel shift does not matter), first at zero shift for all candidates at once, then for
   the rest with a search over shifts of a few pixels and scales of 0 to 12% (what a crop of a few percent does to
   a thumbnail), both ways.  A pair is a duplicate when the best correlation reaches ``threshold``.

Verified pairs are joined into groups (connected components).  Exact copies are the pairs whose files are
identical, or whose decoded pixels are.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .core import Dataset, ImageRecord

THUMB = 64             # thumbnails are THUMB x THUMB (aspect ratio dropped: a crop changes it a little)
HASH_SIDE = 32         # the DCT hash is taken of a HASH_SIDE x HASH_SIDE reduction
MIN_SIDE = 96          # images are decoded reduced, but their short side never below this
DEFAULT_THRESHOLD = 0.90
PREFILTER = 0.5
EXACT_HINT = 0.98  # thumbnails this alike, of images of one size: compare the pixels
DEFAULT_HASH_DISTANCE = 16
_SCALES = (1.0, 0.94, 0.88)  # thumbnail B shrunk by these before B's centre is searched in A (crops of 0-12%)
_MARGIN = 5  # pixels of the template's border left out: shifts of up to 5 px (8% of a thumbnail) are searched


@dataclass(frozen=True)
class Features:
    """What dedup needs of one image: its DCT hash, thumbnail, full size and file size."""

    hash: np.uint64
    thumb: np.ndarray   # (THUMB, THUMB) float32, zero mean, unit norm
    width: int
    height: int
    nbytes: int


def thumbnail(small: np.ndarray) -> np.ndarray:
    """A ``(THUMB, THUMB)`` reduction -> float32, blurred a little, zero mean and unit norm (so a dot product of two
    is their normalized cross-correlation)."""
    import cv2
    t = cv2.GaussianBlur(small.astype(np.float32), (5, 5), 1.0)
    t -= t.mean()
    n = float(np.linalg.norm(t))
    return t / n if n > 0 else t


def dct_hash(small: np.ndarray) -> np.uint64:
    """64 bits: which of the 8 x 8 lowest DCT frequencies of a ``HASH_SIDE``-pixel square reduction of ``small``
    are above their median."""
    import cv2
    if small.shape != (HASH_SIDE, HASH_SIDE):
        small = cv2.resize(small, (HASH_SIDE, HASH_SIDE), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small.astype(np.float32))[:8, :8].reshape(-1)
    part = np.partition(low, (31, 32))
    bits = low > (part[31] + part[32]) / 2
    return np.packbits(bits).view(">u8")[0].astype(np.uint64)


def features_of(gray: np.ndarray, width: int, height: int, nbytes: int) -> Features:
    """:class:`Features` of a gray image (any size; decoded reduced) of full size ``width x height``."""
    import cv2
    small = cv2.resize(gray, (THUMB, THUMB), interpolation=cv2.INTER_AREA)
    return Features(dct_hash(small), thumbnail(small), int(width), int(height), int(nbytes))


def read_features(path: str, orient: bool = True) -> Features:
    """Read one image file (decoded reduced) and compute its :class:`Features`."""
    from .core import ImageError
    from .images import read_reduced_gray
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ImageError(f"{path}: cannot read image ({e.strerror or e})") from e
    gray, info = read_reduced_gray(path, MIN_SIDE, orient=orient, data=data)
    w, h = info.size(orient)
    return features_of(gray, w, h, len(data))


# ---- candidates -----------------------------------------------------------------------------------------------------

def hamming_pairs(hashes: np.ndarray, max_distance: int, block: int = 2048) -> np.ndarray:
    """``(K, 2)`` int64 index pairs ``i < j`` whose 64-bit hashes differ in at most ``max_distance`` bits.

    All pairs are compared, ``block`` rows at a time (memory ``block x N`` bytes)."""
    h = np.asarray(hashes, dtype=np.uint64).reshape(-1)
    out = []
    for start in range(0, len(h), block):
        rows = h[start:start + block]
        d = np.bitwise_count(rows[:, None] ^ h[None, :])
        i, j = np.nonzero(d <= max_distance)
        i = i + start
        keep = i < j
        out.append(np.stack([i[keep], j[keep]], axis=1))
    return np.concatenate(out).astype(np.int64) if out else np.zeros((0, 2), np.int64)


# ---- verification ---------------------------------------------------------------------------------------------------

def zero_shift_similarity(thumbs: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The normalized cross-correlation of each pair's thumbnails as they are (``(K,)`` float32), all at once."""
    if len(pairs) == 0:
        return np.zeros(0, np.float32)
    flat = thumbs.reshape(len(thumbs), -1)
    return np.einsum("ij,ij->i", flat[pairs[:, 0]], flat[pairs[:, 1]])


def shifted_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The best normalized cross-correlation of ``b``'s centre (shrunk by each of ``_SCALES``) found anywhere
    within a few pixels in ``a``, and the same with ``a`` and ``b`` swapped: what survives a crop of a few percent
    of either image."""
    import cv2
    best = -1.0
    for x, y in ((a, b), (b, a)):
        for s in _SCALES:
            side = int(round(THUMB * s))
            t = y if side == THUMB else cv2.resize(y, (side, side), interpolation=cv2.INTER_AREA)
            t = t[_MARGIN:side - _MARGIN, _MARGIN:side - _MARGIN]
            r = cv2.matchTemplate(x, t, cv2.TM_CCOEFF_NORMED)
            best = max(best, float(r.max()))
    return best


def verify(thumbs: np.ndarray, pairs: np.ndarray, threshold: float) -> Tuple[np.ndarray, np.ndarray]:
    """The candidate ``pairs`` that are duplicates, and their similarity.  Pairs whose thumbnails as they are
    correlate below ``PREFILTER`` are not searched further (a crop of a few percent keeps them above 0.8)."""
    sim = zero_shift_similarity(thumbs, pairs).astype(np.float64)
    for k in np.flatnonzero((sim < threshold) & (sim >= PREFILTER)):
        i, j = pairs[k]
        sim[k] = max(sim[k], shifted_similarity(thumbs[i], thumbs[j]))
    ok = sim >= threshold
    return pairs[ok], sim[ok]


def components(n: int, pairs: np.ndarray) -> List[List[int]]:
    """Connected components of 2 or more of the graph on ``n`` nodes with edges ``pairs``, each sorted, in order
    of their first node."""
    parent = np.arange(n)

    def root(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in pairs.tolist():
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    groups: Dict[int, List[int]] = {}
    for i in np.unique(pairs).tolist():
        groups.setdefault(root(i), []).append(i)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])


# ---- the whole search -----------------------------------------------------------------------------------------------

@dataclass
class Group:
    """One set of duplicates (indices into ``Dataset.records``)."""

    members: List[int]
    keep: int                        # the one ``dedup --out`` keeps: the largest, then the first by name
    exact: bool                      # every member has the same pixels
    leaks: List[Tuple[int, int]] = field(default_factory=list)  # member pairs in different splits


@dataclass
class DedupResult:
    groups: List[Group]
    pairs: np.ndarray          # (K, 2) verified pairs
    similarity: np.ndarray     # (K,)
    candidates: int            # pairs the hash proposed
    unread: List[int]          # records whose image could not be read (left out)

    @property
    def leaks(self) -> List[Tuple[int, int]]:
        return [p for g in self.groups for p in g.leaks]


def _serial(fn, items, desc):
    for item in items:
        yield item, fn(item)


def feature_job(item) -> dict:
    """``(path, orient)`` -> ``{"features": Features}`` (the per-image work unit, run in workers)."""
    path, orient = item
    return {"features": read_features(path, orient)}


def collect_features(records: Sequence[ImageRecord], run: Optional[Callable] = None) -> List[Optional[Features]]:
    """The :class:`Features` of every record's image (``None`` where it could not be read and ``run`` skipped it);
    each file is read once, however many records name it.  ``run(fn, items, desc)`` yields ``(item, result)``
    (a command's executor, see ``commands.common.run_jobs``); default: in this process, errors raised."""
    run = run or _serial
    paths: Dict[Tuple[str, bool], int] = {}
    for rec in records:
        paths.setdefault((rec.image_path, bool(rec.meta.get("orient", True))), len(paths))
    got: Dict[Tuple[str, bool], Features] = {}
    for item, result in run(feature_job, list(paths), "hashing"):
        if result is not None:
            got[item] = result["features"]
    return [got.get((rec.image_path, bool(rec.meta.get("orient", True)))) for rec in records]


def find_duplicates(records: Sequence[ImageRecord], feats: Sequence[Optional[Features]],
                    threshold: float = DEFAULT_THRESHOLD, hash_distance: int = DEFAULT_HASH_DISTANCE,
                    same_image: Optional[Callable[[int, int], bool]] = None,
                    splits: Optional[Sequence[frozenset]] = None) -> DedupResult:
    """Group the records whose images are copies of each other, from their :class:`Features` (``None``: left out).

    ``splits``: the splits each record is in (default: ``{rec.split}``); two members of a group leak when their
    sets differ (an image in VOC's ``train`` and ``trainval`` and its copy in ``val`` and ``trainval`` leak).

    ``same_image(i, j)``: whether two records' images hold the same pixels, asked only of verified pairs of the
    same size whose thumbnails correlate above ``EXACT_HINT`` (default :func:`same_pixels`: the files compared, then decoded)."""
    have = np.array([f is not None for f in feats], bool)
    idx = np.flatnonzero(have)
    unread = np.flatnonzero(~have).tolist()
    if len(idx) < 2:
        return DedupResult([], np.zeros((0, 2), np.int64), np.zeros(0), 0, unread)
    fs = [feats[i] for i in idx]
    hashes = np.array([f.hash for f in fs], np.uint64)
    thumbs = np.stack([f.thumb for f in fs])
    cand = hamming_pairs(hashes, hash_distance)
    pairs, sim = verify(thumbs, cand, threshold)
    same_image = same_image or same_pixels(records)
    if splits is None:
        splits = [frozenset([r.split]) if r.split else frozenset() for r in records]

    def exact(a: int, b: int) -> bool:
        fa, fb = fs[a], fs[b]
        # the same pixels decoded reduced by two decoders (JPEG's DCT scaling, a PNG's resize) differ a little
        if (fa.width, fa.height) != (fb.width, fb.height) or float(np.vdot(fa.thumb, fb.thumb)) < EXACT_HINT:
            return False
        return bool(same_image(int(idx[a]), int(idx[b])))

    groups = []
    for g in components(len(fs), pairs):
        members = [int(idx[k]) for k in g]
        order = sorted(g, key=lambda k: (-fs[k].width * fs[k].height, records[idx[k]].image_path))
        is_exact = all(exact(order[0], k) for k in order[1:])
        leaks = [(a, b) for n, a in enumerate(members) for b in members[n + 1:]
                 if splits[a] and splits[b] and splits[a] != splits[b]]
        groups.append(Group(members, int(idx[order[0]]), is_exact, leaks))
    return DedupResult(groups, idx[pairs] if len(pairs) else pairs, sim, len(cand), unread)


def same_pixels(records: Sequence[ImageRecord]) -> Callable[[int, int], bool]:
    """``same_image`` for :func:`find_duplicates`: the same file or identical bytes, else both images decoded in
    full and compared."""
    from .images import read_image

    def equal(i: int, j: int) -> bool:
        a, b = records[i], records[j]
        if a.image_path == b.image_path:
            return True
        with open(a.image_path, "rb") as fa, open(b.image_path, "rb") as fb:
            if fa.read() == fb.read():
                return True
        pa = read_image(a.image_path, "unchanged", orient=a.meta.get("orient", True))
        pb = read_image(b.image_path, "unchanged", orient=b.meta.get("orient", True))
        return pa.shape == pb.shape and pa.dtype == pb.dtype and bool(np.array_equal(pa, pb))
    return equal


def find_duplicate_groups(ds: Dataset, threshold: float = DEFAULT_THRESHOLD,
                          hash_distance: int = DEFAULT_HASH_DISTANCE, run: Optional[Callable] = None
                          ) -> List[List[int]]:
    """Groups (2 or more) of indices into ``ds.records`` whose images are exact or near copies of each other, each
    sorted, in order of their first index.  A record whose image cannot be read raises its
    :class:`~dsprep.core.ImageError` (or, with ``run`` applying ``--on-error skip``, is in no group).

    ``threshold``: the normalized cross-correlation of the thumbnails two images need to be joined (0-1);
    ``hash_distance``: how many of the 64 hash bits two images may differ in to be compared at all;
    ``run(fn, items, desc)``: the caller's executor (``commands.common.run_jobs``); default: this process."""
    feats = collect_features(ds.records, run)
    return [g.members for g in find_duplicates(ds.records, feats, threshold, hash_distance).groups]
