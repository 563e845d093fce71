"""dsprep.geometry: every vectorized kernel against a slow, obviously-correct loop over the same inputs."""
import math
from fractions import Fraction

import numpy as np
import pytest

from dsprep import geometry as G

RNG = np.random.default_rng(21)


def random_boxes(n, rng=RNG, integral=False):
    xy = rng.uniform(-20, 120, (n, 2))
    wh = rng.uniform(0, 60, (n, 2)) * (rng.random((n, 1)) > 0.1)  # some empty boxes
    b = np.concatenate([xy, xy + wh], 1)
    return np.round(b) if integral else b


def random_quads(n, rng=RNG):
    q = rng.integers(-5, 6, (n, 4, 2)).astype(np.float64)  # small integers: many touching and collinear cases
    q[: n // 2] = rng.uniform(-50, 50, (n // 2, 4, 2))
    return q


# ---- slow references --------------------------------------------------------------------------------------------

def slow_signed_area(ring):
    return sum(Fraction(x0) * Fraction(y1) - Fraction(x1) * Fraction(y0)
               for (x0, y0), (x1, y1) in zip(ring.tolist(), np.roll(ring, -1, 0).tolist())) / 2


def slow_turn(a, b, c):
    v = (Fraction(b[0]) - Fraction(a[0])) * (Fraction(c[1]) - Fraction(a[1])) - \
        (Fraction(b[1]) - Fraction(a[1])) * (Fraction(c[0]) - Fraction(a[0]))
    return (v > 0) - (v < 0)


def slow_cross(p1, p2, p3, p4):
    return slow_turn(p1, p2, p3) * slow_turn(p1, p2, p4) < 0 and slow_turn(p3, p4, p1) * slow_turn(p3, p4, p2) < 0


def slow_iou(a, b, plus_one=False):
    e = 1 if plus_one else 0
    iw = max(min(a[2], b[2]) - max(a[0], b[0]) + e, 0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]) + e, 0)
    union = (a[2] - a[0] + e) * (a[3] - a[1] + e) + (b[2] - b[0] + e) * (b[3] - b[1] + e) - iw * ih
    return math.nan if union == 0 else iw * ih / union


# ---- the kernels ------------------------------------------------------------------------------------------------

def test_box_quad_conversion():
    b = random_boxes(50)
    q = G.boxes_to_polygons(b)
    for box, quad in zip(b.tolist(), q.tolist()):
        x0, y0, x1, y1 = box
        assert quad == [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
    np.testing.assert_array_equal(G.polygons_to_boxes(q), b)
    quads = random_quads(40)
    want = [[min(p[0] for p in qd), min(p[1] for p in qd), max(p[0] for p in qd), max(p[1] for p in qd)]
            for qd in quads.tolist()]
    assert G.polygons_to_boxes(quads).tolist() == want


@pytest.mark.parametrize("value, shape", [([], (0, 4)), (np.zeros((0, 4)), (0, 4)), ([[1, 2, 3, 4]], (1, 4))])
def test_as_boxes_shapes(value, shape):
    assert G.as_boxes(value).shape == shape and G.as_boxes(value).dtype == np.float64


@pytest.mark.parametrize("bad", [[1, 2, 3, 4], [[1, 2, 3]], np.zeros((2, 4, 1))])
def test_as_boxes_names_the_argument(bad):
    with pytest.raises(ValueError, match=r"det must have shape \(N, 4\)"):
        G.as_boxes(bad, "det")


@pytest.mark.parametrize("k", [3, 4, 7])
def test_shoelace_against_exact_fractions(k):
    rings = RNG.uniform(-100, 100, (30, k, 2))
    got = G.signed_area(rings)
    for ring, g in zip(rings, got.tolist()):
        want = float(slow_signed_area(ring))
        assert g == pytest.approx(want, rel=1e-9, abs=1e-9)
        assert G.ring_area(ring) == pytest.approx(abs(want), rel=1e-9, abs=1e-9)
    np.testing.assert_array_equal(G.polygon_area(rings), np.abs(got))
    square = np.array([[0, 0], [2, 0], [2, 2], [0, 2]], np.float64)
    assert G.signed_area(square) == 4.0 and G.signed_area(square[::-1]) == -4.0


def test_segments_cross_and_self_intersecting_against_exact_turns():
    q = random_quads(400)
    got = G.segments_cross(q[:, 0], q[:, 1], q[:, 2], q[:, 3])
    assert got.tolist() == [slow_cross(*p) for p in q.tolist()]
    bow = G.self_intersecting(q)
    assert bow.tolist() == [slow_cross(p[0], p[1], p[2], p[3]) or slow_cross(p[1], p[2], p[3], p[0])
                            for p in q.tolist()]
    assert 20 < bow.sum() < 380  # both kinds were drawn


def test_crossing_point_lies_on_both_segments():
    q = random_quads(400)
    crosses, x = G.crossing_point(q[:, 0], q[:, 1], q[:, 2], q[:, 3])
    assert crosses.tolist() == [slow_cross(*p) for p in q.tolist()]
    for (a, b, c, d), hit, p in zip(q, crosses, x):
        if hit:  # on the line through a-b and on the line through c-d
            for u, v in ((a, b), (c, d)):
                assert abs((v[0] - u[0]) * (p[1] - u[1]) - (v[1] - u[1]) * (p[0] - u[0])) < 1e-6 * (1 + abs(p).max()) ** 2


@pytest.mark.parametrize("plus_one", [False, True])
def test_box_iou_matrix_and_pairs_against_the_loop(plus_one):
    a, b = random_boxes(30, integral=plus_one), random_boxes(20, integral=plus_one)
    got = G.box_iou(a, b, plus_one)
    want = np.array([[slow_iou(x, y, plus_one) for y in b.tolist()] for x in a.tolist()])
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)
    pairs = G.box_iou_pairs(a[:20], b, plus_one)
    np.testing.assert_allclose(pairs, [slow_iou(x, y, plus_one) for x, y in zip(a[:20].tolist(), b.tolist())],
                               rtol=1e-12, equal_nan=True)
    assert G.box_iou(np.zeros((0, 4)), b).shape == (0, 20)


def test_coco_iou_pairs_against_the_loop():
    det, gt = random_boxes(200), random_boxes(200)
    crowd = RNG.random(200) < 0.3
    got = G.coco_iou_pairs(det, gt, crowd)
    for d, g, c, v in zip(det.tolist(), gt.tolist(), crowd.tolist(), got.tolist()):
        w, h = min(d[2], g[2]) - max(d[0], g[0]), min(d[3], g[3]) - max(d[1], g[1])
        if w <= 0 or h <= 0:
            assert v == 0.0
            continue
        da, ga = (d[2] - d[0]) * (d[3] - d[1]), (g[2] - g[0]) * (g[3] - g[1])
        assert v == pytest.approx(w * h / (da if c else da + ga - w * h), rel=1e-12)


@pytest.mark.parametrize("pad", [0, 3])
def test_pixel_bounds_against_the_loop(pad):
    b = random_boxes(100)
    got = G.pixel_bounds(b, 100, 80, pad)
    for box, out in zip(b.tolist(), got.tolist()):
        x0, y0, x1, y1 = box
        want = [min(max(math.floor(x0) - pad, 0), 100), min(max(math.floor(y0) - pad, 0), 80),
                min(max(math.ceil(x1) + pad, 0), 100), min(max(math.ceil(y1) + pad, 0), 80)]
        assert out == want
    assert got.dtype == np.int64
