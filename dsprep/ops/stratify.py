"""Stratified splits of multi-object data sets: every image in one split, each class's objects divided close to the
asked fractions, the images too.

The input is a per-image class-count matrix ``counts`` ``(N, C)`` (how many objects of class ``c`` image ``i``
holds) and the asked fractions ``(S,)``; the answer is a split index ``(N,)`` per image.  Images that must stay
together (frames of one video, near-duplicates) form groups; a group is placed as one unit.

Two stages, both over whole arrays:

1. **Iterative stratification** in the spirit of Sechidis, Tsoumakas & Vlahavas (2011), on object counts instead
   of binary labels: the class with the fewest unplaced groups is handled first (rare classes cannot be balanced
   later); its groups, in random order, are laid along the still-wanted objects of that class in each split
   (largest need first) and each falls where the middle of its objects lands.  The wants of every class are then
   reduced by what those groups hold.  One step per class, not per image.
2. **Refinement** by steepest descent over single-group moves, the change of the whole loss computed for every
   (group, split) pair at once by one matrix product:

   ``L = sum_c w_c sum_j E_cj^2 + img(E_j) + P * #(eligible class absent from a split)``

   with ``E_cj`` the objects of class ``c`` in split ``j`` minus the wanted number, ``w_c = 1 / (C N_c^2)``
   (so the loss is the mean squared deviation of each class's fractions, at most 2), ``img`` a quadratic in the
   images per split plus ``10 * (images beyond the tolerance)^2`` (tolerance: 1% of the images, at least one), and
   ``P = 100``, so a class with at least as many groups as there are splits ends up in every split where that is
   possible, then the images per split keep to the tolerance, then the classes are as even as they can be.

The same ``rng`` state gives the same split.
"""
from __future__ import annotations

import re
from typing import Dict, Optional, Sequence

import numpy as np

# Images per split: the tolerance the refinement keeps (a fraction of all images; at least one image).
IMAGE_TOLERANCE = 0.01
# Groups of each split considered for exchanges (those whose own move would help most): the pairs cost K^2 C.
SWAP_CANDIDATES = 64
# A move must lower the loss by more than this (floating-point noise never moves a group back and forth).
EPS = 1e-12


def parse_ratios(text: str) -> Dict[str, float]:
    """``train=0.7,val=0.2,test=0.1`` -> ``{"train": 0.7, "val": 0.2, "test": 0.1}`` (in the given order).

    Fractions must be positive and sum to 1 (within 0.01; they are then scaled to sum to exactly 1); names must be
    distinct, non-empty, and usable as a folder name.  ``ValueError`` otherwise."""
    out: Dict[str, float] = {}
    for part in str(text).split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"'{part.strip()}' is not NAME=FRACTION (e.g. train=0.7,val=0.2,test=0.1)")
        if any(c in name for c in "/\\:\0") or name in (".", ".."):
            raise ValueError(f"'{name}' cannot name a split (it would not be a plain folder or file name)")
        if name in out:
            raise ValueError(f"split '{name}' given twice")
        try:
            f = float(value)
        except ValueError as e:
            raise ValueError(f"'{value.strip()}' is not a number (split '{name}')") from e
        if not (0 < f <= 1):
            raise ValueError(f"the fraction of split '{name}' must be above 0 and at most 1, not {value.strip()}")
        out[name] = f
    total = sum(out.values())
    if abs(total - 1) > 0.01:
        raise ValueError(f"the fractions sum to {total:g}, not 1")
    return {k: v / total for k, v in out.items()}


def class_counts(names_per_image: Sequence[Sequence[str]], classes: Sequence[str]) -> np.ndarray:
    """``(N, C) int64``: how many objects of each class (``classes`` order) each image holds; names outside
    ``classes`` are not counted."""
    n, c = len(names_per_image), len(classes)
    lengths = np.fromiter((len(x) for x in names_per_image), np.int64, n)
    if not lengths.sum() or not c:
        return np.zeros((n, c), np.int64)
    flat = np.concatenate([np.asarray(x, dtype=str) for x in names_per_image if len(x)])
    image = np.repeat(np.arange(n), lengths)
    order = np.argsort(np.asarray(classes, dtype=str), kind="stable")
    sorted_classes = np.asarray(classes, dtype=str)[order]
    pos = np.clip(np.searchsorted(sorted_classes, flat), 0, c - 1)
    known = sorted_classes[pos] == flat
    flat_index = image[known] * c + order[pos[known]]
    return np.bincount(flat_index, minlength=n * c).reshape(n, c).astype(np.int64)


def groups_by_regex(names: Sequence[str], pattern: str) -> np.ndarray:
    """``(N,) int64`` group labels: images whose names give the same first group of ``pattern`` (``re.search``)
    share a label; an image the pattern does not match (or whose first group is empty) is a group of its own.
    ``ValueError`` for a pattern that does not compile or has no group."""
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise ValueError(f"'{pattern}' is not a regular expression ({e})") from e
    if rx.groups < 1:
        raise ValueError(f"'{pattern}' has no group: put the part that names the group in (...)")
    keys: Dict[str, int] = {}
    out = np.empty(len(names), np.int64)
    for i, name in enumerate(names):
        m = rx.search(name)
        key = m.group(1) if m else None
        out[i] = keys.setdefault(key, len(keys)) if key else -1 - i
    return _dense(out)


def groups_from_sets(n: int, groups: Sequence[Sequence[int]], labels: Optional[np.ndarray] = None) -> np.ndarray:
    """``(N,) int64`` group labels joining, on top of ``labels`` (default: every image alone), the images of each
    set in ``groups`` (sets that share an image are joined too)."""
    parent = np.arange(n) if labels is None else _dense(labels).copy()
    # union-find over the group labels: a root per label, path-halving finds
    root = np.arange(int(parent.max()) + 1 if n else 0)

    def find(x):
        while root[x] != x:
            root[x] = root[root[x]]
            x = root[x]
        return x

    for members in groups:
        labs = [find(parent[int(i)]) for i in members]
        r = min(labs)
        for lab in labs:
            root[lab] = r
    for lab in range(len(root)):
        root[lab] = find(lab)
    return _dense(root[parent])


def _dense(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..G-1 in order of first appearance."""
    labels = np.asarray(labels)
    if not len(labels):
        return np.zeros(0, np.int64)
    _, first, inv = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inv.reshape(-1)]


def stratified_split(counts: np.ndarray, fractions: Sequence[float], rng: np.random.Generator,
                     groups: Optional[np.ndarray] = None, max_moves: Optional[int] = None) -> np.ndarray:
    """``(N,) int64``: the split (index into ``fractions``) of each image.

    ``counts`` ``(N, C)`` objects per image and class; ``fractions`` ``(S,)`` positive, summing to 1; ``groups``
    ``(N,)`` labels of images that must share a split (default: none); ``max_moves`` caps the refinement (default:
    enough for any data set to settle)."""
    counts = np.asarray(counts, np.float64).reshape(len(counts), -1)
    r = np.asarray(fractions, np.float64)
    n = len(counts)
    if n == 0:
        return np.zeros(0, np.int64)
    labels = np.arange(n) if groups is None else _dense(groups)
    g = int(labels.max()) + 1
    x, present = _sum_groups(counts, labels, g), _sum_groups((counts > 0).astype(np.float64), labels, g)
    m = np.bincount(labels, minlength=g).astype(np.float64)
    start = _iterative(x, m, r, rng)
    final = _refine(x, present, m, r, start, max_moves if max_moves is not None else 4 * g + 1000)
    return final[labels]


def _sum_groups(values: np.ndarray, labels: np.ndarray, g: int) -> np.ndarray:
    """``(G, C)``: the rows of ``values`` summed per label (labels dense, 0..G-1)."""
    if g == len(labels):
        out = np.empty_like(values)
        out[labels] = values
        return out
    order = np.argsort(labels, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(labels[order]) != 0])
    return np.add.reduceat(values[order], starts, axis=0)


def _iterative(x: np.ndarray, m: np.ndarray, r: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Stage 1 (see the module docstring): ``(G,)`` split of each group."""
    g, c = x.shape
    s = len(r)
    want = x.sum(0)[:, None] * r[None, :]  # (C, S) objects of each class still wanted in each split
    want_img = m.sum() * r  # (S,) images still wanted
    out = np.full(g, -1, np.int64)
    open_ = np.ones(g, bool)
    has = x > 0
    left = has.sum(0).astype(np.float64)  # groups not yet placed holding each class
    for _ in range(c):
        alive = left > 0
        if not alive.any():
            break
        label = int(np.flatnonzero(alive)[np.argmin(left[alive])])
        batch = np.flatnonzero(open_ & has[:, label])
        batch = batch[rng.permutation(len(batch))]
        weight = x[batch, label]
        dest = _lay(weight, np.clip(want[label], 0, None), np.clip(want_img, 0, None), r)
        out[batch] = dest
        open_[batch] = False
        onehot = np.zeros((len(batch), s))
        onehot[np.arange(len(batch)), dest] = 1
        want -= x[batch].T @ onehot
        want_img -= m[batch] @ onehot
        left -= has[batch].sum(0)
    rest = np.flatnonzero(open_)  # images without objects: by the images still wanted
    if len(rest):
        rest = rest[rng.permutation(len(rest))]
        out[rest] = _lay(m[rest], np.clip(want_img, 0, None), r, r)
    return out


def _lay(weight: np.ndarray, need: np.ndarray, fallback: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Groups (in the order given, each ``weight`` long) laid end to end along the splits' ``need`` scaled to the
    total weight, the split with the largest need first; each group goes where its middle falls."""
    if need.sum() <= 0:
        need = fallback if fallback.sum() > 0 else r
    order = np.argsort(-need, kind="stable")
    total = weight.sum()
    edges = np.cumsum(need[order]) / need.sum() * total
    mid = np.cumsum(weight) - weight / 2
    return order[np.minimum(np.searchsorted(edges, mid, side="right"), len(r) - 1)]


def _refine(x: np.ndarray, present: np.ndarray, m: np.ndarray, r: np.ndarray, assign: np.ndarray,
            max_moves: int, swap_candidates: int = SWAP_CANDIDATES) -> np.ndarray:
    """Stage 2 (see the module docstring): the best single-group move while one lowers the loss, else the best
    exchange of two groups between two splits (which leaves the images per split where they are), among the
    ``swap_candidates`` groups of each split whose own move would help most.

    The loss change of every (group, split) move is kept in a few ``(G, S)`` arrays; a move changes the errors of
    only the classes its group holds, in two splits, so the arrays are updated through those few columns.  The
    change of an exchange is the two moves' changes plus their interaction, ``-4 sum_c w_c x_gc x_hc`` for the
    class terms, computed for every candidate pair by one matrix product (the other terms exactly, per pair)."""
    g, c = x.shape
    s = len(r)
    assign = assign.copy()
    total = x.sum(0)
    w = np.where(total > 0, 1.0 / np.maximum(total, 1) ** 2, 0.0) / max(c, 1)  # (C,)
    m_total = m.sum()
    w_img = 0.1 / m_total ** 2
    tol = max(IMAGE_TOLERANCE * m_total, 1.0)
    steep = 10.0  # per image beyond the tolerance, squared: above every class term together (at most 2)
    has = present > 0  # (G, C)
    hasf = has.astype(np.float64)
    xt = np.ascontiguousarray(x.T)  # (C, G): a class's column read as one row
    ht = np.ascontiguousarray(hasf.T)
    eligible = (has.sum(0) >= s).astype(np.float64)  # classes that can be in every split
    big = 100.0  # a class missing from a split: above the class terms and a few images beyond the tolerance
    onehot = np.zeros((g, s))
    onehot[np.arange(g), assign] = 1
    err = x.T @ onehot - total[:, None] * r[None, :]  # (C, S)
    err_img = m @ onehot - m_total * r  # (S,)
    in_split = hasf.T @ onehot  # (C, S) groups holding each class in each split
    xe = x @ (w[:, None] * err)  # (G, S): sum_c w_c x_gc E_cj
    lose = ht.T @ (eligible[:, None] * (in_split == 1))  # (G, S): eligible classes split j has only in one group
    gain = ht.T @ (eligible[:, None] * (in_split == 0))  # (G, S): eligible classes split j lacks
    self_cost = 2 * (x ** 2) @ w  # (G,)
    rows = np.arange(g)
    m_col = m[:, None]

    def img_cost(e):
        over = np.maximum(np.abs(e) - tol, 0)
        return w_img * e ** 2 + steep * over ** 2

    def move(k, to):
        fr = assign[k]
        cls = np.flatnonzero(has[k])
        cols = [fr, to]
        change = np.stack([-x[k, cls], x[k, cls]], 1)  # (|cls|, 2)
        before = in_split[np.ix_(cls, cols)]
        err[np.ix_(cls, cols)] += change
        in_split[np.ix_(cls, cols)] += np.stack([-np.ones(len(cls)), np.ones(len(cls))], 1)
        after = in_split[np.ix_(cls, cols)]
        xe[:, cols] += xt[cls].T @ (w[cls, None] * change)
        el = eligible[cls, None]
        lose[:, cols] += ht[cls].T @ (el * ((after == 1).astype(float) - (before == 1)))
        gain[:, cols] += ht[cls].T @ (el * ((after == 0).astype(float) - (before == 0)))
        err_img[fr] -= m[k]
        err_img[to] += m[k]
        assign[k] = to

    def missing(counts):  # eligible classes absent, for in_split columns of shape (..., C)
        return ((counts == 0) * eligible).sum(-1)

    def best_swap(class_delta):
        """``(delta, g, h)`` of the best exchange of a group of split a with one of split b, over all a < b."""
        best = (0.0, -1, -1)
        for a in range(s):
            for b in range(a + 1, s):
                ga = np.flatnonzero(assign == a)
                gb = np.flatnonzero(assign == b)
                if not len(ga) or not len(gb):
                    continue
                ga = ga[np.argsort(class_delta[ga, b], kind="stable")[:swap_candidates]]
                gb = gb[np.argsort(class_delta[gb, a], kind="stable")[:swap_candidates]]
                d = class_delta[ga, b][:, None] + class_delta[gb, a][None, :] - 4 * (x[ga] * w) @ x[gb].T
                dm = m[gb][None, :] - m[ga][:, None]  # images a gains (b loses)
                d += img_cost(err_img[a] + dm) + img_cost(err_img[b] - dm) - img_cost(err_img[a]) \
                    - img_cost(err_img[b])
                ina = in_split[:, a][None, None, :] - hasf[ga][:, None, :] + hasf[gb][None, :, :]
                inb = in_split[:, b][None, None, :] + hasf[ga][:, None, :] - hasf[gb][None, :, :]
                d += big * (missing(ina) + missing(inb) - missing(in_split[:, a]) - missing(in_split[:, b]))
                k = int(np.argmin(d))
                i, j = divmod(k, len(gb))
                if d[i, j] < best[0]:
                    best = (float(d[i, j]), int(ga[i]), int(gb[j]))
        return best

    for _ in range(max_moves):
        class_delta = 2 * (xe - xe[rows, assign][:, None]) + self_cost[:, None]
        delta = class_delta.copy()
        src = err_img[assign]
        delta += img_cost(err_img[None, :] + m_col) - img_cost(err_img)[None, :]
        delta += (img_cost(src - m) - img_cost(src))[:, None]
        delta += big * (lose[rows, assign][:, None] - gain)
        delta[rows, assign] = 0
        best = int(np.argmin(delta))
        if delta.flat[best] < -EPS:
            move(*divmod(best, s))
            continue
        if s < 2 or swap_candidates < 1:
            break
        class_delta[rows, assign] = np.inf
        d, k, h = best_swap(class_delta)
        if d >= -EPS:
            break
        a, b = assign[k], assign[h]
        move(k, b)
        move(h, a)
    return assign


def random_split(n: int, fractions: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """``(N,) int64``: a plain random split (shuffle, then cut by image counts) -- what the stratified split is
    measured against."""
    r = np.asarray(fractions, np.float64)
    edges = np.round(np.cumsum(r) * n).astype(np.int64)
    out = np.searchsorted(edges, np.arange(n), side="right")
    return np.minimum(out, len(r) - 1)[rng.permutation(n)]


def split_quality(counts: np.ndarray, assign: np.ndarray, fractions: Sequence[float]) -> dict:
    """How well ``assign`` divides ``counts`` ``(N, C)`` by ``fractions``:

    * ``class_deviation`` ``(C, S)``: each class's fraction of objects in each split minus the asked fraction
      (NaN for a class without objects);
    * ``mean_class_deviation``: the mean of its absolute values; ``max_class_deviation``: the largest;
    * ``image_fractions`` ``(S,)``: the fraction of images in each split;
    * ``missing`` ``[(class, split)]``: classes with at least S images absent from a split."""
    counts = np.asarray(counts)
    r = np.asarray(fractions, np.float64)
    s = len(r)
    onehot = np.zeros((len(counts), s))
    onehot[np.arange(len(counts)), assign] = 1
    per = counts.T @ onehot  # (C, S)
    total = per.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        dev = per / total[:, None] - r[None, :]
    dev[total == 0] = np.nan
    imgs = (counts > 0).T @ onehot
    eligible = (counts > 0).sum(0) >= s
    missing = [(int(c), int(j)) for c, j in zip(*np.nonzero((imgs == 0) & eligible[:, None]))]
    valid = ~np.isnan(dev)
    return {"class_deviation": dev,
            "mean_class_deviation": float(np.abs(dev[valid]).mean()) if valid.any() else 0.0,
            "max_class_deviation": float(np.abs(dev[valid]).max()) if valid.any() else 0.0,
            "image_fractions": onehot.sum(0) / max(len(counts), 1), "missing": missing}


# ---- records ----------------------------------------------------------------------------------------------------

def image_groups(ds, group: str = "none", **dedup_options) -> np.ndarray:
    """``(N,)`` group labels of ``ds.records`` for ``--group``: records of one image file always share a label;
    ``regex:PATTERN`` joins images whose file names (paths relative to the data set when PATTERN has a ``/``) give
    the same first group; ``duplicates`` joins near-duplicates (:func:`dsprep.dedup.find_duplicate_groups`, called
    with ``dedup_options``)."""
    import os
    records = ds.records
    same_file = groups_by_regex([os.path.realpath(r.image_path) if r.image_path else f"\0{i}"
                                 for i, r in enumerate(records)], "^(.*)$")
    if group == "none":
        return same_file
    if group == "duplicates":
        from .dedup import find_duplicate_groups
        return groups_from_sets(len(records), find_duplicate_groups(ds, **dedup_options), same_file)
    if group.startswith("regex:"):
        pattern = group[len("regex:"):]
        root = str(ds.root)
        names = [os.path.relpath(r.image_path, root).replace(os.sep, "/") if "/" in pattern
                 else os.path.basename(r.image_path) for r in records]
        by_name = groups_by_regex(names, pattern)
        order = np.argsort(by_name, kind="stable")
        sets = np.split(order, np.flatnonzero(np.diff(by_name[order])) + 1)
        return groups_from_sets(len(records), [m for m in sets if len(m) > 1], same_file)
    raise ValueError(f"--group: '{group}' is not none, regex:PATTERN or duplicates")


def assign_splits(ds, ratios: Dict[str, float], group: str, rng: np.random.Generator, **dedup_options):
    """``(records, quality)``: copies of ``ds.records`` (in their order) each with its new ``split`` (a name of
    ``ratios``), and :func:`split_quality` of the stratified split, with ``"random"``: that of a random split of the
    same images drawn from the same seed, and ``"groups"``: how many groups kept images together.
    ``dedup_options`` go to :func:`dsprep.dedup.find_duplicate_groups` (``--group duplicates``)."""
    import copy
    names, fractions = list(ratios), np.array(list(ratios.values()))
    counts = class_counts([r.names for r in ds.records], ds.classes)
    labels = image_groups(ds, group, **dedup_options)
    assign = stratified_split(counts, fractions, rng, labels)
    quality = split_quality(counts, assign, fractions)
    quality["random"] = split_quality(counts, random_split(len(counts), fractions, rng), fractions)
    quality["groups"] = int((np.bincount(labels) > 1).sum()) if len(labels) else 0
    quality["classes"] = list(ds.classes)
    out = []
    for rec, k in zip(ds.records, assign.tolist()):
        new = copy.copy(rec)
        new.meta = dict(rec.meta)
        new.meta.pop("splits", None)  # its membership of the source's other split lists no longer holds
        new.split = names[k]
        out.append(new)
    return out, quality


def describe(records, ratios: Dict[str, float], quality: dict):
    """``(lines, counts)``: a line per split (images, objects, share of the images) and one on the class fractions
    against a random split; the counts ``images_<split>``."""
    lines, counts = [], {}
    n = max(len(records), 1)
    for name, f in ratios.items():
        mine = [r for r in records if r.split == name]
        counts[f"images_{name}"] = len(mine)
        objects = sum(len(r) for r in mine)
        lines.append(f"  {name}: {len(mine)} image{'s' * (len(mine) != 1)} ({100 * len(mine) / n:.1f}%, asked "
                     f"{100 * f:.1f}%), {objects} object{'s' * (objects != 1)}")
    rnd = quality["random"]
    lines.append(f"  class fractions off the asked ones: mean {100 * quality['mean_class_deviation']:.2f}, worst "
                 f"{100 * quality['max_class_deviation']:.2f} points (a random split: mean "
                 f"{100 * rnd['mean_class_deviation']:.2f}, worst {100 * rnd['max_class_deviation']:.2f})")
    if quality["groups"]:
        lines.append(f"  {quality['groups']} groups of images kept together")
    missing = {}
    for c, j in quality["missing"]:
        missing.setdefault(quality["classes"][c], []).append(list(ratios)[j])
    for cls, where in missing.items():
        lines.append(f"  class {cls} is in no image of {', '.join(where)} (its images are kept together by --group)")
    return lines, counts


__all__ = ["parse_ratios", "class_counts", "groups_by_regex", "groups_from_sets", "stratified_split",
           "random_split", "split_quality", "image_groups", "assign_splits", "describe"]
