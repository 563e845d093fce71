"""eval --metric coco-segm against pycocotools' own COCOeval(iouType="segm"), and the mask kernels under it
(dsprep.rle) against pycocotools' mask API, bitmap for bitmap."""
import json

import cv2
import numpy as np
import pytest

from dsprep import rle
from dsprep.evaluation.results import evaluate_paths
from helpers import pycocotools_eval, run_cli

M = pytest.importorskip("pycocotools.mask")
pytest.importorskip("pycocotools.cocoeval")


def _bitmaps(ms):
    """Each mask of a MaskSet drawn the slow, obvious way."""
    out = []
    for m in range(len(ms)):
        h, w = int(ms.height[m]), int(ms.width[m])
        flat = np.zeros(h * w, bool)
        for s, e in zip(ms.start[ms.first[m]:ms.first[m + 1]], ms.end[ms.first[m]:ms.first[m + 1]]):
            flat[s:e] = True
        out.append(flat.reshape(w, h).T)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_polygons_rasterize_exactly_as_pycocotools(seed):
    rng = np.random.default_rng(seed)
    rings, owner, hw, refs = [], [], [], []
    for o in range(150):
        h, w = int(rng.integers(3, 70)), int(rng.integers(3, 70))
        obj = []
        for _ in range(int(rng.integers(1, 4))):
            pts = rng.uniform(-6, [w + 6, h + 6], (int(rng.integers(3, 10)), 2))
            if o % 3 == 0:
                pts = np.round(pts * 2) / 2  # on the pixel grid and half-way: rounding ties
            if o % 7 == 0:
                pts[2] = pts[1]  # a repeated vertex: a zero-length edge
            rings.append(pts)
            owner.append(o)
            obj.append(pts.reshape(-1).tolist())
        hw.append((h, w))
        refs.append(M.decode(M.merge(M.frPyObjects(obj, h, w))).astype(bool))
    hw = np.array(hw)
    got = _bitmaps(rle.from_polygons(rings, np.array(owner), hw[:, 0], hw[:, 1]))
    for o, (a, b) in enumerate(zip(got, refs)):
        assert np.array_equal(a, b), o


def test_compressed_strings_decode_as_pycocotools_and_pairs_intersect_exactly():
    rng = np.random.default_rng(7)
    strings, masks = [], []
    for k in range(120):
        m = rng.random((23, 31)) < (0.05 + 0.9 * rng.random())
        if k % 4 == 0:
            m[:] = False
            m[3:20, 5:25] = True  # long runs: multi-character groups
        if k % 9 == 0:
            m[:] = k % 2 == 0  # all set or none
        masks.append(m)
        strings.append(M.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode())
    counts, first = rle.decode_count_strings(strings)
    assert rle.check_counts(counts, first, [23] * 120, [31] * 120) is None
    ms = rle.from_counts(counts, first, [23] * 120, [31] * 120)
    assert all(np.array_equal(a, b) for a, b in zip(_bitmaps(ms), masks))
    assert np.array_equal(ms.area, [m.sum() for m in masks])
    a, b = np.meshgrid(np.arange(120), np.arange(120))
    inter = ms.intersections(a.ravel(), b.ravel())
    want = np.array([[np.sum(masks[i] & masks[j]) for i in range(120)] for j in range(120)]).ravel()
    assert np.array_equal(inter, want)


@pytest.mark.parametrize("bad, message", [("P" * 9 + "0", "more than 9 characters"), ("o" * 20 + "0", "more than 9"),
                                          ("1a", "ends inside a run"), ("1~", "outside '0'..'o'")])
def test_broken_strings_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        rle.decode_count_strings(["12", bad])


def _coco_set(root, seed, with_box):
    """A COCO ground truth with polygons (one or two rings), crowd RLEs (uncompressed counts) and two classes, and
    results: shifted or halved copies of the objects (sometimes the wrong class) plus stray false positives."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    imgs, anns, dets = [], [], []
    for i in range(1, 25):
        h, w = int(rng.integers(40, 120)), int(rng.integers(40, 120))
        cv2.imwrite(str(root / "images" / f"{i}.jpg"), np.zeros((h, w, 3), np.uint8))
        imgs.append({"id": i, "file_name": f"{i}.jpg", "height": h, "width": w})
        for _ in range(int(rng.integers(0, 5))):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(3, 25)
            ang = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 9))))
            poly = np.c_[cx + r * np.cos(ang), cy + r * np.sin(ang)]
            crowd = int(rng.random() < 0.15)
            cat = int(rng.choice([1, 3]))
            if crowd:
                m = np.zeros((h, w), np.uint8)
                cv2.fillPoly(m, [poly.astype(np.int32)], 1)
                flat = m.T.reshape(-1)
                runs = np.diff(np.r_[0, np.flatnonzero(flat[1:] != flat[:-1]) + 1, flat.size]).tolist()
                seg = {"size": [h, w], "counts": ([0] if flat[0] else []) + runs}
                rl = M.frPyObjects(seg, h, w)
            else:
                seg = [poly.reshape(-1).tolist()]
                if rng.random() < 0.3:
                    seg.append((poly * 0.5 + [cx / 2, cy / 2]).reshape(-1).tolist())
                rl = M.merge(M.frPyObjects(seg, h, w))
            bb = [float(v) for v in M.toBbox(rl)]
            if bb[2] <= 0 or bb[3] <= 0:
                continue
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": cat, "segmentation": seg,
                         "area": float(M.area(rl)), "bbox": bb, "iscrowd": crowd})
            for _ in range(int(rng.integers(0, 4))):
                m = np.roll(M.decode(rl), int(rng.integers(-4, 5)), axis=int(rng.integers(0, 2)))
                if rng.random() < 0.3:
                    m[:, : w // 2] = 0
                dets.append(_det(i, cat if rng.random() < 0.8 else 4 - cat, m, rng, with_box))
        for _ in range(int(rng.integers(0, 3))):
            m = np.zeros((h, w), np.uint8)
            m[rng.integers(0, h // 2):h // 2 + 5, rng.integers(0, w // 2):w // 2 + 5] = 1
            dets.append(_det(i, int(rng.choice([1, 3, 5])), m, rng, with_box))  # 5: a class with no objects
    cats = [{"id": 1, "name": "a"}, {"id": 3, "name": "b"}, {"id": 5, "name": "c"}]
    (root / "instances_default.json").write_text(json.dumps({"images": imgs, "annotations": anns,
                                                             "categories": cats}))
    (root / "res.json").write_text(json.dumps(dets))
    return root / "instances_default.json", root / "res.json"


def _det(image, cat, m, rng, with_box):
    e = M.encode(np.asfortranarray(m.astype(np.uint8)))
    d = {"image_id": image, "category_id": cat, "score": float(np.round(rng.random(), 2)),
         "segmentation": {"size": e["size"], "counts": e["counts"].decode()}}
    if with_box:
        d["bbox"] = [float(v) for v in M.toBbox(e)]
    return d


@pytest.mark.parametrize("seed, with_box", [(0, False), (1, False), (2, True), (3, True)])
def test_coco_segm_equals_pycocotools(tmp_path, seed, with_box):
    gt, res = _coco_set(tmp_path / "set", seed, with_box)
    ref = pycocotools_eval(gt, res, "segm")
    ev = evaluate_paths(gt, res, "coco-segm")
    np.testing.assert_allclose(list(ev.result.coco.values()), ref.stats, atol=1e-6)
    np.testing.assert_allclose(ev.result.coco_precision, ref.eval["precision"], atol=1e-6)
    np.testing.assert_allclose(ev.result.coco_recall, ref.eval["recall"], atol=1e-6)
    # the command line prints the same numbers
    doc = json.loads(run_cli("eval", gt, res, "--metric", "coco-segm", "--json", "-q").stdout)
    np.testing.assert_allclose([doc["coco"][k] for k in ev.result.coco], ref.stats, atol=1e-6)
    assert doc["metric"] == "coco-segm"


def test_no_detections_score_zero_and_classes_without_objects_stay_out(tmp_path):
    gt, res = _coco_set(tmp_path / "set", 5, False)
    res.write_text("[]")
    ev = evaluate_paths(gt, res, "coco-segm")
    assert ev.result.coco["AP"] == 0 and ev.result.coco["AR100"] == 0
    assert [c.ap for c in ev.result.classes] == [0.0, 0.0, None]  # "c" has no ground truth


@pytest.mark.parametrize("change, message", [
    (lambda d: d[0]["segmentation"].update(size=[7, 7]), "is not the image's"),
    (lambda d: d[0]["segmentation"].update(counts="1a"), "ends inside a run"),
    (lambda d: d[0]["segmentation"].update(counts=d[0]["segmentation"]["counts"] + "5"), "do not cover"),
    (lambda d: d[0].pop("segmentation"), "no 'segmentation'"),
])
def test_a_broken_result_is_one_line_naming_it(tmp_path, change, message):
    gt, res = _coco_set(tmp_path / "set", 6, False)
    doc = json.loads(res.read_text())
    change(doc)
    res.write_text(json.dumps(doc))
    out = run_cli("eval", gt, res, "--metric", "coco-segm", ok=False)
    assert out.exit_code in (1, 2) and message in out.stderr and "Traceback" not in out.output
    assert len([line for line in out.stderr.splitlines() if line.strip()]) == 1


def test_box_only_ground_truth_is_a_usage_error(tmp_path):
    gt, res = _coco_set(tmp_path / "set", 8, False)
    doc = json.loads(gt.read_text())
    for a in doc["annotations"]:
        a["segmentation"] = []
    gt.write_text(json.dumps(doc))
    out = run_cli("eval", gt, res, "--metric", "coco-segm", ok=False)
    assert out.exit_code == 2 and "needs a COCO ground truth with segmentations" in out.stderr
