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
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .core import Dataset, ImageRecord

THUMB = 64             # thumbnails are THUMB x THUMB (aspect ratio dropped: a crop changes it a little)
HASH_SIDE = 32         # the DCT hash is taken of a HASH_SIDE x HASH_SIDE reduction
MIN_SIDE = 96          # images are decoded reduced, but their short side never below this
DEFAULT_THRESHOLD = 0.90
PREFILTER = 0.6
COARSE_SLACK = 0.08  # the 32 x 32 search must come this close to the threshold for the 64 x 64 one to run
EXACT_HINT = 0.98  # thumbnails this alike, of images of one size: compare the pixels
DEFAULT_HASH_DISTANCE = 20
_SCALES = (1.0, 0.94, 0.88)  # thumbnail B shrunk by these before B's centre is searched in A (crops of 0-12%)
_MARGIN = 5  # pixels of the template's border left out: shifts of up to 5 px (8% of a thumbnail) are searched


@dataclass(frozen=True)
class Features:
    """What dedup needs of one image (computed in a worker; the rest is done for all images at once)."""

    small: np.ndarray   # (THUMB, THUMB) uint8: the image reduced (aspect ratio dropped)
    width: int          # full size, as oriented
    height: int
    nbytes: int
    kind: str = ""      # the file's format ("jpeg", "png" ...)


def features_of(gray: np.ndarray, width: int, height: int, nbytes: int, kind: str = "") -> Features:
    """:class:`Features` of a gray image (any size; decoded reduced) of full size ``width x height``."""
    import cv2
    small = cv2.resize(gray, (THUMB, THUMB), interpolation=cv2.INTER_AREA)
    return Features(small, int(width), int(height), int(nbytes), kind)


def _smooth(x: np.ndarray) -> np.ndarray:
    """A 5-tap binomial blur (1 4 6 4 1) / 16 of every ``(H, W)`` image of ``(N, H, W)``, edges repeated, as
    float32: one OpenCV call over the images stacked into one tall image, each padded with 2 rows of its own edge
    above and below so that none blurs into the next."""
    import cv2
    n, h, w = x.shape
    if n == 0:
        return np.zeros(x.shape, np.float32)
    tall = np.pad(x, ((0, 0), (2, 2), (0, 0)), mode="edge").reshape(n * (h + 4), w).astype(np.float32)
    k = np.array([1, 4, 6, 4, 1], np.float32) / 16
    out = cv2.sepFilter2D(tall, cv2.CV_32F, k, k, borderType=cv2.BORDER_REPLICATE)
    return out.reshape(n, h + 4, w)[:, 2:h + 2]


def thumbnails(small: np.ndarray) -> np.ndarray:
    """``(N, THUMB, THUMB)`` uint8 reductions -> float32, blurred a little (a recompression or a one-pixel shift
    does not matter), each with zero mean and unit norm (so a dot product of two is their normalized
    cross-correlation)."""
    t = _smooth(small.astype(np.float32))
    t -= t.mean(axis=(1, 2), keepdims=True)
    norm = np.sqrt((t * t).sum(axis=(1, 2), keepdims=True))
    return t / np.where(norm > 0, norm, 1)


_DCT = None


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix: ``D @ x`` is the DCT of ``x`` (what ``cv2.dct`` computes)."""
    k, i = np.mgrid[0:n, 0:n]
    d = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d


def dct_hashes(small: np.ndarray) -> np.ndarray:
    """``(N,)`` uint64: for each ``(THUMB, THUMB)`` reduction, which of the 8 x 8 lowest DCT frequencies of its
    ``HASH_SIDE``-pixel square reduction are above their median (pHash's recipe), for all images at once."""
    global _DCT
    f = THUMB // HASH_SIDE
    x = small.astype(np.float64).reshape(len(small), HASH_SIDE, f, HASH_SIDE, f).mean(axis=(2, 4))
    if _DCT is None:
        _DCT = _dct_matrix(HASH_SIDE)[:8]
    low = (_DCT @ x @ _DCT.T).reshape(len(small), 64)
    bits = low > np.median(low, axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8").reshape(-1).astype(np.uint64)


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
    return features_of(gray, w, h, len(data), info.kind)


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
    out = np.zeros(len(pairs), np.float32)
    flat = thumbs.reshape(len(thumbs), -1)
    for s in range(0, len(pairs), 4096):  # in blocks: each gathers 2 x 4096 thumbnails (128 MB)
        p = pairs[s:s + 4096]
        out[s:s + 4096] = np.einsum("ij,ij->i", flat[p[:, 0]], flat[p[:, 1]])
    return out


def shifted_similarity(a: np.ndarray, b: np.ndarray, margin: int = _MARGIN) -> float:
    """The best normalized cross-correlation of ``b``'s centre (shrunk by each of ``_SCALES``) found anywhere
    within ``margin`` pixels in ``a``, and the same with ``a`` and ``b`` swapped: what survives a crop of a few
    percent of either image.  ``a``, ``b``: square float32 thumbnails of one size."""
    import cv2
    side0 = a.shape[0]
    best = -1.0
    for x, y in ((a, b), (b, a)):
        for s in _SCALES:
            side = int(round(side0 * s))
            t = y if side == side0 else cv2.resize(y, (side, side), interpolation=cv2.INTER_AREA)
            t = t[margin:side - margin, margin:side - margin]
            r = cv2.matchTemplate(x, t, cv2.TM_CCOEFF_NORMED)
            best = max(best, float(r.max()))
    return best


def reduce_thumbs(thumbs: np.ndarray, f: int) -> np.ndarray:
    """Thumbnails ``f`` times smaller (means of ``f x f`` blocks), again of zero mean and unit norm."""
    n, side = thumbs.shape[0], thumbs.shape[1] // f
    t = thumbs.reshape(n, side, f, side, f).mean(axis=(2, 4))
    t -= t.mean(axis=(1, 2), keepdims=True)
    norm = np.sqrt((t * t).sum(axis=(1, 2), keepdims=True))
    return (t / np.where(norm > 0, norm, 1)).astype(np.float32)


def verify(thumbs: np.ndarray, pairs: np.ndarray, threshold: float) -> Tuple[np.ndarray, np.ndarray]:
    """The candidate ``pairs`` that are duplicates, and their similarity, coarse to fine:

    1. the correlation of 16 x 16 reductions as they are, for all candidates at once: below ``PREFILTER`` a pair
       is no copy (a crop of 7% of a photograph keeps it above 0.6);
    2. the correlation of the 64 x 64 thumbnails as they are, for the rest at once: at ``threshold`` or more
       a pair is a copy;
    3. for the rest, the search over shifts and scales (:func:`shifted_similarity`) on 32 x 32 reductions, and
       only where that comes within ``COARSE_SLACK`` of ``threshold``, on the 64 x 64 thumbnails."""
    sim = np.full(len(pairs), -1.0)
    if len(pairs) == 0:
        return pairs, sim
    live = np.flatnonzero(zero_shift_similarity(reduce_thumbs(thumbs, 4), pairs) >= PREFILTER)
    sim[live] = zero_shift_similarity(thumbs, pairs[live])
    coarse = reduce_thumbs(thumbs, 2)
    for k in live[sim[live] < threshold]:
        i, j = pairs[k]
        if shifted_similarity(coarse[i], coarse[j], margin=_MARGIN // 2) >= threshold - COARSE_SLACK:
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

    ``splits``: the splits each record is in (default: :func:`dsprep.splits.splits_of`); two members of a group
    leak when their sets differ (an image in VOC's ``train`` and ``trainval`` and its copy in ``val`` and ``trainval`` leak).

    ``same_image(i, j)``: whether two records' images hold the same pixels, asked only of verified pairs of the
    same size whose reduced images are identical (or, for files of two formats, correlate above ``EXACT_HINT``) (default :func:`same_pixels`: the files compared, then decoded)."""
    have = np.array([f is not None for f in feats], bool)
    idx = np.flatnonzero(have)
    unread = np.flatnonzero(~have).tolist()
    if len(idx) < 2:
        return DedupResult([], np.zeros((0, 2), np.int64), np.zeros(0), 0, unread)
    fs = [feats[i] for i in idx]
    small = np.stack([f.small for f in fs])
    hashes = dct_hashes(small)
    thumbs = thumbnails(small)
    means = small.reshape(len(small), -1).mean(axis=1)
    cand = hamming_pairs(hashes, hash_distance)
    pairs, sim = verify(thumbs, cand, threshold)
    same_image = same_image or same_pixels(records)
    if splits is None:
        from .splits import splits_of
        splits = [frozenset(splits_of(r)) for r in records]

    def exact(a: int, b: int) -> bool:
        fa, fb = fs[a], fs[b]
        if (fa.width, fa.height) != (fb.width, fb.height):
            return False
        if fa.kind == fb.kind:  # one decoder: the same pixels give the very same reduced image
            if not np.array_equal(fa.small, fb.small):
                return False
        # two decoders (JPEG's DCT scaling, a PNG's resize) reduce the same pixels a little differently
        elif float(np.vdot(thumbs[a], thumbs[b])) < EXACT_HINT or abs(means[a] - means[b]) > 2:
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
