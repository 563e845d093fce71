"""merge-dota's vectorized kernels against slow, obviously correct references; --workers gives the same files."""
import numpy as np
import pytest
import shapely
from click.testing import CliRunner

from dsprep.cli import main
from dsprep.ops.merge import (convex_intersection_area, is_convex, nms, overlap_pairs, pair_iou, parse_task1)


def _quads(rng, m, spread=60.0, jitter=0.4):
    c = rng.uniform(0, spread, (m, 1, 2))
    w, h = rng.uniform(2, 30, (m, 1)), rng.uniform(2, 30, (m, 1))
    a = rng.uniform(0, np.pi, (m, 1))
    corners = np.array([(-.5, -.5), (.5, -.5), (.5, .5), (-.5, .5)])[None]
    dx, dy = np.stack([np.cos(a), np.sin(a)], -1), np.stack([-np.sin(a), np.cos(a)], -1)
    q = c + corners[..., :1] * w[..., None] * dx + corners[..., 1:] * h[..., None] * dy
    return q + rng.uniform(-jitter, jitter, q.shape)


def _box(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


def test_convex_intersection_area_matches_shapely():
    rng = np.random.default_rng(0)
    a, b = _quads(rng, 3000), _quads(rng, 3000)
    b[::2] = b[::2, ::-1]  # either orientation
    ref = shapely.area(shapely.intersection(shapely.polygons(a), shapely.polygons(b)))
    assert np.allclose(convex_intersection_area(a, b), ref, rtol=0, atol=1e-9)


def test_convex_intersection_area_on_shared_edges():
    """Integer boxes: identical, touching, nested, sharing whole or partial edges, in every start and direction."""
    rng = np.random.default_rng(1)
    pairs = [(_box(0, 0, 10, 10), _box(0, 0, 10, 10)), (_box(0, 0, 10, 10), _box(10, 0, 20, 10)),
             (_box(0, 0, 10, 10), _box(10, 10, 20, 20)), (_box(0, 0, 10, 10), _box(0, 0, 5, 10))]
    for k in range(2000):
        v = rng.integers(0, 6, 8)
        a = _box(min(v[0], v[2]), min(v[1], v[3]), max(v[0], v[2]) + 1, max(v[1], v[3]) + 1)
        b = _box(min(v[4], v[6]), min(v[5], v[7]), max(v[4], v[6]) + 1, max(v[5], v[7]) + 1)
        pairs.append((np.roll(a, int(rng.integers(4)), 0)[::1 if k % 2 else -1], np.roll(b, int(rng.integers(4)), 0)))
    a, b = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    ref = shapely.area(shapely.intersection(shapely.polygons(a), shapely.polygons(b)))
    assert np.array_equal(convex_intersection_area(a, b), ref)
    assert convex_intersection_area(a[:4], b[:4]).tolist() == [100, 0, 0, 50]


def test_is_convex():
    sq = _box(0, 0, 10, 10)
    bowtie = sq[[0, 2, 1, 3]]
    dart = np.array([[0, 0], [10, 0], [2, 2], [0, 10]], float)
    flat = np.array([[0, 0], [5, 0], [10, 0], [3, 0]], float)
    assert is_convex(np.stack([sq, sq[::-1], bowtie, dart, flat])).tolist() == [True, True, False, False, False]


def test_overlap_pairs_is_the_brute_force_set():
    rng = np.random.default_rng(2)
    q = _quads(rng, 400, spread=200)
    q[::50] = np.round(q[::50])  # some integer boxes that touch exactly
    boxes = np.concatenate([q.min(1), q.max(1)], 1)
    groups = rng.integers(0, 3, 400)
    i, j = overlap_pairs(boxes, groups)
    got = set(zip(i.tolist(), j.tolist()))
    want = set()
    for a in range(400):
        for b in range(a + 1, 400):
            ix = min(boxes[a, 2], boxes[b, 2]) - max(boxes[a, 0], boxes[b, 0])
            iy = min(boxes[a, 3], boxes[b, 3]) - max(boxes[a, 1], boxes[b, 1])
            if ix > 0 and iy > 0 and groups[a] == groups[b]:
                want.add((a, b))
    assert got == want and len(want) > 100


def _slow_nms(polys, scores, thresh):
    """Greedy NMS, one pair at a time, shapely IoU (make_valid), the devkit's box pre-filter."""
    geoms = [shapely.make_valid(shapely.Polygon(p)) for p in polys]
    order = sorted(range(len(polys)), key=lambda k: -scores[k])
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        rest = []
        for j in order:
            bi, bj = polys[i], polys[j]
            ix = min(bi[:, 0].max(), bj[:, 0].max()) - max(bi[:, 0].min(), bj[:, 0].min())
            iy = min(bi[:, 1].max(), bj[:, 1].max()) - max(bi[:, 1].min(), bj[:, 1].min())
            iou = 0.0
            if ix > 0 and iy > 0:
                inter = geoms[i].intersection(geoms[j]).area
                union = geoms[i].area + geoms[j].area - inter
                iou = inter / union if union > 0 else 0.0
            if iou <= thresh:
                rest.append(j)
        order = rest
    return keep


@pytest.mark.parametrize("thresh", [0.1, 0.3, 0.7])
def test_nms_matches_slow_reference(thresh):
    rng = np.random.default_rng(3)
    base = _quads(rng, 120, spread=150)
    polys = np.concatenate([base + rng.uniform(-2, 2, base.shape) for _ in range(3)])  # duplicates, as merged tiles
    polys[::37] = polys[::37][:, [0, 2, 1, 3]]  # a few bow-ties
    scores = rng.permutation(len(polys)) / len(polys)
    assert nms(polys, scores, thresh).tolist() == _slow_nms(polys, scores, thresh)
    box = nms(polys, scores, thresh, iou="box")
    assert len(box) and set(box.tolist()) <= set(range(len(polys)))


def test_pair_iou_non_convex_through_shapely():
    sq = _box(0, 0, 10, 10)
    bowtie = sq[[0, 2, 1, 3]]
    polys = np.stack([sq, bowtie, _box(0, 0, 10, 5)])
    got = pair_iou(polys, np.array([0, 0]), np.array([1, 2]))
    ref_bow = shapely.make_valid(shapely.Polygon(bowtie))
    inter = shapely.Polygon(sq).intersection(ref_bow).area
    assert np.allclose(got, [inter / (100 + ref_bow.area - inter), 0.5])


def test_parse_task1_fast_and_careful_paths():
    text = "P1__1__0___0 0.9 1 2 3 2 3 4 1 4\nP1__0.5__824___0 0.8 0 0 2 0 2 2 0 2\n"
    d = parse_task1(text)
    assert d.stems == ["P1", "P1"] and d.score_text == ["0.9", "0.8"]
    assert d.polys[1].tolist() == [[1648, 0], [1652, 0], [1652, 4], [1648, 4]]
    with pytest.raises(Exception, match=r"x.txt:3: expected 10 fields"):
        parse_task1(text + "P1__1__0___0 0.7 1 2 3\n\n  \n", "x.txt")
    with pytest.raises(Exception, match=r"x.txt:4: non-numeric"):
        parse_task1("\n" + text + "P1__1__0___0 0.7 a 2 3 2 3 4 1 4\n", "x.txt")
    with pytest.raises(Exception, match=r"x.txt:2: 'bad' is not a tile name"):
        parse_task1(text.replace("P1__0.5__824___0", "bad"), "x.txt")
    assert parse_task1(text.replace("\n", "\r\n") + "  \n").stems == ["P1", "P1"]


def test_merge_workers_give_the_same_files(tmp_path):
    rng = np.random.default_rng(4)
    src = tmp_path / "dets"
    src.mkdir()
    for cls in ("car", "ship"):
        lines = []
        for img in range(6):
            q = _quads(rng, 40, spread=900)
            for copy in range(2):
                for k, poly in enumerate(q + rng.uniform(-1, 1, q.shape)):
                    left, up = (int(v) for v in (np.floor(poly.min(0) / 824) * 824).clip(0))
                    xy = " ".join(f"{v:.2f}" for v in (poly - (left, up)).reshape(-1))
                    lines.append(f"I{img}__1__{left}___{up} {rng.random():.6f} {xy}\n")
        (src / f"Task1_{cls}.txt").write_text("".join(lines))
    for j in ("1", "2"):
        res = CliRunner().invoke(main, ["merge-dota", str(src), "--out", str(tmp_path / f"o{j}"), "-q", "-j", j],
                                 catch_exceptions=False)
        assert res.exit_code == 0, res.output
    for cls in ("car", "ship"):
        a = (tmp_path / "o1" / f"Task1_{cls}.txt").read_text()
        assert a == (tmp_path / "o2" / f"Task1_{cls}.txt").read_text() and a


def test_format_task1_matches_the_number_rule():
    from dsprep.formats.common import number_text as _num
    from dsprep.ops.merge import Task1Detections, format_task1
    rng = np.random.default_rng(5)
    v = np.concatenate([rng.uniform(-1e3, 1e3, 400), np.round(rng.uniform(-1e3, 1e3, 400)),
                        [-0.0, 0.0, 1e15, 2e15 + 0.5, 1e16, 1e-20, -1e16, 3.0]])
    n = len(v) // 8
    dets = Task1Detections(["x"] * n, np.zeros(n), v[:8 * n].reshape(-1, 4, 2), [f"0.{k}" for k in range(n)])
    got = format_task1(dets, {"a": np.arange(n), "b": np.array([2, 0]), "c": np.zeros(0, np.int64)})
    want = "".join(f"{stem} 0.{r} {' '.join(_num(x) for x in v[8 * r:8 * r + 8])}\n"
                   for stem, rows in (("a", range(n)), ("b", [2, 0])) for r in rows)
    assert got == want
