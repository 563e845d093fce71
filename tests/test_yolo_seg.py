"""YOLO-seg: Ultralytics' segmentation labels as Ultralytics, Roboflow and CVAT export them (tests/data/yolo_seg_*),
detection beside YOLO and YOLO-OBB, bad lines named, round trips."""
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pycocotools.mask as maskutils
import pytest

from dsprep.core import ImageRecord, ParseError
from dsprep.dataset import detect_format, load_dataset, object_masks
from dsprep.formats.yolo_seg import Writer, format_yolo_seg, parse_yolo_seg
from dsprep.geometry import pixel_bounds

from helpers import gradient, run_cli

DATA = Path(__file__).parent / "data"


def label_polygons(path, w, h):
    """A label file's polygons in pixels, read the plain way: split, floats, times the size."""
    out = []
    for line in Path(path).read_text().splitlines():
        v = [float(t) for t in line.split()]
        out.append((int(v[0]), np.array(v[1:]).reshape(-1, 2) * (w, h)))
    return out


# ---- reading files as the tools write them ------------------------------------------------------------------------

def test_ultralytics_coco8_seg_layout():
    ds = load_dataset(DATA / "yolo_seg_coco8")
    assert ds.format == "yolo-seg" and ds.classes == ["person", "bicycle", "car"]
    by = {r.stem: r for r in ds.records}
    assert {r.split for r in ds.records} == {"train", "val"} and len(by["000000000077"]) == 0  # no label file
    root = DATA / "yolo_seg_coco8"
    for rec in ds.records:
        lab = root / "labels" / rec.split / f"{rec.stem}.txt"
        want = label_polygons(lab, rec.width, rec.height) if lab.exists() else []
        assert rec.names == [ds.classes[c] for c, _ in want]
        for k, (_, pts) in enumerate(want):
            assert len(rec.attrs["segmentation"][k]) == 1  # one ring
            np.testing.assert_allclose(np.reshape(rec.attrs["segmentation"][k][0], (-1, 2)), pts, atol=1e-9)
            np.testing.assert_allclose(rec.boxes[k], [*pts.min(axis=0), *pts.max(axis=0)], atol=1e-9)
    tri = by["000000000061"]  # Ultralytics' minimum: 3 points
    np.testing.assert_allclose(tri.boxes, [[10, 10, 30, 40]], atol=1e-4)


def test_the_masks_are_the_polygons_as_pycocotools_draws_them():
    ds = load_dataset(DATA / "yolo_seg_coco8")
    rec = next(r for r in ds.records if r.stem == "000000000074")  # a U shape (concave)
    (m,) = object_masks("yolo-seg", rec)
    x0, y0, x1, y1 = pixel_bounds(rec.boxes, rec.width, rec.height)[0]
    want = maskutils.decode(maskutils.frPyObjects(rec.attrs["segmentation"][0], rec.height, rec.width))[..., 0]
    np.testing.assert_array_equal(m, want[y0:y1, x0:x1].astype(bool))
    assert not m[30:, 20:30].any() and m[30:, :10].all()  # the notch is empty, the legs full


def test_roboflow_and_cvat_exports():
    rf = load_dataset(DATA / "yolo_seg_roboflow")
    assert rf.format == "yolo-seg" and rf.classes == ["crack", "pothole"]
    assert sorted(r.split for r in rf.records) == ["train", "val"]
    rec = next(r for r in rf.records if r.split == "train")
    # a box drawn in a segmentation project is a 4-point polygon: still a polygon here, not YOLO-OBB corners
    assert rec.polygons is None and [len(s[0]) for s in rec.attrs["segmentation"]] == [10, 8]
    np.testing.assert_allclose(rec.boxes[1], [70, 5, 90, 25], atol=1e-9)
    cvat = load_dataset(DATA / "yolo_seg_cvat")
    assert cvat.format == "yolo-seg" and cvat.classes == ["cat", "dog"]
    assert [len(r) for r in sorted(cvat.records, key=lambda r: r.stem)] == [1, 0]


# ---- detection -------------------------------------------------------------------------------------------------

def one_image(root, lines, names=("a", "b"), w=40, h=30):
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "train" / "x.jpg"), gradient(w, h))
    (root / "labels" / "train" / "x.txt").write_text("".join(line + "\n" for line in lines))
    (root / "data.yaml").write_text("train: images/train\nval: images/train\nnames: [" + ", ".join(names) + "]\n")
    return root


@pytest.mark.parametrize("lines, kind", [
    (["0 0.5 0.5 0.2 0.2"], "yolo"),                                             # class cx cy w h
    (["0 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3"], "yolo-obb"),                         # 4 corners
    (["0 0.1 0.1 0.3 0.1 0.2 0.3"], "yolo-seg"),                                 # 3 points
    (["0 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3 0.2 0.4"], "yolo-seg"),                # 5 points
])
def test_detection_by_the_first_lines(tmp_path, lines, kind):
    assert detect_format(one_image(tmp_path / "d", lines)) == kind


def test_four_point_polygons_among_polygons_are_yolo_seg(tmp_path):
    root = one_image(tmp_path / "d", ["0 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3"])  # reads as corners alone ...
    assert detect_format(root) == "yolo-obb"
    shutil.copy(root / "images" / "train" / "x.jpg", root / "images" / "train" / "y.jpg")
    (root / "labels" / "train" / "y.txt").write_text("1 0.5 0.5 0.9 0.5 0.7 0.9\n")
    assert detect_format(root) == "yolo-seg"  # ... and as a polygon beside polygons


def test_a_stray_polygon_among_boxes_is_named_not_a_reason_to_switch(tmp_path):
    root = one_image(tmp_path / "d", ["0 0.5 0.5 0.2 0.2"])
    for i in range(3):
        shutil.copy(root / "images" / "train" / "x.jpg", root / "images" / "train" / f"y{i}.jpg")
        (root / "labels" / "train" / f"y{i}.txt").write_text("1 0.5 0.5 0.1 0.1\n")
    (root / "labels" / "train" / "y2.txt").write_text("1 0.1 0.1 0.3 0.1 0.2 0.3\n")
    assert detect_format(root) == "yolo"
    res = run_cli("info", root, ok=False)
    assert "y2.txt:1: expected 5 fields" in res.output and "use --format yolo-seg" in res.output


def test_only_rectangles_written_by_dsprep_read_back_as_yolo_seg(tmp_path):
    """All 4-point polygons look like YOLO-OBB corners; the data.yaml dsprep writes names its variant."""
    run_cli("convert", DATA / "yolo_ultralytics", "--to", "yolo-seg", "--out", tmp_path / "s", "-q")
    assert {len(line.split()) for p in (tmp_path / "s" / "labels").rglob("*.txt")
            for line in p.read_text().splitlines()} == {9}
    assert (tmp_path / "s" / "data.yaml").read_text().startswith("# YOLO-seg data set written by dsprep")
    assert detect_format(tmp_path / "s") == "yolo-seg"
    yaml = tmp_path / "s" / "data.yaml"
    yaml.write_text(yaml.read_text().split("\n", 1)[1])  # without that line: corners, as the rule says
    assert detect_format(tmp_path / "s") == "yolo-obb"


# ---- bad lines ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("line, message", [
    ("0 0.1 0.1 0.3 0.1 0.2", r"x\.txt:2: 5 coordinates after the class index: x and y come in pairs"),
    ("0 0.1 0.1 0.3 0.1 1.2 0.3", r"x\.txt:2: x3 is 1\.2, outside \[0, 1\] \(YOLO coordinates are normalized"),
    ("0 0.1 0.1 0.3 0.1 -0.2 0.3", r"x\.txt:2: x3 is -0\.2, outside \[0, 1\]"),
    ("0 0.1 0.1 0.3 0.1 0.2 nan", r"x\.txt:2: y3 is nan, outside \[0, 1\]"),
    ("0 0.1 0.1 0.3 0.1", r"x\.txt:2: a polygon needs at least 3 points .*got 2 \(5 fields is a YOLO box line"),
    ("0 0.1 0.1 0.3 0.1 0.2 zz", r"x\.txt:2: cannot parse y3 from 'zz'"),
    ("7 0.1 0.1 0.3 0.1 0.2 0.3", r"x\.txt:2: class index 7 is not in the class list \(0\.\.1\)"),
    ("0.5 0.1 0.1 0.3 0.1 0.2 0.3", r"x\.txt:2: class index '0\.5' is not a whole number"),
    ("inf 0.1 0.1 0.3 0.1 0.2 0.3", r"x\.txt:2: class index 'inf' is not a whole number"),
])
def test_bad_lines_are_one_line_errors_naming_file_and_line(tmp_path, line, message):
    root = one_image(tmp_path / "d", ["1 0.5 0.5 0.9 0.5 0.7 0.9", line, "0 0.2 0.2 0.4 0.2 0.3 0.4"])
    with pytest.raises(ParseError, match=message):
        load_dataset(root, fmt="yolo-seg")
    res = run_cli("info", root, "--format", "yolo-seg", ok=False)
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert len([s for s in res.output.splitlines() if s.strip()]) == 1 and "x.txt:2:" in res.output
    res = run_cli("convert", root, "--format", "yolo-seg", "--to", "coco", "--out", tmp_path / "o",
                  "--on-error", "skip", "--json")
    assert [s["input"] for s in json.loads(res.stdout)["skipped"]] == [f"{root / 'labels' / 'train' / 'x.txt'}:2"]
    assert json.loads(res.stdout)["counts"]["objects"] == 2  # the good lines around it are kept


def test_fast_and_line_by_line_parsers_agree():
    rng = np.random.default_rng(0)
    for _ in range(50):
        lines = []
        for _ in range(int(rng.integers(1, 5))):
            n = int(rng.integers(3, 9))
            lines.append(f"{int(rng.integers(0, 3))} " + " ".join(repr(float(v)) for v in rng.random(2 * n)))
        text = "\n".join(lines) + "\n"
        fast = parse_yolo_seg(text, "t", 3)
        slow = parse_yolo_seg(text + "\n\n", "t", 3)  # (blank lines: still the fast path) ...
        from dsprep.formats.yolo_seg import _parse_slow
        ref = _parse_slow([s.split() for s in text.split("\n")], "t", 3, "fail")  # ... and the slow one
        for got in (fast, slow):
            np.testing.assert_array_equal(got[0], ref[0])
            assert all(np.array_equal(a, b) for a, b in zip(got[1], ref[1])) and len(got[1]) == len(ref[1])


# ---- writing and round trips -----------------------------------------------------------------------------------

def test_written_lines_are_the_polygons_normalized_at_full_precision():
    text = format_yolo_seg([1], [np.array([[0.25, 0.5], [1 / 3, 0.75], [0.1, 1e-7]])])
    assert text == "1 0.25 0.5 0.3333333333333333 0.75 0.1 0.0000001\n"
    cls, polys, _ = parse_yolo_seg(text)
    assert cls.tolist() == [1] and polys[0].tolist() == [[0.25, 0.5], [1 / 3, 0.75], [0.1, 1e-7]]


def test_what_one_polygon_per_object_loses_is_counted():
    rec = ImageRecord("a.jpg", 100, 80, boxes=[[10, 10, 50, 40], [0, 0, 20, 20], [60, 20, 120, 70]],
                      names=["a", "a", "b"],
                      attrs={"segmentation": [[[10, 10, 30, 10, 30, 30, 10, 30], [40, 20, 50, 20, 50, 40]], None,
                                              [[60, 20, 120, 20, 90, 70]]]})
    files, lossy = Writer(["a", "b"]).record_files(rec)
    assert lossy == {"mask_parts_joined": 1, "box_to_polygon": 1, "clipped_polygon": 1}
    (text,) = files.values()
    lines = [line.split() for line in text.decode().splitlines()]
    assert [len(v) for v in lines] == [1 + 2 * (4 + 3 + 2), 9, 7]  # the second part joined there and back
    assert lines[2][3] == "1"  # x = 120 clipped to the 100 px image


@pytest.mark.parametrize("fixture", ["yolo_seg_coco8", "yolo_seg_roboflow", "yolo_seg_cvat"])
def test_round_trips(tmp_path, fixture):
    src = load_dataset(DATA / fixture)
    run_cli("convert", DATA / fixture, "--to", "yolo-seg", "--out", tmp_path / "same", "-q")
    run_cli("convert", DATA / fixture, "--to", "coco", "--out", tmp_path / "coco", "-q")
    run_cli("convert", tmp_path / "coco", "--to", "yolo-seg", "--out", tmp_path / "back", "-q")
    run_cli("convert", DATA / fixture, "--to", "voc", "--out", tmp_path / "voc", "-q")
    for out in ("same", "back"):
        got = {r.stem: r for r in load_dataset(tmp_path / out).records}
        assert load_dataset(tmp_path / out).classes == src.classes
        for rec in src.records:
            back = got[rec.stem]
            assert back.names == rec.names
            for a, b in zip(rec.attrs["segmentation"], back.attrs["segmentation"]):
                np.testing.assert_allclose(a[0], b[0], atol=1e-9)
    voc = {r.stem: r for r in load_dataset(tmp_path / "voc").records}
    for rec in src.records:  # VOC's masks: the polygons as pycocotools rasterizes them
        masks = object_masks("voc", voc[rec.stem]) or []
        bounds = pixel_bounds(rec.boxes, rec.width, rec.height)
        assert len(masks) == len(rec)
        for seg, m, (x0, y0, x1, y1) in zip(rec.attrs["segmentation"], masks, bounds):
            want = maskutils.decode(maskutils.frPyObjects(seg, rec.height, rec.width))[..., 0]
            np.testing.assert_array_equal(m, want[y0:y1, x0:x1].astype(bool))


def test_to_box_formats_the_polygons_are_counted(tmp_path):
    res = run_cli("convert", DATA / "yolo_seg_coco8", "--to", "yolo", "--out", tmp_path / "y", "--json")
    assert json.loads(res.stdout)["counts"]["segmentation_dropped"] == 4
    res = run_cli("convert", DATA / "yolo_seg_coco8", "--to", "yolo-obb", "--out", tmp_path / "o", "--json")
    assert json.loads(res.stdout)["counts"]["polygon_to_obb"] == 3  # the fourth is one 4-point ring: kept
