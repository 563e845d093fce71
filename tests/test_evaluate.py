"""dsprep.evaluation.metrics: the reference evaluators' numbers, the kernels against slow obviously-correct versions."""
import json

import numpy as np
import pytest
import shapely

from dsprep.formats.coco import parse_coco
from dsprep.core import Dataset
from dsprep.evaluation.results import align, evaluate_paths, evaluation_order, ground_truth, parse_coco_results, \
    DetectionSet
from dsprep.evaluation.metrics import (FP, IGNORED, TP, Detections, GroundTruth, evaluate, evaluate_coco, format_table,
                             group_pairs, image_outcome, polygon_iou_pairs, quad_lobes, result_document, voc_ap)
from dsprep.geometry import box_iou, box_iou_pairs, coco_iou_pairs

from helpers import pycocotools_eval

# ------------------------------------------------------------------------------------------------------------------
# conformance: the numbers the reference evaluators wrote into eval_ref/ (see its README)

CASES = [("voc07", "voc", "voc/results", "voc/expected_voc07.json"),
         ("voc12", "voc", "voc/results", "voc/expected_voc12.json"),
         ("dota-task1", "dota", "dota/task1", "dota/expected_task1.json"),
         ("dota-task2", "dota", "dota/task2", "dota/expected_task2.json")]


@pytest.mark.parametrize("metric,gt,dets,expected", CASES)
def test_per_class_ap_matches_the_devkits(shared, metric, gt, dets, expected):
    ref = shared / "eval_ref"
    exp = json.loads((ref / expected).read_text())
    ev = evaluate_paths(ref / gt, ref / dets, metric)
    got = {c.name: c for c in ev.result.classes}
    assert sorted(got) == sorted(exp["classes"])
    for name, e in exp["classes"].items():
        c = got[name]
        assert abs(c.ap - e["ap"]) < 1e-6, (name, c.ap, e["ap"])
        assert abs(c.max_recall - e["max_recall"]) < 1e-6
        assert (c.ground_truths, c.ignored, c.detections) == (e["ground_truths"], e["difficult"], e["detections"])
    assert abs(ev.result.mAP - exp["mAP"]) < 1e-6
    assert ev.unmatched.unknown_images == ev.unmatched.unknown_classes == 0


def test_coco_twelve_numbers_match_pycocotools_reference(shared):
    ref = shared / "eval_ref" / "coco"
    exp = json.loads((ref / "expected_coco.json").read_text())
    ev = evaluate_paths(ref / "instances_gt.json", ref / "results.json")
    assert ev.result.metric == "coco"  # the default for COCO ground truth
    got = np.array(list(ev.result.coco.values()))
    assert np.abs(got - np.array(exp["stats"])).max() < 1e-6
    assert abs(ev.result.mAP - exp["stats"][0]) < 1e-6
    # the printed summary lines are COCOeval's, to the digit
    assert format_table(ev.result).splitlines()[-12:] == exp["summary"]


def test_bow_tie_detections_get_the_devkits_iou(shared):
    """eval_ref/README: the devkit's iou_poly for two self-intersecting detections, and the shapes' own IoU."""
    from dsprep.dota import read_dota
    ref = shared / "eval_ref" / "dota"
    lines = (ref / "task1" / "Task1_storage-tank.txt").read_text().splitlines()
    for lineno, devkit, valid in ((27, 0.608303, 0.314068), (23, 0.124270, 0.570533)):
        f = lines[lineno - 1].split()
        quad = np.array(f[2:], float).reshape(1, 4, 2)
        rec = read_dota(ref / "labelTxt" / f"{f[0]}.txt")[0]
        objects = rec.polygons[[k for k, n in enumerate(rec.names) if n == "storage-tank"]]
        ia, ib = np.zeros(len(objects), int), np.arange(len(objects))
        assert abs(polygon_iou_pairs(quad, objects, ia, ib, "devkit").max() - devkit) < 1e-6
        assert abs(polygon_iou_pairs(quad, objects, ia, ib, "valid").max() - valid) < 1e-6


def test_polygon_iou_valid_mode_changes_only_the_bow_tie_class(shared):
    ref = shared / "eval_ref"
    exp = json.loads((ref / "dota/expected_task1.json").read_text())
    ev = evaluate_paths(ref / "dota", ref / "dota/task1", "dota-task1", polygon_iou="valid")
    for c in ev.result.classes:
        if c.name == "storage-tank":
            assert abs(c.ap - exp["classes"][c.name]["ap"]) > 1e-3  # the two bow ties swap outcome
        else:
            assert abs(c.ap - exp["classes"][c.name]["ap"]) < 1e-12


# ------------------------------------------------------------------------------------------------------------------
# kernels against slow, obviously correct versions

def _slow_box_iou(a, b, e):
    iw = max(min(a[2], b[2]) - max(a[0], b[0]) + e, 0.0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]) + e, 0.0)
    inter = iw * ih
    union = (a[2] - a[0] + e) * (a[3] - a[1] + e) + (b[2] - b[0] + e) * (b[3] - b[1] + e) - inter
    return inter / union


def _random_boxes(rng, n, integer):
    xy = rng.integers(0, 50, (n, 2)).astype(float)
    wh = rng.integers(1, 30, (n, 2)).astype(float)
    if not integer:
        xy += rng.random((n, 2))
        wh += rng.random((n, 2))
    return np.concatenate([xy, xy + wh], 1)


@pytest.mark.parametrize("plus_one", [False, True])
@pytest.mark.parametrize("integer", [False, True])
def test_box_iou_against_a_loop(plus_one, integer):
    rng = np.random.default_rng(3)
    a, b = _random_boxes(rng, 40, integer), _random_boxes(rng, 30, integer)
    e = 1.0 if plus_one else 0.0
    slow = np.array([[_slow_box_iou(x, y, e) for y in b] for x in a])
    fast = box_iou(a, b, plus_one)
    assert np.array_equal(fast, slow)  # the same operations in the same order: bit for bit
    assert np.array_equal(box_iou_pairs(a[:30], b, plus_one), np.diag(slow[:30]))


def test_box_iou_input_checks_name_shapes():
    with pytest.raises(ValueError, match=r"shape \(N, 4\), but got shape \(2, 3\)"):
        box_iou(np.zeros((2, 3)), np.zeros((1, 4)))


def test_coco_iou_against_a_loop_with_crowds():
    rng = np.random.default_rng(4)
    d, g = _random_boxes(rng, 300, False), _random_boxes(rng, 300, False)
    crowd = rng.random(300) < 0.3
    slow = []
    for x, y, c in zip(d, g, crowd):
        w = min(x[2], y[2]) - max(x[0], y[0])
        h = min(x[3], y[3]) - max(x[1], y[1])
        if w <= 0 or h <= 0:
            slow.append(0.0)
            continue
        da = (x[2] - x[0]) * (x[3] - x[1])
        slow.append(w * h / (da if c else da + (y[2] - y[0]) * (y[3] - y[1]) - w * h))
    assert np.array_equal(coco_iou_pairs(d, g, crowd), np.array(slow))
    assert (np.array(slow) > 0).sum() > 20  # the case is not all misses


def _slow_devkit_polyiou(p, q):
    """DOTA_devkit's way, restated one triangle pair at a time: orient both quads counter-clockwise (by signed
    area), fan each into triangles from the origin, and add up every triangle pair's intersection area with the
    sign of the two triangles' orientations."""
    def signed(poly):
        return 0.5 * sum(poly[i][0] * poly[(i + 1) % len(poly)][1] - poly[(i + 1) % len(poly)][0] * poly[i][1]
                         for i in range(len(poly)))
    p, q = [tuple(v) for v in p], [tuple(v) for v in q]
    if signed(p) < 0:
        p = p[::-1]
    if signed(q) < 0:
        q = q[::-1]
    inter = 0.0
    for i in range(4):
        t1 = [(0.0, 0.0), p[i], p[(i + 1) % 4]]
        s1 = signed(t1)
        if abs(s1) < 1e-12:
            continue
        for j in range(4):
            t2 = [(0.0, 0.0), q[j], q[(j + 1) % 4]]
            s2 = signed(t2)
            if abs(s2) < 1e-12:
                continue
            inter += np.sign(s1) * np.sign(s2) * shapely.Polygon(t1).intersection(shapely.Polygon(t2)).area
    return inter / (abs(signed(p)) + abs(signed(q)) - inter)


def _random_quads(rng, n, bow_ties=0.2, concave=0.1):
    c = rng.uniform(20, 80, (n, 2))
    w, h, a = rng.uniform(5, 40, n), rng.uniform(5, 40, n), rng.uniform(0, np.pi, n)
    dx = np.stack([-w, w, w, -w], 1) / 2
    dy = np.stack([-h, -h, h, h], 1) / 2
    q = np.stack([c[:, :1] + dx * np.cos(a)[:, None] - dy * np.sin(a)[:, None],
                  c[:, 1:] + dx * np.sin(a)[:, None] + dy * np.cos(a)[:, None]], 2)
    q += rng.normal(0, 2, q.shape)  # not quite rectangles: lobes of unequal size
    bow = rng.random(n) < bow_ties
    q[bow] = q[bow][:, [0, 2, 1, 3]]
    cav = ~bow & (rng.random(n) < concave)
    q[cav, 1] = (q[cav, 0] + q[cav, 2]) / 2 * 0.7 + c[cav] * 0.3  # a dent: concave, still simple
    flip = rng.random(n) < 0.5  # either direction
    q[flip] = q[flip][:, ::-1]
    return np.round(q, 1)


def test_polygon_iou_devkit_mode_against_the_triangle_fan():
    rng = np.random.default_rng(5)
    a, b = _random_quads(rng, 60), _random_quads(rng, 60)
    ia, ib = np.repeat(np.arange(60), 60), np.tile(np.arange(60), 60)
    fast = polygon_iou_pairs(a, b, ia, ib, "devkit")
    sel = np.flatnonzero(fast != 0)[:400]
    slow = np.array([_slow_devkit_polyiou(a[i], b[j]) for i, j in zip(ia[sel], ib[sel])])
    assert len(sel) > 100 and (fast[sel] < 0).any()  # overlapping pairs, some with a bow tie's negative IoU
    assert np.allclose(fast[sel], slow, rtol=0, atol=1e-9)
    # where the shapes do not meet, the fan's signed pieces cancel (to rounding)
    assert all(abs(_slow_devkit_polyiou(a[i], b[j])) < 1e-9 for i, j in list(zip(ia[fast == 0], ib[fast == 0]))[:30])


def test_polygon_iou_of_simple_quads_is_the_shapes_iou():
    rng = np.random.default_rng(6)
    a, b = _random_quads(rng, 80, bow_ties=0), _random_quads(rng, 80, bow_ties=0)
    simple = shapely.is_valid(shapely.polygons(a)) & shapely.is_valid(shapely.polygons(b))
    a, b = a[simple], b[simple]
    assert len(a) > 60
    devkit = polygon_iou_pairs(a, b, mode="devkit")
    valid = polygon_iou_pairs(a, b, mode="valid")
    pa, pb = shapely.polygons(a), shapely.polygons(b)
    direct = shapely.area(shapely.intersection(pa, pb)) / shapely.area(shapely.union(pa, pb))
    assert np.allclose(devkit, direct, atol=1e-12) and np.allclose(valid, direct, atol=1e-12)


def test_quad_lobes_split_a_bow_tie_in_two_weighted_triangles():
    square_tie = np.array([[[0, 0], [10, 10], [10, 0], [0, 10]]], float)  # edges 0-1 and 2-3 cross at (5, 5)
    lobes, weights, area = quad_lobes(square_tie)
    assert area[0] == 0 and sorted(weights[0]) == [-1, 1]
    assert {tuple(map(tuple, lobe[:3])) for lobe in lobes[0]} == {((5, 5), (10, 10), (10, 0)),
                                                                  ((5, 5), (0, 10), (0, 0))}
    # equal lobes of opposite sign cancel: the devkit sees no overlap with the square they came from
    square = np.array([[[0, 0], [10, 0], [10, 10], [0, 10]]], float)
    assert polygon_iou_pairs(square_tie, square, mode="devkit")[0] == 0
    assert polygon_iou_pairs(square_tie, square, mode="valid")[0] == pytest.approx(0.5)


def test_group_pairs_against_brute_force():
    rng = np.random.default_rng(7)
    dk, gk = rng.integers(0, 8, 50), rng.integers(0, 8, 40)
    d, g = group_pairs(dk, gk)
    assert list(zip(d, g)) == [(i, j) for i in range(50) for j in range(40) if dk[i] == gk[j]]


def _slow_voc_ap(rec, prec, use_07):
    if use_07:
        total = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            ok = [p for r, p in zip(rec, prec) if r >= t]
            total = total + (max(ok) if ok else 0) / 11.0
        return total
    r = [0.0] + list(rec) + [1.0]
    p = [0.0] + list(prec) + [0.0]
    for i in range(len(p) - 2, -1, -1):
        p[i] = max(p[i], p[i + 1])
    return sum((r[i + 1] - r[i]) * p[i + 1] for i in range(len(r) - 1) if r[i + 1] != r[i])


@pytest.mark.parametrize("use_07", [True, False])
def test_voc_ap_against_a_loop(use_07):
    rng = np.random.default_rng(8)
    for _ in range(20):
        hits = rng.random(rng.integers(0, 40)) < 0.6
        tp = np.cumsum(hits).astype(float)
        fp = np.cumsum(~hits).astype(float)
        rec, prec = tp / 25.0, tp / np.maximum(tp + fp, np.finfo(float).eps)
        assert voc_ap(rec, prec, use_07) == pytest.approx(_slow_voc_ap(rec, prec, use_07), abs=1e-15)


# ------------------------------------------------------------------------------------------------------------------
# the VOC / DOTA evaluation against a one-detection-at-a-time restatement of the devkits' loop

def _slow_pascal(gt_raw, det_raw, metric, thr=0.5):
    """Per class: detections in ``argsort(-score)`` order, one at a time; the best object of the same image and
    class (first on a tie, NaN poisons the max); difficult -> nothing, taken -> FP, else TP.  Boxes here are
    in the evaluator's own file numbers (VOC: 1-based pixels)."""
    g_img, g_lab, g_geom, g_diff = gt_raw
    d_img, d_lab, d_score, d_geom = det_raw
    aps = {}
    for k in sorted(set(g_lab.tolist()) | set(d_lab.tolist())):
        idx = np.flatnonzero(d_lab == k)
        order = idx[np.argsort(-d_score[idx])]
        npos = int(((g_lab == k) & ~g_diff).sum())
        taken = set()
        tp, fp = [], []
        for d in order:
            objs = [j for j in range(len(g_lab)) if g_lab[j] == k and g_img[j] == d_img[d]]
            best, jbest = -np.inf, None
            for j in objs:
                if metric == "dota-task1":
                    a, b = d_geom[d].reshape(4, 2), g_geom[j].reshape(4, 2)
                    if _slow_box_iou(np.r_[a.min(0), a.max(0)], np.r_[b.min(0), b.max(0)], 1.0) <= 0:
                        continue
                    v = _slow_devkit_polyiou(a, b)
                else:
                    gb = np.trunc(g_geom[j]) if metric == "dota-task2" else g_geom[j]
                    v = _slow_box_iou(d_geom[d], gb, 1.0)
                if np.isnan(v) or np.isnan(best):
                    best = np.nan
                elif v > best:
                    best, jbest = v, j
            if best > thr:
                if g_diff[jbest]:
                    tp.append(0), fp.append(0)
                elif jbest in taken:
                    tp.append(0), fp.append(1)
                else:
                    taken.add(jbest)
                    tp.append(1), fp.append(0)
            else:
                tp.append(0), fp.append(1)
        if npos == 0:
            aps[k] = None
            continue
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        rec = tp / npos
        prec = tp / np.maximum(tp + fp, np.finfo(float).eps)
        aps[k] = _slow_voc_ap(rec, prec, metric != "voc12")
    return aps


def _random_pascal(rng, metric, n_img=6, ties=False):
    g_img, g_lab, g_geom, g_diff = [], [], [], []
    d_img, d_lab, d_geom = [], [], []
    quads = metric == "dota-task1"
    for i in range(n_img):
        n = rng.integers(0, 9)
        geom = _random_quads(rng, n).reshape(n, 8) if quads else _random_boxes(rng, n, integer=bool(i % 2))
        if metric == "dota-task2":
            geom = geom + rng.random(geom.shape) * (i % 2)  # float labels: the devkit truncates them
        lab = rng.integers(0, 3, n)
        g_img += [i] * n
        g_lab += list(lab)
        g_geom += list(geom)
        g_diff += list(rng.random(n) < 0.15)
        for j in range(n):
            for _ in range(rng.integers(0, 3)):  # copies, noisy copies, duplicates
                noise = rng.normal(0, rng.choice([0, 1.5, 4]), geom[j].shape)
                d_geom.append(np.round(geom[j] + noise, 1))
                d_img.append(i)
                d_lab.append(lab[j] if rng.random() < 0.9 else rng.integers(0, 3))
        for _ in range(rng.integers(0, 4)):  # false positives
            d_geom.append(_random_quads(rng, 1).reshape(8) if quads else _random_boxes(rng, 1, False)[0])
            d_img.append(i)
            d_lab.append(rng.integers(0, 3))
    n_det = len(d_img)
    scores = np.round(rng.random(n_det), 1) if ties else rng.permutation(n_det) / max(n_det, 1)
    gt = (np.array(g_img, int), np.array(g_lab, int), np.array(g_geom, float).reshape(len(g_img), -1),
          np.array(g_diff, bool))
    dets = (np.array(d_img, int), np.array(d_lab, int), scores, np.array(d_geom, float).reshape(n_det, -1))
    return gt, dets


def _as_inputs(gt_raw, det_raw, metric):
    g_img, g_lab, g_geom, g_diff = gt_raw
    d_img, d_lab, d_score, d_geom = det_raw
    if metric == "dota-task1":
        gq, dq = g_geom.reshape(-1, 4, 2), d_geom.reshape(-1, 4, 2)
        gt = GroundTruth(g_img, g_lab, np.c_[gq.min(1), gq.max(1)], gq, g_diff)
        return gt, Detections(d_img, d_lab, d_score, np.c_[dq.min(1), dq.max(1)], dq)
    shift = np.array([1.0, 1.0, 0, 0]) if metric in ("voc07", "voc12") else 0  # the readers' 1-based -> 0-based
    return (GroundTruth(g_img, g_lab, g_geom - shift, difficult=g_diff),
            Detections(d_img, d_lab, d_score, d_geom - shift))


@pytest.mark.parametrize("metric", ["voc07", "voc12", "dota-task2", "dota-task1"])
@pytest.mark.parametrize("ties", [False, True])
def test_pascal_evaluation_against_the_slow_loop(metric, ties):
    rng = np.random.default_rng(hash((metric, ties)) % 2 ** 32)
    checked = 0
    for _ in range(6 if metric == "dota-task1" else 12):
        gt_raw, det_raw = _random_pascal(rng, metric, ties=ties)
        gt, dets = _as_inputs(gt_raw, det_raw, metric)
        res = evaluate(gt, dets, ["a", "b", "c"], metric)
        slow = _slow_pascal(gt_raw, det_raw, metric)
        for k, c in enumerate(res.classes):
            want = slow.get(k)
            if want is None:
                assert c.ap is None
            else:
                assert c.ap == pytest.approx(want, abs=1e-12)
                checked += 1
    assert checked > 10


def test_pascal_outcome_arrays():
    # one image, one car; three detections: a copy (TP), a duplicate (FP), one on a difficult car (ignored)
    gt = GroundTruth([0, 0], [0, 0], [[0, 0, 10, 10], [20, 20, 30, 30]], difficult=[False, True])
    dets = Detections([0, 0, 0], [0, 0, 0], [0.9, 0.8, 0.7], [[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]])
    res = evaluate(gt, dets, ["car"], "voc12")
    assert list(res.status) == [TP, FP, IGNORED]
    assert list(res.matched) == [0, 0, 1] and list(res.found) == [True, False]
    c = res.classes[0]
    assert (c.ap, c.ground_truths, c.ignored, c.detections, c.max_recall) == (1.0, 1, 1, 3, 1.0)
    assert [list(v) for v in image_outcome(res, gt, dets, 1)] == [[1], [1], [0]]
    assert [list(v) for v in image_outcome(res, gt, dets, 1, min_score=0.95)] == [[0], [0], [1]]


def test_class_without_positives_is_null_and_left_out_of_the_mean():
    gt = GroundTruth([0, 0], [0, 1], [[0, 0, 10, 10], [20, 20, 30, 30]], difficult=[False, True])
    dets = Detections([0, 0], [0, 1], [0.9, 0.8], [[0, 0, 10, 10], [50, 50, 60, 60]])
    res = evaluate(gt, dets, ["car", "bus"], "voc07")
    assert res.classes[1].ap is None and res.mAP == pytest.approx(1.0)  # eleven 1/11 add up to 1 + 2e-16
    doc = result_document(res)
    assert doc["classes"]["bus"] == {"ap": None, "ground_truths": 0, "detections": 1, "max_recall": None,
                                     "ignored": 1}
    assert json.loads(json.dumps(doc)) == doc  # plain JSON types only


def test_iou_threshold():
    # IoU of these two boxes is exactly 0.5 in the VOC +1 convention (10x10 object, a 10x5 half of it)
    gt = GroundTruth([0], [0], [[0, 0, 10, 10]])
    dets = Detections([0], [0], [0.9], [[0, 0, 10, 5]])
    assert evaluate(gt, dets, ["car"], "voc07").classes[0].ap == 0.0  # a match needs IoU > 0.5
    assert evaluate(gt, dets, ["car"], "voc07", iou_threshold=0.49).classes[0].ap == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------------------------
# COCO against pycocotools itself, on generated cases

def _coco_case(rng, n_img=12, integer=True, id0=False):
    images = [{"id": int(i), "file_name": f"{i}.jpg", "width": 200, "height": 200}
              for i in rng.permutation(np.arange(1, 3 * n_img))[:n_img]]
    cats = [{"id": 2, "name": "a"}, {"id": 5, "name": "b"}, {"id": 9, "name": "c"}]
    anns, dets = [], []
    aid = 0 if id0 else 1
    for im in images:
        for _ in range(rng.integers(0, 8)):
            x, y = rng.integers(0, 150, 2)
            w, h = rng.integers(1, 60, 2)
            if not integer:
                x, y, w, h = x + rng.random(), y + rng.random(), w + rng.random(), h + rng.random()
            c = cats[rng.integers(3)]["id"]
            if rng.random() < 0.7:
                area = float(w * h * rng.choice([1.0, 0.7, 0.5]))
            else:  # exactly on the area-range bounds
                area = float(rng.choice([32 ** 2, 96 ** 2, 31 ** 2]))
            anns.append({"id": aid, "image_id": im["id"], "category_id": c, "bbox": [float(v) for v in (x, y, w, h)],
                         "area": area, "iscrowd": int(rng.random() < 0.1)})
            aid += 1
            for _ in range(rng.integers(0, 4)):
                j = rng.integers(-4, 5, 4) if integer else rng.normal(0, 3, 4)
                dets.append({"image_id": im["id"], "category_id": c if rng.random() < 0.9 else 2,
                             "bbox": [float(x + j[0]), float(y + j[1]), float(max(1, w + j[2])),
                                      float(max(1, h + j[3]))],
                             "score": float(np.round(rng.random(), 1 if integer else 6))})
        for _ in range(rng.integers(0, 130 if rng.random() < 0.2 else 6)):  # sometimes over 100 per image
            x, y = rng.integers(0, 150, 2)
            w, h = rng.integers(1, 60, 2)
            dets.append({"image_id": im["id"], "category_id": cats[rng.integers(3)]["id"],
                         "bbox": [float(x), float(y), float(w), float(h)], "score": float(np.round(rng.random(), 2))})
    return {"images": images, "annotations": anns, "categories": cats}, dets


def _ours(gt_doc, dets):
    cf = parse_coco(json.dumps(gt_doc).encode(), "gt.json")
    ds = Dataset(None, "coco", cf.records, classes=list(cf.categories), meta={"category_ids": cf.categories})
    ids, cats, scores, xywh = parse_coco_results(json.dumps(dets).encode(), "results.json")
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1)
    dset = DetectionSet("coco", ["results.json"], ids, None, cats, scores, boxes, None, xywh[:, 2] * xywh[:, 3])
    records = evaluation_order(ds)
    d, _, _ = align(dset, records, ds.classes, ds.meta["category_ids"])
    return evaluate(ground_truth(records, ds.classes, "coco"), d, ds.classes, "coco")


@pytest.mark.parametrize("seed", range(16))
def test_coco_against_pycocotools(seed):
    """Integer boxes (IoUs exactly on the thresholds, tied scores), float boxes, crowds, area-range bounds, more
    than 100 detections per image, and (seed % 4 == 0) annotation id 0."""
    rng = np.random.default_rng(seed)
    gt_doc, dets = _coco_case(rng, integer=seed % 2 == 0, id0=seed % 4 == 0)
    pytest.importorskip("pycocotools.cocoeval")
    E = pycocotools_eval(gt_doc, dets)
    res = _ours(gt_doc, dets)
    assert np.abs(np.array(list(res.coco.values())) - E.stats).max() <= 1e-12
    assert np.array_equal(res.coco_precision, E.eval["precision"])
    assert np.array_equal(res.coco_recall, E.eval["recall"])


def test_coco_annotation_id_zero_quirk_is_reproduced():
    """COCOeval records a match by the object's annotation id and later tests it for non-zero: a detection
    matched to annotation 0 counts as unmatched (a false positive) although it took the object."""
    gt_doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}],
              "categories": [{"id": 1, "name": "a"}],
              "annotations": [{"id": i, "image_id": 1, "category_id": 1, "bbox": [10 + 40 * i, 10, 20, 20],
                               "area": 400, "iscrowd": 0} for i in (0, 1)]}
    dets = [{"image_id": 1, "category_id": 1, "bbox": [10 + 40 * i, 10, 20, 20], "score": 0.9 - i / 10}
            for i in (0, 1)]
    pytest.importorskip("pycocotools.cocoeval")
    E = pycocotools_eval(gt_doc, dets)
    res = _ours(gt_doc, dets)
    assert E.stats[8] == 0.5 and res.coco["AR100"] == 0.5  # one of two found, by both
    assert np.array_equal(res.coco_precision, E.eval["precision"])


def test_coco_small_cases_by_hand():
    # a crowd region swallows any number of detections inside it; they are neither TP nor FP
    gt = GroundTruth([0, 0], [0, 0], [[0, 0, 100, 100], [200, 200, 220, 220]], iscrowd=[True, False],
                     area=[10000, 400])
    dets = Detections([0, 0, 0], [0, 0, 0], [0.9, 0.8, 0.7],
                      [[10, 10, 30, 30], [40, 40, 60, 60], [200, 200, 220, 220]])
    res = evaluate_coco(gt, dets, ["a"])
    assert list(res.status) == [IGNORED, IGNORED, TP]
    # precision 1 / (1 + eps): COCOeval's own arithmetic gives 0.9999999999999998
    assert res.coco["AP"] == pytest.approx(1.0) and res.coco["AP50"] == pytest.approx(1.0)
    assert res.coco["APl"] == -1 and res.coco["APm"] == -1  # no object in those ranges: -1, as COCOeval prints
    assert res.classes[0].ground_truths == 1 and res.classes[0].ignored == 1
