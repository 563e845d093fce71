"""Charts of a data set for ``dsprep info --plots DIR``: objects per class (per split), box width against height,
aspect ratios, objects per image, box centres over the image.  Drawn with matplotlib (the ``[plots]`` extra),
imported only here and only when a chart is made; each chart is returned as PNG bytes (the caller writes them
through :mod:`dsprep.outputs`)."""
from __future__ import annotations

import io
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from .boxstats import Objects
from ..core import DsprepError

DPI = 100
SPLIT_COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]


class MissingExtra(DsprepError):
    exit_code = 2


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or one clear error naming the extra to install."""
    try:
        import matplotlib
    except ImportError as e:
        raise MissingExtra("--plots needs matplotlib: pip install 'dsprep[plots]'") from e
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    # no timestamps or software tags: the same data set makes byte-identical files
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    pyplot().close(fig)
    return buf.getvalue()


def objects_per_class(obj: Objects, splits: Sequence[Optional[str]]) -> bytes:
    """Horizontal bars, one per class (most objects at the top), stacked by split."""
    plt = pyplot()
    split_of = np.array([s or "(no split)" for s in splits], dtype=object)
    names = list(dict.fromkeys(sorted(set(split_of.tolist()), key=_split_order)))
    counts = np.zeros((len(names), len(obj.classes)), np.int64)
    obj_split = split_of[obj.image] if len(obj.image) else np.zeros(0, object)
    for k, name in enumerate(names):
        counts[k] = np.bincount(obj.cls[obj_split == name], minlength=len(obj.classes))
    total = counts.sum(axis=0)
    order = np.argsort(-total, kind="stable")[::-1]
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.32 * len(order) + 1.2)))
    left = np.zeros(len(order))
    y = np.arange(len(order))
    for k, name in enumerate(names):
        ax.barh(y, counts[k, order], left=left, color=SPLIT_COLORS[k % len(SPLIT_COLORS)], label=name, height=0.7)
        left += counts[k, order]
    for yi, t in zip(y, total[order]):
        ax.text(t, yi, f" {t}", va="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels([obj.classes[i] for i in order], fontsize=8)
    ax.set_xlabel("objects")
    _integer_ticks(ax.xaxis)
    ax.set_title("Objects per class")
    ax.set_xlim(0, max(1, total.max(initial=0)) * 1.12)
    if len(names) > 1:
        ax.legend(title="split", fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def _integer_ticks(axis) -> None:
    from matplotlib.ticker import MaxNLocator
    axis.set_major_locator(MaxNLocator(integer=True))


def _plain_log_ticks(ax) -> None:
    """Log axes labelled 1, 2, 5, 10, 20 ... (not 2x10^1), without labels on the minor ticks."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def _split_order(name: str):
    known = {"train": 0, "trainval": 1, "val": 2, "valid": 2, "validation": 2, "test": 3}
    return (known.get(name, 4), name)


def _class_colors(n: int):
    plt = pyplot()
    cmap = plt.get_cmap("tab20" if n > 10 else "tab10")
    return [cmap(i % cmap.N) for i in range(n)]


def width_height(obj: Objects) -> bytes:
    """Box width against height in pixels (log axes), coloured by class (the 10 largest classes; the rest grey)."""
    plt = pyplot()
    wh = np.maximum(obj.wh, 0.5)
    fig, ax = plt.subplots(figsize=(6.5, 6))
    counts = np.bincount(obj.cls, minlength=len(obj.classes))
    top = [i for i in np.argsort(-counts, kind="stable")[:10] if counts[i]]
    alpha = 0.6 if len(wh) < 2000 else 0.25
    size = 10 if len(wh) < 2000 else 3
    rest = ~np.isin(obj.cls, top)
    if rest.any():
        ax.scatter(wh[rest, 0], wh[rest, 1], s=size, c="#999999", alpha=alpha, lw=0, label="other classes")
    for color, i in zip(_class_colors(len(top)), top):
        sel = obj.cls == i
        ax.scatter(wh[sel, 0], wh[sel, 1], s=size, color=color, alpha=alpha, lw=0, label=obj.classes[i])
    if len(wh):
        lo, hi = wh.min() / 1.3, wh.max() * 1.3
        ax.plot([lo, hi], [lo, hi], color="#555555", lw=0.8, ls="--", label="square")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax)
    ax.set_xlabel("box width (px)")
    ax.set_ylabel("box height (px)")
    ax.set_title("Box width against height")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, markerscale=1.5, loc="upper left")
    fig.tight_layout()
    return _png(fig)


def aspect_ratios(obj: Objects) -> bytes:
    """Histogram of width / height on a log scale (1: square)."""
    plt = pyplot()
    wh = np.maximum(obj.wh, 1e-6)
    r = np.log2(wh[:, 0] / wh[:, 1])
    fig, ax = plt.subplots(figsize=(7, 4))
    lim = max(2.0, float(np.ceil(np.abs(r).max(initial=0))))
    ax.hist(r, bins=np.linspace(-lim, lim, 41), color=SPLIT_COLORS[0], edgecolor="white")
    ticks = np.arange(-lim, lim + 1)
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{2 ** t:g}" if t >= 0 else f"1/{2 ** -t:g}" for t in ticks])
    ax.axvline(0, color="#555555", lw=0.8, ls="--")
    ax.set_xlabel("aspect ratio (width / height, log scale)")
    ax.set_ylabel("boxes")
    _integer_ticks(ax.yaxis)
    ax.set_title("Aspect ratios")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def objects_per_image(obj: Objects) -> bytes:
    """Histogram of how many objects each image has (0 included)."""
    plt = pyplot()
    n = np.bincount(obj.image, minlength=len(obj.sizes))
    fig, ax = plt.subplots(figsize=(7, 4))
    top = int(n.max(initial=0))
    if top <= 60:
        bins = np.arange(top + 2) - 0.5
    else:
        bins = np.linspace(-0.5, top + 0.5, 61)
    ax.hist(n, bins=bins, color=SPLIT_COLORS[2], edgecolor="white")
    ax.set_xlabel("objects in the image")
    ax.set_ylabel("images")
    _integer_ticks(ax.yaxis)
    ax.set_title(f"Objects per image (mean {n.mean() if len(n) else 0:.2f}, {int((n == 0).sum())} without objects)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def box_centres(obj: Objects) -> bytes:
    """2-D histogram of box centres as fractions of their image's width and height (image top at the top)."""
    plt = pyplot()
    sizes = obj.sizes[obj.image] if len(obj.image) else np.ones((0, 2))
    ok = (sizes > 0).all(axis=1)
    c = (obj.boxes[ok, 0:2] + obj.boxes[ok, 2:4]) / 2 / sizes[ok]
    fig, ax = plt.subplots(figsize=(6, 5.4))
    h = ax.hist2d(c[:, 0], c[:, 1], bins=25, range=[[0, 1], [0, 1]], cmap="viridis", cmin=None)
    bar = fig.colorbar(h[3], ax=ax, label="boxes")
    _integer_ticks(bar.ax.yaxis)
    ax.set_xlim(0, 1)
    ax.set_ylim(1, 0)
    ax.set_aspect("equal")
    ax.set_xlabel("centre x / image width")
    ax.set_ylabel("centre y / image height")
    ax.set_title("Box centres over the image")
    fig.tight_layout()
    return _png(fig)


CHARTS: Dict[str, Callable] = {
    "objects_per_class.png": None,   # needs the splits: see make_charts
    "box_width_height.png": width_height,
    "aspect_ratios.png": aspect_ratios,
    "objects_per_image.png": objects_per_image,
    "box_centres.png": box_centres,
}


def make_charts(obj: Objects, splits: Sequence[Optional[str]]) -> Dict[str, bytes]:
    """``{file name: PNG bytes}`` of every chart."""
    out = {"objects_per_class.png": objects_per_class(obj, splits)}
    for name, fn in CHARTS.items():
        if fn is not None:
            out[name] = fn(obj)
    return out


def chart_names() -> List[str]:
    return list(CHARTS)


def confusion_matrix(hist: np.ndarray, classes: Sequence[str]) -> bytes:
    """``eval --metric miou --plot``: the confusion matrix (rows: ground truth, columns: prediction) normalised by
    row -- the share of each class's pixels predicted as each class -- over the classes that have pixels or
    predictions; the diagonal is each class's accuracy."""
    plt = pyplot()
    hist = np.asarray(hist, np.float64)
    used = np.flatnonzero((hist.sum(1) > 0) | (hist.sum(0) > 0))
    sub = hist[np.ix_(used, used)]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(sub.sum(1, keepdims=True) > 0, sub / sub.sum(1, keepdims=True), 0.0)
    names = [classes[i] for i in used]
    n = len(names)
    size = max(4.0, 0.42 * n + 2.2)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(names, rotation=90, fontsize=8)
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    if n <= 25:
        for y in range(n):
            for x in range(n):
                if share[y, x] >= 0.005:
                    ax.text(x, y, f"{share[y, x]:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if share[y, x] > 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the class's pixels")
    ax.set_title("confusion (rows sum to 1)")
    fig.tight_layout()
    return _png(fig)
