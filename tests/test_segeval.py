"""eval --metric miou: FCN's score.py figures from one confusion matrix, on real VOC masks and on edge cases."""
import json
import shutil

import cv2
import numpy as np
import pytest

from dsprep.inputs import read_bytes
from dsprep.evaluation.segmentation import confusion, scores
from dsprep.formats.vocmasks import VOC_CLASSES, encode_palette_png, mask_indices, voc_palette
from helpers import run_cli


def _slow_confusion(gt, pred, n):
    """The obvious reference: one pixel at a time."""
    hist = np.zeros((n, n), np.int64)
    for g, p in zip(gt.ravel().tolist(), pred.ravel().tolist()):
        if 0 <= g < n:
            hist[g, p] += 1
    return hist


def _direct(gts, preds, n):
    """Each figure from its definition over boolean masks (no confusion matrix): the independent reference."""
    gt = np.concatenate([g.ravel() for g in gts]).astype(np.int64)
    pr = np.concatenate([p.ravel() for p in preds]).astype(np.int64)
    valid = gt < n
    gt, pr = gt[valid], pr[valid]
    iou, acc, freq = [], [], []
    for c in range(n):
        g, p = gt == c, pr == c
        inter, union = np.sum(g & p), np.sum(g | p)
        iou.append(inter / union if union else np.nan)
        acc.append(inter / g.sum() if g.sum() else np.nan)
        freq.append(g.sum() / gt.size)
    iou, acc, freq = map(np.array, (iou, acc, freq))
    return {"pixel_accuracy": np.mean(gt == pr), "mean_accuracy": np.nanmean(acc), "mean_iou": np.nanmean(iou),
            "fw_iou": np.sum(freq[freq > 0] * iou[freq > 0]), "iou": iou}


@pytest.mark.parametrize("n, seed, void", [(2, 0, False), (5, 1, True), (21, 2, True), (3, 3, False)])
def test_confusion_equals_the_pixel_by_pixel_reference(n, seed, void):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, n, (37, 23)).astype(np.uint8)
    if void:
        gt[rng.random(gt.shape) < 0.2] = 255
    pred = rng.integers(0, n, gt.shape).astype(np.uint8)
    assert np.array_equal(confusion(gt, pred, n), _slow_confusion(gt, pred, n))


def test_scores_edge_cases_match_the_definitions():
    # class 3: absent from the ground truth and predicted (IU 0, counts); class 4: absent and never predicted
    # (nan, left out of the means); void pixels predicted as anything change nothing
    gt = np.array([[0, 0, 1, 1, 2, 255], [0, 1, 1, 2, 2, 255]], np.uint8)
    pred = np.array([[0, 3, 1, 1, 2, 4], [0, 1, 0, 2, 1, 3]], np.uint8)
    s = scores(confusion(gt, pred, 5), ["a", "b", "c", "d", "e"])
    ref = _direct([gt], [pred], 5)
    assert s.iou[3] == 0 and np.isnan(s.iou[4])
    for key in ("pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou"):
        assert abs(getattr(s, key) - ref[key]) < 1e-12, key
    np.testing.assert_allclose(s.iou, ref["iou"], atol=1e-12)


def test_a_prediction_value_outside_the_classes_is_refused():
    with pytest.raises(ValueError, match="255"):
        confusion(np.zeros((2, 2), np.uint8), np.full((2, 2), 255, np.uint8), 21)


def _voc_copy(shared, tmp_path):
    gt = tmp_path / "voc"
    shutil.copytree(shared / "voc_sample" / "SegmentationClass", gt / "SegmentationClass")
    shutil.copytree(shared / "voc_sample" / "ImageSets", gt / "ImageSets")
    return gt


def _predictions(gt_root, out, how="palette"):
    """Plausible predictions: the ground truth with borders given to their neighbour class, the mask shifted
    3 px right and one square mislabelled, saved as palette PNGs (as FCN's write-up saves them) or grey."""
    out.mkdir()
    gts, preds = [], []
    for f in sorted((gt_root / "SegmentationClass").glob("*.png")):
        gt = mask_indices(read_bytes(f), str(f))
        pred = gt.copy()
        pred[pred == 255] = 0
        pred = np.roll(pred, 3, axis=1)
        pred[10:40, 10:40] = 15  # person
        if how == "palette":
            (out / f.name).write_bytes(encode_palette_png(pred, voc_palette()))
        else:
            cv2.imwrite(str(out / f.name), pred)
        gts.append(gt)
        preds.append(pred)
    return gts, preds


@pytest.mark.parametrize("how", ["palette", "grey"])
def test_miou_on_the_voc_sample_equals_the_direct_computation(shared, tmp_path, how):
    gt_root = _voc_copy(shared, tmp_path)
    gts, preds = _predictions(gt_root, tmp_path / "pred", how)
    res = run_cli("eval", gt_root, tmp_path / "pred", "--metric", "miou", "--json", "-q")
    doc = json.loads(res.stdout)
    ref = _direct(gts, preds, 21)
    for key in ("pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou"):
        assert abs(doc[key] - ref[key]) < 1e-9, key
    for k, name in enumerate(VOC_CLASSES):
        got = doc["classes"][name]["iou"]
        assert (got is None and np.isnan(ref["iou"][k])) or abs(got - ref["iou"][k]) < 1e-9, name
    assert doc["images"] == 3 and 0.5 < doc["mean_iou"] < 1
    assert np.array(doc["confusion"]).sum() == sum(int((g != 255).sum()) for g in gts)


def test_perfect_predictions_score_one(shared, tmp_path):
    gt_root = _voc_copy(shared, tmp_path)
    pred = tmp_path / "pred"
    pred.mkdir()
    for f in (gt_root / "SegmentationClass").glob("*.png"):
        shutil.copy(f, pred / f.name)  # 255 borders in the prediction: void in the ground truth, not counted
    doc = json.loads(run_cli("eval", gt_root, pred, "--metric", "miou", "--json", "-q").stdout)
    assert doc["pixel_accuracy"] == doc["mean_iou"] == doc["mean_accuracy"] == doc["fw_iou"] == 1.0


def test_predictions_for_some_images_score_their_split_or_are_refused(shared, tmp_path):
    gt_root = _voc_copy(shared, tmp_path)
    _predictions(gt_root, tmp_path / "pred")
    (gt_root / "ImageSets" / "Segmentation" / "val.txt").write_text("# two of them\n2011_000003\n2011_000025\n\n")
    (tmp_path / "pred" / "2011_000006.png").unlink()
    res = run_cli("eval", gt_root, tmp_path / "pred", "--metric", "miou", "--json", "-q")
    doc = json.loads(res.stdout)
    assert doc["split"] == "val" and doc["images"] == 2 and "split 'val'" in res.stderr
    (tmp_path / "pred" / "2011_000025.png").unlink()
    res = run_cli("eval", gt_root, tmp_path / "pred", "--metric", "miou", ok=False)
    assert res.exit_code == 2 and "predictions for 1 of the 3" in res.stderr and "--split" in res.stderr
    res = run_cli("eval", gt_root, tmp_path / "pred", "--metric", "miou", "--split", "val", ok=False)
    assert res.exit_code == 1 and "2011_000025.png: no prediction" in res.stderr and "Traceback" not in res.output


def test_a_bad_prediction_is_one_line_naming_its_file(shared, tmp_path):
    gt_root = _voc_copy(shared, tmp_path)
    _predictions(gt_root, tmp_path / "pred")
    bad = tmp_path / "pred" / "2011_000003.png"
    cv2.imwrite(str(bad), np.full((10, 10), 30, np.uint8))
    res = run_cli("eval", gt_root, tmp_path / "pred", "--metric", "miou", ok=False)
    assert res.exit_code == 1 and str(bad) in res.stderr and "prediction is 10x10" in res.stderr
    cv2.imwrite(str(bad), np.full(mask_indices(read_bytes(gt_root / "SegmentationClass" / bad.name)).shape, 30,
                                  np.uint8))
    res = run_cli("eval", gt_root, tmp_path / "pred", "--metric", "miou", ok=False)
    assert res.exit_code == 1 and "prediction value 30 is not a class index (0..20)" in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr


def test_plot_writes_the_confusion_chart(shared, tmp_path):
    pytest.importorskip("matplotlib")
    gt_root = _voc_copy(shared, tmp_path)
    _predictions(gt_root, tmp_path / "pred")
    run_cli("eval", gt_root, tmp_path / "pred", "--metric", "miou", "--plot", tmp_path / "charts", "-q")
    chart = cv2.imread(str(tmp_path / "charts" / "confusion.png"))
    assert chart is not None and chart.shape[0] > 300 and chart.shape[1] > 300
    # a refused --plot folder inside an input costs nothing
    res = run_cli("eval", gt_root, tmp_path / "pred", "--metric", "miou", "--plot", gt_root / "charts", ok=False)
    assert res.exit_code == 2 and not (gt_root / "charts").exists()
