"""Filling blanked regions with the texture around them: a few shifted copies of the image, matched to a ring around
each region and blended in the gradient domain.  Pure functions over numpy arrays; ``fill_regions(..., "texture")``
in :mod:`dsprep.fill` calls :func:`texture_fill`.

How a region is filled (each group of blanked pixels within ``2 * RING`` pixels of each other is one region):

1. **Search, coarse.**  The region's bounding box grown by ``RING`` pixels is the template; the known pixels of that
   ring are what must match.  The template is compared with every placement inside a search window around the
   region (its box grown by twice its size, at least ``SEARCH_MIN`` pixels) at a scale where the window is at most
   ``COARSE`` pixels across: the weighted sum of squared differences over the ring, counting only source pixels that
   are known (not blanked, inside the image), ``sum v (I - T)^2 = corr(v I^2, m) - 2 corr(v I, m T) +
   corr(v, m T^2)``, and the share of the region the placement can supply, ``corr(v, hole)`` -- five
   ``cv2.matchTemplate`` cross-correlations, no loop over positions.  The best ring match among the placements that
   supply (almost) the most of the region wins.
2. **Refine.**  The winner is searched again at full resolution within one coarse pixel around it.
3. **Cover.**  Pixels of the region the shift cannot supply (its source is blanked too, or outside the image) are
   covered by the next shift chosen the same way for what remains, up to ``MAX_SHIFTS`` shifts; whatever is left
   gets the smooth push-pull fill.
4. **Blend.**  Each shift's copy ``S`` is corrected by the difference ``I - S`` on the known pixels around the
   region, carried into it by push-pull (a membrane: the copy's texture is kept, its colour and brightness meet
   the border's, the gradient-domain idea of Perez et al.'s Poisson editing at push-pull's cost), and the copies
   are cross-faded over a few pixels where one hands over to the next.

Everything is deterministic: no random numbers, components in label order.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import cv2
import numpy as np

RING = 12         # pixels of known surroundings matched around a region (and the band the texture ratio uses)
COARSE = 128      # the search window is scaled to at most this many pixels across for the coarse search
SEARCH_MIN = 64   # the search window extends at least this far beyond a region's box
MAX_SHIFTS = 4    # shifted copies per region at most
FADE = 2.0        # sigma (pixels) of the cross-fade between copies
MIN_RING = 0.4    # a placement must see at least this share of the ring's known pixels as known source pixels


def texture_fill(img: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """A copy of ``img`` (``(H, W)`` or ``(H, W, C)``, C <= 4, any dtype) whose pixels where ``hole`` (bool
    ``(H, W)``) is set are filled by shifted copies of the image's own known pixels (see the module's text).  Known
    pixels are returned as they are."""
    hole = np.asarray(hole, bool)
    out = img.copy()
    if not hole.any():
        return out
    if hole.all():
        raise ValueError("every pixel is blanked: nothing to fill from")
    from .fill import push_pull
    work = img.astype(np.float32)
    if work.ndim == 2:
        work = work[:, :, None]
    if work.shape[2] > 4:
        return push_pull(img, hole)
    valid = (~hole).astype(np.float32)
    H, W = hole.shape
    # regions: blanked pixels closer than two rings are filled together (their rings would overlap)
    near = cv2.dilate(hole.view(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * RING + 1,) * 2))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(near, connectivity=8)
    result = work.copy()
    for k in range(1, n):
        x, y, w, h = stats[k, :4]
        # the template: the region's box grown by RING (the dilation's box, clipped to the image)
        tx0, ty0, tx1, ty1 = x, y, x + w, y + h
        region = (labels[ty0:ty1, tx0:tx1] == k) & hole[ty0:ty1, tx0:tx1]
        if not region.any():
            continue
        filled = _fill_region(work, valid, hole, region, (tx0, ty0, tx1, ty1))
        sub = result[ty0:ty1, tx0:tx1]
        sub[region] = filled[region]
    res = result.reshape(img.shape) if img.ndim == 3 else result[:, :, 0]
    if np.issubdtype(img.dtype, np.integer):
        info = np.iinfo(img.dtype)
        res = np.clip(np.round(res), info.min, info.max)
    res = res.astype(img.dtype)
    out[hole] = res[hole]
    return out


def _take(arr: np.ndarray, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """``arr[y0:y0+h, x0:x0+w]`` with zeros where that reaches outside ``arr``."""
    H, W = arr.shape[:2]
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
    if cx0 == x0 and cy0 == y0 and cx1 == x0 + w and cy1 == y0 + h:
        return arr[y0:y0 + h, x0:x0 + w]
    out = np.zeros((h, w) + arr.shape[2:], arr.dtype)
    if cx1 > cx0 and cy1 > cy0:
        out[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0] = arr[cy0:cy1, cx0:cx1]
    return out


def _ccorr(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    return cv2.matchTemplate(np.ascontiguousarray(a), np.ascontiguousarray(t), cv2.TM_CCORR)


def _prepared(img: np.ndarray, valid: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What :func:`_scores` needs of the searched image: ``valid``, ``valid * img`` and ``valid * |img|^2``."""
    vi = img * valid[:, :, None]
    return valid, vi, (vi * img).sum(axis=2)


def _scores(prep: Tuple[np.ndarray, np.ndarray, np.ndarray], tmpl: np.ndarray, ring: np.ndarray,
            want: Optional[np.ndarray]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every placement of the template in the searched image (``prep`` from :func:`_prepared`): the mean squared
    difference over the ring's pixels whose source is known, the share of the ring's weight those are, and the share
    of ``want`` the placement supplies (all ones without ``want``)."""
    valid, vi, sq = prep
    mt = tmpl * ring[:, :, None]
    ssd = _ccorr(sq, ring) - 2.0 * _ccorr(vi, mt) + _ccorr(valid, (mt * tmpl).sum(axis=2))
    count = _ccorr(valid, ring)
    mean = ssd / np.maximum(count, 1e-3)
    seen = count / max(float(ring.sum()), 1e-6)
    if want is None:
        return mean, seen, np.ones_like(mean)
    return mean, seen, _ccorr(valid, want) / max(float(want.sum()), 1e-6)


def _best(mean: np.ndarray, seen: np.ndarray, cover: np.ndarray, banned: Optional[np.ndarray] = None
          ) -> Optional[Tuple[int, int]]:
    """The placement ``(x, y)`` with the best ring match among those that see enough of the ring and supply almost
    the most of what is wanted; None when no placement supplies anything."""
    ok = (seen >= MIN_RING) & (cover > 0.01)
    if banned is not None:
        ok &= ~banned
    if not ok.any():
        return None
    top = cover[ok].max()
    ok &= cover >= top - 0.03
    score = np.where(ok, mean, np.inf)
    y, x = np.unravel_index(int(np.argmin(score)), score.shape)
    return int(x), int(y)


def _fill_region(img: np.ndarray, valid: np.ndarray, hole: np.ndarray, region: np.ndarray,
                 rect: Tuple[int, int, int, int]) -> np.ndarray:
    """The filled template rectangle ``rect = (x0, y0, x1, y1)`` (float, ``(h, w, C)``; only ``region`` is used)."""
    from .fill import push_pull
    H, W = hole.shape
    x0, y0, x1, y1 = rect
    tw, th = x1 - x0, y1 - y0
    tmpl = img[y0:y1, x0:x1]
    known = valid[y0:y1, x0:x1]
    # the ring (every known pixel of the rectangle: it is the region grown by RING) as a whole and in four sectors
    # around the region's centre (right, below, left, above): a shift that continues one side is a candidate too
    ys, xs = np.nonzero(region)
    yy, xx = np.mgrid[0:th, 0:tw]
    side = np.round(np.arctan2(yy - ys.mean(), xx - xs.mean()) / (np.pi / 2)).astype(np.int64) % 4
    parts = [known] + [known * (side == q) for q in range(4)]
    parts = [p for p in parts if p.sum() > 0]
    # ---- coarse search over a window around the region
    ext = max(SEARCH_MIN, 2 * max(tw, th))
    wx0, wy0, wx1, wy1 = max(0, x0 - ext), max(0, y0 - ext), min(W, x1 + ext), min(H, y1 + ext)
    s = min(1.0, COARSE / max(wx1 - wx0, wy1 - wy0))
    s = max(s, min(1.0, 10.0 / max(1, min(tw, th))))

    def small(a, width, height):
        if s == 1.0:
            return a
        size = (max(1, int(round(width * s))), max(1, int(round(height * s))))
        r = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
        return r.reshape(size[1], size[0], -1) if a.ndim == 3 else r

    ct = small(tmpl, tw, th)
    cth, ctw = ct.shape[:2]
    ci = small(img[wy0:wy1, wx0:wx1], wx1 - wx0, wy1 - wy0)
    cv_ = small(valid[wy0:wy1, wx0:wx1], wx1 - wx0, wy1 - wy0)
    # padded by half the template: placements hanging out further see too little of the ring to be chosen
    py, px = cth // 2, ctw // 2
    ci = cv2.copyMakeBorder(ci, py, py, px, px, cv2.BORDER_CONSTANT, value=0).reshape(
        ci.shape[0] + 2 * py, ci.shape[1] + 2 * px, -1)
    cv_ = cv2.copyMakeBorder(cv_, py, py, px, px, cv2.BORDER_CONSTANT, value=0)
    # the template's own place in the padded coarse window: offsets are placements minus it
    home = np.array([(x0 - wx0) * s + px, (y0 - wy0) * s + py])
    r = int(np.ceil(1.0 / s)) + 1 if s < 1.0 else 0
    # the whole ring is matched in colour (it chooses the material); its sectors in grey (a third of the work)
    cw = small(region.astype(np.float32), tw, th)
    coarse = [_scores(_prepared(ci, cv_), ct, small(parts[0], tw, th), cw)]
    if len(parts) > 1:
        grey_prep = _prepared(ci.mean(axis=2, keepdims=True), cv_)
        grey_t = ct.mean(axis=2, keepdims=True)
        coarse += [_scores(grey_prep, grey_t, small(p, tw, th), cw) for p in parts[1:]]
    shifts: List[Tuple[int, int]] = []

    grey = img.mean(axis=2, keepdims=True) if img.shape[2] > 1 else img
    gt = grey[y0:y1, x0:x1]

    def refine(pick, ring) -> Optional[Tuple[int, int]]:
        """The coarse placement searched again at full resolution, within a coarse pixel, on the grey image and
        the ring part's own box (the coarse search chose the material: the position is what is left)."""
        dx0, dy0 = int(round((pick[0] - home[0]) / s)), int(round((pick[1] - home[1]) / s))
        if r == 0:
            return dx0, dy0
        ys_, xs_ = np.nonzero(ring)
        bx0, by0, bx1, by1 = xs_.min(), ys_.min(), xs_.max() + 1, ys_.max() + 1
        bw, bh = bx1 - bx0, by1 - by0
        fi = _take(grey, x0 + bx0 + dx0 - r, y0 + by0 + dy0 - r, bw + 2 * r, bh + 2 * r)
        fv = _take(valid, x0 + bx0 + dx0 - r, y0 + by0 + dy0 - r, bw + 2 * r, bh + 2 * r)
        rb = ring[by0:by1, bx0:bx1]
        mean, seen, _ = _scores(_prepared(fi, fv), gt[by0:by1, bx0:bx1], rb, None)
        fine = _best(mean, seen, np.ones_like(mean))
        if fine is None:
            return None
        return dx0 + fine[0] - r, dy0 + fine[1] - r

    want = region.astype(np.float32)
    for ring, (c_mean, c_seen, c_cover) in zip(parts, coarse):
        pick = _best(c_mean, c_seen, c_cover)
        d = refine(pick, ring) if pick is not None else None
        if d is not None and d not in shifts:
            shifts.append(d)
    # pixels none of those shifts can supply (their source is blanked or outside the image): more shifts, each
    # chosen for what remains
    c_mean, c_seen, _ = coarse[0]
    remaining = region.copy()
    for d in shifts:
        remaining &= ~(_take(valid, x0 + d[0], y0 + d[1], tw, th) > 0)
    for _ in range(MAX_SHIFTS):
        if remaining.sum() <= 0.002 * region.sum():
            break
        want_c = small(remaining.astype(np.float32), tw, th)
        pick = _best(c_mean, c_seen, _ccorr(cv_, want_c) / max(float(want_c.sum()), 1e-6))
        d = refine(pick, known) if pick is not None else None
        if d is None or d in shifts:
            break
        shifts.append(d)
        remaining &= ~(_take(valid, x0 + d[0], y0 + d[1], tw, th) > 0)
    # ---- each copy corrected by the membrane of its difference with the known surroundings; each region pixel
    # takes the copy whose surroundings match best near it (the membrane of the squared difference)
    known_b = known > 0
    copies, errors, oks = [], [], []
    for dx, dy in shifts:
        src = _take(img, x0 + dx, y0 + dy, tw, th)
        src_ok = _take(valid, x0 + dx, y0 + dy, tw, th) > 0
        base = known_b & src_ok
        if not base.any():
            continue
        diff = np.where(base[:, :, None], tmpl - src, 0).astype(np.float32)
        both = push_pull(np.dstack([diff, (diff * diff).sum(axis=2)]), ~base)  # one pyramid for both membranes
        diff, err = both[:, :, :-1], both[:, :, -1]
        copies.append(src + diff)
        errors.append(np.where(src_ok, err, np.inf))
        oks.append(src_ok)
    if not copies:
        return push_pull(tmpl, ~known_b).reshape(tmpl.shape)
    errors = np.stack(errors)
    choice = np.argmin(errors, axis=0)
    none = ~np.isfinite(errors.min(axis=0)) & region
    k = int(2 * np.ceil(3 * FADE) + 1)
    total = np.zeros(tmpl.shape, np.float32)
    weight = np.zeros((th, tw), np.float32)
    for i, (copy, ok) in enumerate(zip(copies, oks)):
        mine = (choice == i) & ok & region
        if not mine.any():
            continue
        wk = cv2.GaussianBlur(mine.astype(np.float32), (k, k), FADE) * ok + mine * 1e-3
        total += copy * wk[:, :, None]
        weight += wk
    filled = total / np.maximum(weight, 1e-6)[:, :, None]
    if none.any():
        smooth = push_pull(tmpl, ~known_b).reshape(tmpl.shape)
        filled[none] = smooth[none]
    return filled


def region_measures(img: np.ndarray, hole: np.ndarray, band: int = RING) -> Tuple[np.ndarray, np.ndarray]:
    """How a filled region sits in its image, per connected region of ``hole`` (grey image):

    * **texture**: the mean absolute Laplacian (3 x 3) inside the region over that in a ``band``-pixel ring around
      it (blanked pixels of other regions left out): about 1 when the fill keeps the surrounding texture, near 0 for
      a smooth fill;
    * **seam**: the mean gradient magnitude (Sobel) on the region's border (the pixels within one pixel of it, on
      either side) over that in the ring beyond two pixels: about 1 when the border does not show, large for a
      hard edge (a black fill: 5-20).

    Returns ``(texture, seam)``, one value per region whose ring has any texture (others are left out)."""
    hole = np.asarray(hole, bool)
    grey = img if img.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_BGR2GRAY)
    grey = grey.astype(np.float32)
    lap = np.abs(cv2.Laplacian(grey, cv2.CV_32F, ksize=1))
    grad = cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(hole.view(np.uint8), connectivity=8)
    H, W = hole.shape

    def disc(r):
        return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2)

    texture, seam = [], []
    for k in range(1, n):  # one region at a time, inside its box grown by the band
        x, y, w, h = stats[k, :4]
        win = np.s_[max(0, y - band):min(H, y + h + band), max(0, x - band):min(W, x + w + band)]
        inside = (labels[win] == k).view(np.uint8)
        others = hole[win] & (labels[win] != k)
        ring = (cv2.dilate(inside, disc(band)) > 0) & ~hole[win]
        far = ring & ~(cv2.dilate(inside, disc(2)) > 0)
        edge = (cv2.dilate(inside, disc(1)) > 0) & ~(cv2.erode(inside, disc(1)) > 0) & ~others
        if not ring.any() or not far.any() or not edge.any():
            continue
        around, g_far = float(lap[win][ring].mean()), float(grad[win][far].mean())
        if around <= 1e-6 or g_far <= 1e-6:
            continue
        texture.append(float(lap[win][inside > 0].mean()) / around)
        seam.append(float(grad[win][edge].mean()) / g_far)
    return np.array(texture), np.array(seam)
