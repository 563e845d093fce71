"""Many instance masks at once, as runs: COCO's RLE decoded for a whole results file in a few numpy calls, polygons
rasterized exactly as pycocotools rasterizes them, and the pixel overlap of any pairs of masks without drawing them.

A :class:`MaskSet` holds N masks as their *on-intervals*: the half-open ranges ``[start, end)`` of flat pixel
indices (column-major, COCO's order: index = x * height + y) where the mask is set, concatenated over masks, with
``first[m]:first[m + 1]`` the intervals of mask m.  Everything the COCO ``segm`` evaluation needs follows from them
without decoding a bitmap: a mask's area (the intervals' lengths), its box, and the intersection of two masks.

The intersection of masks A and B is the sum, over A's intervals ``[s, e)``, of ``F_B(e) - F_B(s)``, where
``F_B(x)`` counts B's pixels below flat index x (a piecewise-linear function of x through B's interval ends).
Laying every mask out on one line (mask m shifted by the sum of the earlier masks' sizes) turns all the ``F_B`` into
one function, evaluated for every interval end of every pair in one ``searchsorted``.

Polygons follow pycocotools' ``rleFrPoly`` rule (a published algorithm, written here anew over arrays): vertices
scaled by 5 and rounded, every edge walked point by point on that fine grid, and each change of column of the walk
(at a column centre) toggles the mask from the y where the walk crosses it; an object's rings are joined (union).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

_SCALE = 5.0
_MAX_CHARS = 9  # 45 bits: more than any image's pixel count; a longer group is a broken string, not a count


def _segment_starts(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(lengths) else np.zeros(0, np.int64)


def decode_count_strings(strings: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    """COCO's compressed RLE strings -> ``(counts, first)``: every run length (``int64``) of every string, and
    ``first`` (``len(strings) + 1``) where each string's runs begin in ``counts``.

    The format: each run a group of characters (offset 48), 5 value bits each, bit 0x20 "another follows", bit 0x10
    of the last the sign; from the fourth run on, the stored value is the difference to the run two places before.
    Raises ``ValueError`` (naming the string's position) for a character outside ``'0'..'o'``, a string ending
    inside a run, or a group too long to be a run length."""
    lengths = np.fromiter((len(s) for s in strings), np.int64, len(strings))
    try:
        c = np.frombuffer("".join(strings).encode("ascii"), np.uint8) - np.uint8(48)  # below '0' wraps past 63
    except UnicodeEncodeError as e:
        raise ValueError(f"{_name(lengths, _which(lengths, e.start))} holds a non-ASCII character") from e
    if len(c) == 0:
        return np.zeros(0, np.int64), np.zeros(len(strings) + 1, np.int64)
    if c.max() > 63:
        raise ValueError(f"{_name(lengths, _which(lengths, int(np.flatnonzero(c > 63)[0])))} holds a character "
                         f"outside '0'..'o'")
    ends = c < 32  # no "another follows" bit
    string_end = np.cumsum(lengths) - 1
    nonempty = lengths > 0
    if not ends[string_end[nonempty]].all():
        raise ValueError(f"{_name(lengths, int(np.flatnonzero(nonempty)[~ends[string_end[nonempty]]][0]))} ends "
                         f"inside a run")
    run_end = np.flatnonzero(ends)
    run_start = np.r_[0, run_end[:-1] + 1]
    run_len = run_end - run_start + 1
    if run_len.max() > _MAX_CHARS:
        raise ValueError(f"{_name(lengths, _which(lengths, int(run_start[np.argmax(run_len > _MAX_CHARS)])))} holds "
                         f"a run longer than any image (more than {_MAX_CHARS} characters)")
    bits = (c & 0x1F).astype(np.int64)
    x = bits[run_start]
    for k in range(1, int(run_len.max())):  # most runs are one or two characters: few, shrinking passes
        more = np.flatnonzero(run_len > k)
        x[more] |= bits[run_start[more] + k] << (5 * k)
    x = np.where((c[run_end] & 0x10) != 0, x - (np.int64(1) << (5 * run_len)), x)
    ends_before = np.cumsum(ends)
    # an empty string ends where the one before it did: it adds no run
    runs_per = np.diff(np.r_[0, np.where(string_end >= 0, ends_before[np.maximum(string_end, 0)], 0)])
    first = np.r_[0, np.cumsum(runs_per)].astype(np.int64)
    return _undo_differences(x, first), first


def _undo_differences(x: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Run i (i >= 3) = stored i + run i-2: running sums of the stored values within each string's odd indices
    (from 1) and even indices from 2 (index 0 stands alone).  The runs are in string order already, so each
    parity's running sum is one cumsum, less what the earlier strings added."""
    per = np.diff(first)
    idx = np.arange(len(x)) - np.repeat(first[:-1], per)
    owner = np.repeat(np.arange(len(per)), per)
    out = x.copy()
    for parity in (0, 1):
        rows = np.flatnonzero((idx >= 1) & ((idx & 1) == parity))
        if len(rows) == 0:
            continue
        cs = np.cumsum(x[rows])
        own = owner[rows]
        starts = np.flatnonzero(np.r_[True, own[1:] != own[:-1]])
        out[rows] = cs - np.repeat(np.r_[0, cs[starts[1:] - 1]], np.diff(np.r_[starts, len(rows)]))
    return out


def _name(lengths: np.ndarray, k: int) -> str:
    """How a message names string ``k``: by its position when there are several."""
    return "RLE string" if len(lengths) == 1 else f"RLE string {k}"


def _which(lengths: np.ndarray, char_index: int) -> int:
    return int(np.searchsorted(np.cumsum(lengths), char_index, side="right"))


@dataclass
class MaskSet:
    """N masks as on-intervals (see the module's note): ``start``/``end`` (``int64``, flat column-major indices),
    ``first`` (N + 1) into them, ``height``/``width`` (N,) each mask's image size."""

    start: np.ndarray
    end: np.ndarray
    first: np.ndarray
    height: np.ndarray
    width: np.ndarray

    def __len__(self) -> int:
        return len(self.height)

    @property
    def area(self) -> np.ndarray:
        """(N,) ``int64`` pixels of each mask."""
        lengths = self.end - self.start
        return np.add.reduceat(np.r_[lengths, 0], self.first[:-1]) * (np.diff(self.first) > 0)

    def boxes(self) -> np.ndarray:
        """(N, 4) ``xmin, ymin, xmax, ymax`` (0-based continuous; zeros for an empty mask)."""
        n = len(self)
        out = np.zeros((n, 4))
        if len(self.start) == 0:
            return out
        h = np.repeat(self.height, np.diff(self.first))
        c0, c1 = self.start // h, (self.end - 1) // h
        one = c0 == c1
        y0 = np.where(one, self.start % h, 0)
        y1 = np.where(one, (self.end - 1) % h + 1, h)
        has = np.diff(self.first) > 0
        at = self.first[:-1][has]
        out[has, 0] = np.minimum.reduceat(c0, at)
        out[has, 2] = np.maximum.reduceat(c1, at) + 1
        out[has, 1] = np.minimum.reduceat(y0, at)
        out[has, 3] = np.maximum.reduceat(y1, at)
        return out

    def intersections(self, a: np.ndarray, b: np.ndarray, block: int = 4_000_000) -> np.ndarray:
        """(P,) pixels shared by masks ``a[i]`` and ``b[i]`` (masks of the same image size)."""
        a = np.asarray(a, np.int64)
        b = np.asarray(b, np.int64)
        n_int = np.diff(self.first)
        swap = n_int[a] > n_int[b]  # walk the mask with fewer intervals over the other one's count function
        qa, qb = np.where(swap, b, a), np.where(swap, a, b)
        sizes = (self.height * self.width).astype(np.int64)
        offset = np.r_[0, np.cumsum(sizes)[:-1]]
        mask_of = np.repeat(np.arange(len(self)), n_int)
        gs = self.start + offset[mask_of]           # every interval on the one line
        lengths = self.end - self.start
        before = np.r_[0, np.cumsum(lengths)]      # pixels of all intervals before interval i
        out = np.zeros(len(a), np.int64)
        weight = n_int[qa]
        cuts = np.searchsorted(np.cumsum(weight), np.arange(block, weight.sum() + block, block), side="right")
        lo = 0
        for hi in np.unique(np.r_[cuts, len(a)]):
            hi = int(hi)
            if hi <= lo:
                continue
            p = np.arange(lo, hi)
            k = n_int[qa[p]]
            if k.sum():
                pair = np.repeat(p, k)
                seg = np.arange(k.sum()) - np.repeat(_segment_starts(k), k)
                iv = self.first[qa[pair]] + seg                          # the walked mask's interval
                shift = offset[qb[pair]]
                inter = _count_below(gs, lengths, before, self.end[iv] + shift) \
                    - _count_below(gs, lengths, before, self.start[iv] + shift)
                out[lo:hi] = np.bincount(pair - lo, weights=inter, minlength=hi - lo).astype(np.int64)
            lo = hi
        return out


def concat(sets: Sequence[MaskSet]) -> MaskSet:
    """One :class:`MaskSet` holding the masks of ``sets`` in order (mask i of the second set is ``len(first) + i``)."""
    firsts, shift = [], 0
    for m in sets:
        firsts.append(m.first[:-1] + shift)
        shift += len(m.start)
    return MaskSet(np.concatenate([m.start for m in sets]), np.concatenate([m.end for m in sets]),
                   np.r_[np.concatenate(firsts), shift].astype(np.int64),
                   np.concatenate([m.height for m in sets]), np.concatenate([m.width for m in sets]))


def pair_iou(masks: MaskSet, a: np.ndarray, b: np.ndarray, crowd: Optional[np.ndarray] = None) -> np.ndarray:
    """(P,) IoU of masks ``a[i]`` and ``b[i]``, as pycocotools' ``maskUtils.iou`` computes it: where ``crowd[i]``,
    the intersection over ``a``'s own area; 0 where the masks' boxes do not overlap or the union is empty.  Only
    pairs whose boxes overlap are intersected."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    crowd = np.zeros(len(a), bool) if crowd is None else np.asarray(crowd, bool)
    box = masks.boxes()
    area = masks.area.astype(np.float64)
    ba, bb = box[a], box[b]
    w = np.minimum(ba[:, 2], bb[:, 2]) - np.maximum(ba[:, 0], bb[:, 0])
    h = np.minimum(ba[:, 3], bb[:, 3]) - np.maximum(ba[:, 1], bb[:, 1])
    near = np.flatnonzero((w > 0) & (h > 0))
    out = np.zeros(len(a))
    if len(near):
        inter = masks.intersections(a[near], b[near]).astype(np.float64)
        union = np.where(crowd[near], area[a[near]], area[a[near]] + area[b[near]] - inter)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[near] = np.where(union > 0, inter / union, 0.0)
    return out


def _count_below(gs: np.ndarray, lengths: np.ndarray, before: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Pixels of all intervals (on the one line) below position ``x``."""
    i = np.searchsorted(gs, x, side="right") - 1
    ok = i >= 0
    ic = np.maximum(i, 0)
    return np.where(ok, before[ic] + np.clip(x - gs[ic], 0, lengths[ic]), 0)


def from_counts(counts: np.ndarray, first: np.ndarray, height, width) -> MaskSet:
    """Masks from run lengths (each mask's runs start with a run of 0s, COCO's order); run sums must be checked by
    the caller (:func:`check_counts`)."""
    counts = np.asarray(counts, np.int64)
    first = np.asarray(first, np.int64)
    n = len(first) - 1
    per = np.diff(first)
    idx = np.arange(len(counts)) - np.repeat(first[:-1], per)
    owner = np.repeat(np.arange(n), per)
    cs = np.cumsum(counts)
    end_in = cs - np.repeat(np.r_[0, cs][first[:-1]], per)  # where run i ends, within its own mask
    on = (idx % 2 == 1) & (counts > 0)
    start = (end_in - counts)[on]
    end = end_in[on]
    new_first = np.r_[0, np.cumsum(np.bincount(owner[on], minlength=n))].astype(np.int64)
    return MaskSet(start, end, new_first, np.asarray(height, np.int64).reshape(n),
                   np.asarray(width, np.int64).reshape(n))


def check_counts(counts: np.ndarray, first: np.ndarray, height, width) -> Optional[int]:
    """The first mask whose runs are negative or do not cover exactly its ``height * width`` pixels, or None."""
    n = len(first) - 1
    per = np.diff(first)
    owner = np.repeat(np.arange(n), per)
    neg = np.bincount(owner[counts < 0], minlength=n) > 0
    total = np.bincount(owner, weights=counts.astype(np.float64), minlength=n)
    want = np.asarray(height, np.float64) * np.asarray(width, np.float64)
    bad = neg | (total != want)
    return int(np.flatnonzero(bad)[0]) if bad.any() else None


def from_polygons(rings: Sequence[np.ndarray], ring_owner, height, width) -> MaskSet:
    """Masks of N objects given as polygon rings (``(K, 2)`` float arrays of 0-based continuous coordinates;
    ``ring_owner[r]`` the object of ring r), each object's rings joined, rasterized as pycocotools' ``frPyObjects``
    then ``merge`` rasterize them.  ``height``/``width``: (N,) each object's image size."""
    height = np.asarray(height, np.int64).reshape(-1)
    width = np.asarray(width, np.int64).reshape(-1)
    ring_owner = np.asarray(ring_owner, np.int64).reshape(-1)
    pos, ring = _ring_toggles(rings, ring_owner, height, width)
    # within a ring, a position toggling an even number of times toggles nothing (pycocotools' zero-run merge)
    order = np.lexsort((pos, ring))
    pos, ring = pos[order], ring[order]
    new = np.r_[True, (pos[1:] != pos[:-1]) | (ring[1:] != ring[:-1])]
    at = np.flatnonzero(new)
    mult = np.diff(np.r_[at, len(pos)])
    pos, ring = pos[at][mult % 2 == 1], ring[at][mult % 2 == 1]
    # on between toggles 0-1, 2-3, ...; an odd last one runs to the end of the image
    per = np.bincount(ring, minlength=len(rings))
    k = np.arange(len(pos)) - np.repeat(_segment_starts(per), per)
    is_start = k % 2 == 0
    size = (height * width)[ring_owner]
    nxt = np.r_[pos[1:], 0]
    has_next = np.r_[ring[1:] == ring[:-1], False]
    starts = pos[is_start]
    ends = np.where(has_next, nxt, size[ring])[is_start]
    owner = ring_owner[ring[is_start]]
    return union(starts, ends, owner, height, width)


def union(starts: np.ndarray, ends: np.ndarray, owner: np.ndarray, height, width) -> MaskSet:
    """Intervals of several pieces per mask (any order, overlapping or not) -> each mask's pixels as a
    :class:`MaskSet` (``owner``: the mask of each interval)."""
    height = np.asarray(height, np.int64)
    n = len(height)
    keep = ends > starts
    starts, ends, owner = starts[keep], ends[keep], owner[keep]
    pos = np.r_[starts, ends]
    delta = np.r_[np.ones(len(starts), np.int64), -np.ones(len(ends), np.int64)]
    own = np.r_[owner, owner]
    order = np.lexsort((-delta, pos, own))  # at one position, openings before closings: touching pieces join
    pos, delta, own = pos[order], delta[order], own[order]
    cover = np.cumsum(delta)  # every mask's pieces balance, so the running count restarts at 0 for each mask
    opens = (cover == 1) & (delta == 1) & (np.r_[0, cover[:-1]] == 0)
    closes = cover == 0
    s, e, o = pos[opens], pos[closes], own[opens]
    first = np.r_[0, np.cumsum(np.bincount(o, minlength=n))].astype(np.int64)
    return MaskSet(s.astype(np.int64), e.astype(np.int64), first, height, np.asarray(width, np.int64))


def _ring_toggles(rings, ring_owner, height, width) -> Tuple[np.ndarray, np.ndarray]:
    """pycocotools' y-boundary points of every ring as flat column-major positions in its object's image, and
    each ring's closing entry ``h * w``: ``(positions, ring of each)``.

    pycocotools walks each edge point by point on a grid 5 times finer and, wherever the walk steps from one fine
    column to the next, records a boundary -- but keeps only steps whose left fine column is 5k + 2 (the centre of
    pixel column k).  So only those steps are computed here: for an edge walked along x (|dx| >= |dy|) the step
    from column 5k + 2 to 5k + 3 is at a known t; for an edge walked along y, the t where its rounded x crosses
    that column (found from the line, then checked with the walk's own arithmetic).  The y of a boundary is the
    lower of the step's two fine rows, brought back to pixels as pycocotools does."""
    k = np.fromiter((len(r) for r in rings), np.int64, len(rings))
    closing = (height * width)[ring_owner]
    if k.sum() == 0:
        return closing, np.arange(len(rings))
    pts = np.concatenate([np.asarray(r, np.float64).reshape(-1, 2) for r in rings])
    ring_of = np.repeat(np.arange(len(rings)), k)
    # the fine grid: C's (int)(5 v + .5), a truncation toward zero
    x = np.trunc(_SCALE * pts[:, 0] + 0.5).astype(np.int64)
    y = np.trunc(_SCALE * pts[:, 1] + 0.5).astype(np.int64)
    first = _segment_starts(k)
    nxt = np.arange(len(x)) + 1
    nxt[(first + k - 1)[k > 0]] = first[k > 0]  # each ring closes back to its first vertex
    xs, ys, xe, ye = x, y, x[nxt], y[nxt]
    dx, dy = np.abs(xe - xs), np.abs(ys - ye)
    along_x = dx >= dy
    flip = (along_x & (xs > xe)) | (~along_x & (ys > ye))
    xs, xe = np.where(flip, xe, xs), np.where(flip, xs, xe)
    ys, ye = np.where(flip, ye, ys), np.where(flip, ys, ye)
    span = np.where(along_x, dx, dy)
    slope = np.where(along_x, ye - ys, xe - xs) / np.maximum(span, 1)

    def walk_x(e, t):  # the walk's rounded x at step t of an edge walked along y
        return np.trunc(xs[e] + slope[e] * t + 0.5).astype(np.int64)

    def walk_y(e, t):  # the walk's rounded y at step t of an edge walked along x
        return np.trunc(ys[e] + slope[e] * t + 0.5).astype(np.int64)

    # the fine columns each edge's walk covers: along x, xs..xe exactly; along y, its rounded ends
    ux0 = np.where(along_x, xs, np.trunc(xs + 0.5).astype(np.int64))
    ux1 = np.where(along_x, xe, walk_x(np.arange(len(x)), span))
    lo, hi = np.minimum(ux0, ux1), np.maximum(ux0, ux1)
    c0 = lo + np.mod(2 - lo, 5)  # the first column 5k + 2 at or after lo
    n_steps = np.where((span > 0) & (hi - 1 >= c0), (hi - 1 - c0) // 5 + 1, 0)
    edge = np.repeat(np.arange(len(x)), n_steps)
    col = np.repeat(c0, n_steps) + 5 * (np.arange(int(n_steps.sum())) - np.repeat(_segment_starts(n_steps), n_steps))
    ax = along_x[edge]
    ymin = np.empty(len(edge), np.int64)
    # along x: the step from column col to col + 1 is at t = col - xs
    ex = edge[ax]
    t = col[ax] - xs[ex]
    ymin[ax] = np.minimum(walk_y(ex, t), walk_y(ex, t + 1))
    # along y: the last t whose rounded x is still on col's side (x rising) or still past it (x falling)
    ey = edge[~ax]
    if len(ey):
        cy = col[~ax]
        rising = slope[ey] > 0
        guess = np.floor((cy + 0.5 - xs[ey]) / slope[ey]).astype(np.int64)
        best = np.full(len(ey), -1, np.int64)
        for off in (2, 1, 0, -1, -2):  # the line gives t within one step; the walk's arithmetic decides
            tc = guess + off
            ok = (tc >= 0) & (tc < span[ey]) & (best < 0)
            a, b = walk_x(ey, tc), walk_x(ey, tc + 1)
            hit = ok & np.where(rising, (a <= cy) & (b >= cy + 1), (a >= cy + 1) & (b <= cy))
            best = np.where(hit, tc, best)
        found = best >= 0
        ymin_y = ys[ey] + best  # the lower of the step's two rows: t + ys
        ymin[~ax] = np.where(found, ymin_y, 0)
        keep_y = np.ones(len(edge), bool)
        keep_y[np.flatnonzero(~ax)[~found]] = False
        edge, col, ymin = edge[keep_y], col[keep_y], ymin[keep_y]
    kcol = (col - 2) // 5
    obj = ring_owner[ring_of[edge]]
    h = height[obj]
    keep = (kcol >= 0) & (kcol <= width[obj] - 1)
    yd = np.ceil(np.clip((ymin + 0.5) / _SCALE - 0.5, 0, h)).astype(np.int64)
    pos = kcol[keep] * h[keep] + yd[keep]
    return np.r_[pos, closing], np.r_[ring_of[edge][keep], np.arange(len(rings))]
