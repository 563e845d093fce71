"""``dsprep anchors``: the measures against slow references written from their definitions, the fit on planted
clusters, and the command on real VOC, COCO and YOLO data sets."""
import json
from pathlib import Path

import numpy as np
import pytest

from helpers import run_cli

from dsprep.anchors import (compute_anchors, fit, kmeans_iou, parse_anchors, ratio_metric, training_sizes,
                            wh_iou)
from dsprep.dataset import load_dataset

DATA = Path(__file__).parent / "data"


def slow_fit(wh, anchors, thr=4.0):
    """darknet's IoU of sizes and YOLOv5's autoanchor metric, one box and one anchor at a time."""
    ious, bests, above = [], [], []
    for w, h in wh:
        best_iou, best_x, n = 0.0, 0.0, 0
        for aw, ah in anchors:
            inter = min(w, aw) * min(h, ah)
            best_iou = max(best_iou, inter / (w * h + aw * ah - inter))
            x = min(w / aw, aw / w, h / ah, ah / h)
            best_x = max(best_x, x)
            n += x > 1 / thr
        ious.append(best_iou)
        bests.append(best_x)
        above.append(n)
    return np.mean(ious), np.mean(np.array(bests) > 1 / thr), np.mean(above)


def test_measures_match_their_definitions():
    rng = np.random.default_rng(1)
    wh = rng.uniform(2, 300, (200, 2))
    anchors = rng.uniform(5, 250, (6, 2))
    f = fit(wh, anchors)
    m, bpr, aat = slow_fit(wh, anchors)
    assert f.mean_iou == pytest.approx(m) and f.bpr == pytest.approx(bpr) and f.aat == pytest.approx(aat)
    assert wh_iou(np.array([[10.0, 20.0]]), np.array([[10.0, 20.0], [20.0, 10.0]])).tolist() == \
        [[1.0, pytest.approx(100 / 300)]]
    assert ratio_metric(np.array([[40.0, 10.0]]), np.array([[10.0, 10.0]]))[0, 0] == pytest.approx(0.25)


def test_planted_clusters_are_found():
    rng = np.random.default_rng(2)
    centres = np.array([[12.0, 30.0], [60.0, 40.0], [200.0, 150.0]])
    wh = np.concatenate([c * np.exp(rng.normal(0, 0.05, (300, 2))) for c in centres])
    got = compute_anchors(wh, 3, np.random.default_rng(0))
    assert np.allclose(got, centres, rtol=0.08)
    # sorted by area
    assert np.all(np.diff(got[:, 0] * got[:, 1]) > 0)


def test_refinement_never_lowers_the_mean_iou():
    rng = np.random.default_rng(3)
    wh = rng.lognormal(3.5, 0.8, (2000, 2))
    plain = kmeans_iou(wh, 9, np.random.default_rng(7))
    refined = compute_anchors(wh, 9, np.random.default_rng(7))
    assert fit(wh, refined).mean_iou >= fit(wh, plain).mean_iou


def test_boxes_are_scaled_as_for_training(shared):
    ds = load_dataset(shared / "voc_sample")
    wh = training_sizes(ds.records, 640)
    rec = ds.records[0]
    first = (rec.boxes[0, 2:] - rec.boxes[0, :2]) * 640 / max(rec.width, rec.height)
    assert np.allclose(wh[0], first)
    assert len(wh) == sum(len(r) for r in ds.records)


@pytest.mark.parametrize("path", ["voc", "coco2017_mini", "yolo_roboflow", "yolo_darknet_cvat"])
def test_command_on_every_format(shared, path):
    root = shared / "voc_sample" if path == "voc" else DATA / path
    n = 9 if path == "voc" else 2
    doc = json.loads(run_cli("anchors", root, "--n", n, "--json", "-q").stdout)
    a = np.array(doc["anchors"])
    assert a.shape == (n, 2) and np.all(np.diff(a[:, 0] * a[:, 1]) >= 0)
    assert 0 < doc["mean_iou"] <= 1 and 0 <= doc["bpr"] <= 1
    ds = load_dataset(root)
    assert doc["boxes"] == sum(len(r) for r in ds.records)
    # the same numbers as the library computes on the scaled boxes
    wh = training_sizes(ds.records, 640)
    assert doc["mean_iou"] == pytest.approx(fit(wh, a).mean_iou, abs=2e-3)


def test_same_seed_same_anchors_and_size_scales_them(shared):
    root = shared / "voc_sample"
    one = run_cli("anchors", root, "--seed", "4", "--json", "-q").stdout
    assert run_cli("anchors", root, "--seed", "4", "--json", "-q").stdout == one
    half = json.loads(run_cli("anchors", root, "--seed", "4", "--size", "320", "--json", "-q").stdout)
    assert half["mean_iou"] == pytest.approx(json.loads(one)["mean_iou"], abs=0.02)
    assert np.allclose(np.array(half["anchors"]) * 2, json.loads(one)["anchors"], rtol=0.15)


def test_given_anchors_are_judged(shared):
    root = shared / "voc_sample"
    ds = load_dataset(root)
    wh = training_sizes(ds.records, 640)
    given = "10,13, 16,30, 33,23, 30,61, 62,45, 59,119, 116,90, 156,198, 373,326"  # YOLOv5's defaults
    doc = json.loads(run_cli("anchors", root, "--anchors", given, "--json", "-q").stdout)
    f = fit(wh, parse_anchors(given))
    assert doc["given"]["mean_iou"] == pytest.approx(f.mean_iou, abs=1e-4)
    assert doc["given"]["bpr"] == pytest.approx(f.bpr, abs=1e-4)
    assert doc["mean_iou"] > doc["given"]["mean_iou"]  # fitted to these boxes: better than generic ones
    text = run_cli("anchors", root, "--anchors", "10x13,16x30", "-q").stdout
    assert "given anchors: mean best IoU" in text and "best possible recall" in text


@pytest.mark.parametrize("value", ["1,2,3", "a,b", "0,5", "-1x2"])
def test_bad_anchors_are_usage_errors(shared, value):
    res = run_cli("anchors", shared / "voc_sample", "--anchors", value, ok=False)
    assert res.exit_code == 2 and "--anchors" in res.output


def test_no_boxes_is_one_line(tmp_path):
    from helpers import write_voc_tree
    root = write_voc_tree(tmp_path / "v", {"a": (40, 30, [])})
    res = run_cli("anchors", root, ok=False)
    assert res.exit_code == 2 and res.stderr.startswith("error: ") and len(res.stderr.strip().splitlines()) == 1
