"""convert any format to any format; the round trips as property tests; every data-set command on every format."""
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from dsprep.core import ImageRecord
from dsprep.dataset import FORMATS, load_dataset, writable_formats
from dsprep.dota import format_dota
from dsprep.voc import format_voc

from helpers import gradient, run_cli

DATA = Path(__file__).parent / "data"
FIXTURES = {"coco_cvat": "coco", "coco_roboflow": "coco", "coco_labelstudio": "coco", "coco2017_mini": "coco",
            "yolo_ultralytics": "yolo", "yolo_roboflow": "yolo", "yolo_darknet_cvat": "yolo",
            "yolo_obb_dota8": "yolo-obb", "labelme": "labelme", "yolo_seg_coco8": "yolo-seg",
            "yolo_seg_roboflow": "yolo-seg"}
TARGETS = ["voc", "dota", "coco", "yolo", "yolo-obb", "yolo-seg", "labelme"]


def test_every_format_is_registered_and_writable():
    assert set(TARGETS) <= set(writable_formats()) and set(TARGETS) | {"h5"} == set(FORMATS)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("source", sorted(FIXTURES))
def test_any_to_any(tmp_path, source, target):
    src = load_dataset(DATA / source)
    assert src.format == FIXTURES[source]
    res = run_cli("convert", DATA / source, "--to", target, "--out", tmp_path / "out", "--json")
    summary = json.loads(res.stdout)
    out = load_dataset(tmp_path / "out")
    assert out.format == target
    crowd = sum(int(np.sum(r.attrs.get("iscrowd", []))) for r in src.records)
    kept_crowd = target == "coco"
    assert len(out.records) == len(src.records) == summary["counts"]["images"]
    assert sum(len(r) for r in out.records) == sum(len(r) for r in src.records) - (0 if kept_crowd else crowd)
    assert summary["counts"].get("crowd_skipped", 0) == (0 if kept_crowd else crowd)
    # every object is where it was: boxes within the rounding of the formats' numbers
    by_stem = {r.stem: r for r in out.records}
    for rec in src.records:
        got = by_stem[rec.stem]
        keep = ~np.asarray(rec.attrs.get("iscrowd", np.zeros(len(rec), bool)), bool) if not kept_crowd else \
            np.ones(len(rec), bool)
        want = rec.select(keep)
        assert (got.width, got.height) == (rec.width, rec.height)
        spaced = target == "dota"  # "small vehicle" is written "small-vehicle" (counted as class_name_spaces)
        assert sorted(got.names) == sorted("-".join(n.split()) if spaced else n for n in want.names)
        if target in ("yolo-obb", "dota") and rec.polygons is None and "segmentation" in rec.attrs:
            continue  # polygons written as rotated rectangles: their boxes grow (counted as polygon_to_obb)
        if target == "yolo-seg" and any(s for s in rec.attrs.get("segmentation") or []):
            continue  # a YOLO-seg box is its polygon's bounds, not the box the source gives beside the polygon
        np.testing.assert_allclose(np.sort(got.boxes, axis=0), np.sort(want.boxes, axis=0), atol=1e-6)
    # what was lost is named
    lossy = {k for k in summary["counts"] if k not in ("images", "objects", "inputs")}
    from dsprep.jobs.convert import LOSSY
    assert lossy <= set(LOSSY)
    shaped = any(s for r in src.records for s in r.attrs.get("segmentation", []) or [])
    if shaped and target == "yolo":  # a box-only format: every shape beyond a box is counted
        assert lossy & {"segmentation_dropped", "polygon_to_box"}
    if shaped and target == "voc":  # shapes become VOC's Segmentation masks
        assert "segmentation_dropped" not in lossy and any((tmp_path / "out" / "SegmentationObject").iterdir())


def test_aliases_and_help():
    res = run_cli("convert", "--help")
    assert "--to [voc|dota|coco|yolo|yolo-obb|labelme]" in res.output.replace("\n", " ").replace("  ", " ") or \
        all(f in res.output for f in TARGETS)
    assert "voc-to-dota" in res.output


def test_alias_voc_to_dota(tmp_path, shared):
    res = run_cli("convert", "voc-to-dota", shared / "voc_sample", "--out", tmp_path / "d")
    assert res.output.startswith("convert voc-to-dota:")
    assert load_dataset(tmp_path / "d").format == "dota"


def test_unknown_target_is_a_usage_error(tmp_path):
    res = run_cli("convert", DATA / "labelme", "--to", "kitti", "--out", tmp_path / "o", ok=False)
    assert res.exit_code == 2 and "kitti" in res.output


def test_lossy_steps_are_named_in_the_summary(tmp_path):
    res = run_cli("convert", DATA / "coco_cvat", "--to", "yolo", "--out", tmp_path / "o")
    assert "1 segmentation_dropped, 1 crowd_skipped" in res.output
    assert "crowd_skipped: 1 (COCO crowd regions left out" in res.output


# ---- round trips, as property tests ------------------------------------------------------------------------------

def _images(root: Path, names_sizes):
    root.mkdir(parents=True, exist_ok=True)
    for name, (w, h) in names_sizes.items():
        cv2.imwrite(str(root / name), np.zeros((h, w, 3), np.uint8))


sizes = st.tuples(st.integers(8, 400), st.integers(8, 400))
coord = st.floats(0, 1, allow_nan=False)


@st.composite
def box_records(draw, n_images=st.integers(1, 3)):
    out = []
    for i in range(draw(n_images)):
        w, h = draw(sizes)
        k = draw(st.integers(0, 5))
        boxes = []
        for _ in range(k):
            x0, x1 = sorted(draw(st.tuples(coord, coord)))
            y0, y1 = sorted(draw(st.tuples(coord, coord)))
            boxes.append([x0 * w, y0 * h, x1 * w, y1 * h])
        names = [draw(st.sampled_from(["car", "person", "traffic light", "c-3"])) for _ in range(k)]
        out.append(ImageRecord(f"img{i}.png", w, h, boxes=np.array(boxes).reshape(-1, 4), names=names,
                               difficult=[draw(st.integers(0, 1)) for _ in range(k)]))
    return out


def _convert(src, out, target, *extra):
    run_cli("convert", src, "--to", target, "--out", out, "-q", *extra)
    return load_dataset(out)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(box_records())
def test_voc_coco_voc(records):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "voc"
        (root / "Annotations").mkdir(parents=True)
        _images(root / "JPEGImages", {r.image_path: (r.width, r.height) for r in records})
        for r in records:
            (root / "Annotations" / f"{r.stem}.xml").write_bytes(format_voc(r))
        src = load_dataset(root)
        mid = _convert(root, Path(tmp) / "coco", "coco")
        back = _convert(Path(tmp) / "coco", Path(tmp) / "voc2", "voc")
        assert [r.stem for r in back.records] == [r.stem for r in src.records]
        for a, b, m in zip(src.records, back.records, mid.records):
            assert b.names == a.names and (b.width, b.height) == (a.width, a.height)
            np.testing.assert_allclose(b.boxes, a.boxes, rtol=0, atol=1e-6)
            np.testing.assert_allclose(m.boxes, a.boxes, rtol=0, atol=1e-6)
        assert back.classes == src.classes


@st.composite
def quad_records(draw):
    out = []
    for i in range(draw(st.integers(1, 3))):
        w, h = draw(sizes)
        k = draw(st.integers(0, 5))
        quads = np.array([[[draw(coord) * w, draw(coord) * h] for _ in range(4)] for _ in range(k)]).reshape(-1, 4, 2)
        from dsprep.core import polygons_to_boxes
        out.append(ImageRecord(f"P{i:04d}.png", w, h, boxes=polygons_to_boxes(quads),
                               names=[draw(st.sampled_from(["plane", "ship", "small-vehicle"])) for _ in range(k)],
                               difficult=[draw(st.integers(0, 1)) for _ in range(k)], polygons=quads))
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(quad_records())
def test_dota_yolo_obb_dota(records):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "dota"
        (root / "labelTxt").mkdir(parents=True)
        _images(root / "images", {r.image_path: (r.width, r.height) for r in records})
        for r in records:
            (root / "labelTxt" / f"{r.stem}.txt").write_text(format_dota(r))
        src = load_dataset(root)
        _convert(root, Path(tmp) / "obb", "yolo-obb")
        back = _convert(Path(tmp) / "obb", Path(tmp) / "dota2", "dota")
        for a, b in zip(src.records, back.records):
            assert b.names == a.names
            # normalized by the image size and back: within the rounding of x / W * W
            np.testing.assert_allclose(b.polygons, a.polygons, rtol=0, atol=4e-16 * max(a.width, a.height))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(sizes, st.lists(st.tuples(st.integers(0, 2), coord, coord, coord, coord), max_size=5)),
                min_size=1, max_size=3))
def test_yolo_voc_yolo(items):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "yolo"
        (root / "labels" / "train").mkdir(parents=True)
        _images(root / "images" / "train", {f"im{i}.jpg": wh for i, (wh, _) in enumerate(items)})
        lines = {}
        for i, (_, rows) in enumerate(items):
            vals = [(c, cx, cy, min(bw, 2 * cx, 2 * (1 - cx)), min(bh, 2 * cy, 2 * (1 - cy)))
                    for c, cx, cy, bw, bh in rows]
            lines[f"im{i}"] = vals
            (root / "labels" / "train" / f"im{i}.txt").write_text(
                "".join(f"{c} {cx!r} {cy!r} {bw!r} {bh!r}\n" for c, cx, cy, bw, bh in vals))
        (root / "data.yaml").write_text("train: images/train\nval: images/train\nnames: [a, b, c]\n")
        _convert(root, Path(tmp) / "voc", "voc")
        back = _convert(Path(tmp) / "voc", Path(tmp) / "yolo2", "yolo", "--classes", "a,b,c")
        for i, (wh, _) in enumerate(items):
            text = (Path(tmp) / "yolo2" / "labels" / "train" / f"im{i}.txt").read_text()
            got = np.array([[float(v) for v in line.split()] for line in text.splitlines()]).reshape(-1, 5)
            want = np.array(lines[f"im{i}"], np.float64).reshape(-1, 5)
            np.testing.assert_array_equal(got[:, 0], want[:, 0])
            np.testing.assert_allclose(got[:, 1:], want[:, 1:], rtol=0, atol=4e-16 * max(wh))
        assert len(back.records) == len(items)


# ---- every data-set command reads every format -------------------------------------------------------------------

@pytest.mark.parametrize("source", sorted(FIXTURES))
def test_every_command_on_every_format(tmp_path, source):
    src = DATA / source
    ds = load_dataset(src)
    info = json.loads(run_cli("info", src, "--json").stdout)
    assert info["format"] == FIXTURES[source] and info["images"] == len(ds.records)
    run_cli("visualize", "boxes", src, "--out", tmp_path / "vis", "-q")
    assert len(list((tmp_path / "vis").iterdir())) == len(ds.records)
    run_cli("crop", src, "--out", tmp_path / "crops", "-q")
    n = sum(len(r) for r in ds.records)
    assert sum(len(list(d.iterdir())) for d in (tmp_path / "crops").iterdir() if d.name != "ImageSets") <= n
    run_cli("voc-to-h5", src, tmp_path / "p.h5", "-q")
    assert json.loads(run_cli("info", tmp_path / "p.h5", "--json").stdout)["objects"] == n
    # eval: ground truth in this format, perfect detections as VOC comp4 files (1-based pixels)
    dets = tmp_path / "dets"
    dets.mkdir()
    for cls in ds.classes:
        rows = [f"{r.stem} 1.0 {b[0] + 1:.6f} {b[1] + 1:.6f} {b[2]:.6f} {b[3]:.6f}\n"
                for r in ds.records for b, name in zip(r.boxes, r.names) if name == cls]
        (dets / f"comp4_det_test_{cls}.txt").write_text("".join(rows))
    res = json.loads(run_cli("eval", src, dets, "--metric", "voc07", "--json").stdout)
    aps = [c["ap"] for c in res["classes"].values() if c["ground_truths"]]
    assert aps and all(ap == pytest.approx(1.0, abs=1e-3) for ap in aps)


@pytest.mark.parametrize("fmt", TARGETS)
def test_synth_writes_every_format(tmp_path, fmt):
    bg = tmp_path / "bg"
    bg.mkdir()
    cv2.imwrite(str(bg / "b.jpg"), gradient(120, 90))
    for cls in ("car", "dog"):
        (tmp_path / "obj" / cls).mkdir(parents=True)
        sprite = np.zeros((12, 16, 4), np.uint8)
        sprite[..., :3], sprite[2:10, 2:14, 3] = 200, 255
        cv2.imwrite(str(tmp_path / "obj" / cls / "a.png"), sprite)
    run_cli("synth", "--backgrounds", bg, "--objects", tmp_path / "obj", "--out", tmp_path / "s", "-n", "3",
            "--format", fmt, "--per-image", "2", "-q")
    ds = load_dataset(tmp_path / "s")
    assert ds.format == fmt and len(ds.records) == 3 and sum(len(r) for r in ds.records) == 6
    assert set(ds.classes) >= {"car", "dog"}
    run_cli("synth", "--backgrounds", bg, "--objects", tmp_path / "obj", "--out", tmp_path / "s", "-n", "2",
            "--format", fmt, "--per-image", "2", "-q", "--append")
    again = load_dataset(tmp_path / "s")
    assert len(again.records) == 5 and sorted(r.stem for r in again.records)[-1] == "synth_000004"
    if fmt == "coco":
        (doc,) = [json.loads(p.read_text()) for p in (tmp_path / "s" / "annotations").glob("*.json")]
        assert len({i["id"] for i in doc["images"]}) == 5 and len({a["id"] for a in doc["annotations"]}) == 10


@pytest.mark.parametrize("source, cls", [("coco2017_mini", "car"), ("labelme", "cat"), ("yolo_obb_dota8", "ship")])
def test_crop_cuts_silhouettes_from_the_format_masks(tmp_path, source, cls):
    """crop asks the registry for object masks: COCO polygons, labelme polygons and YOLO-OBB quads give RGBA crops
    whose alpha is the object's own shape."""
    from dsprep.geometry import pixel_bounds
    from dsprep.dataset import object_masks
    run_cli("crop", DATA / source, "--out", tmp_path / "c", "--only", cls, "--mask", "auto", "-q")
    ds = load_dataset(DATA / source)
    rec, k = next((r, k) for r in ds.records for k, n in enumerate(r.names) if n == cls)
    mask = object_masks(ds.format, rec)[k]
    x0, y0, x1, y1 = pixel_bounds(rec.boxes, rec.width, rec.height)[k]
    crop = cv2.imread(str(tmp_path / "c" / cls / f"{rec.stem}_{k}.png"), cv2.IMREAD_UNCHANGED)
    assert crop.shape[2] == 4 and crop.shape[:2] == (y1 - y0, x1 - x0)
    assert 0 < mask.sum() < mask.size
    alpha = crop[..., 3] > 0
    if rec.polygons is None:  # the mask less its outermost pixels (no rim of the old background): those with a
        # 4-neighbour off the object; beyond the image's border counts as the object
        full = np.zeros((rec.height, rec.width), bool)
        full[y0:y1, x0:x1] = mask
        big = np.pad(full, 1, constant_values=True)
        inner = full & big[:-2, 1:-1] & big[2:, 1:-1] & big[1:-1, :-2] & big[1:-1, 2:]
        assert np.array_equal(alpha, inner[y0:y1, x0:x1])
        assert alpha.sum() >= 0.5 * mask.sum()
    else:  # quads are cut as DOTA's are: an anti-aliased polygon alpha over the same shape
        assert (alpha & mask).sum() / (alpha | mask).sum() > 0.8
