"""YOLO and YOLO-OBB: label lines, the data.yaml subset, layouts (Ultralytics, Roboflow, CVAT/darknet), the writer,
and Ultralytics' documented examples."""
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dsprep.core import DatasetError, ImageRecord, ParseError
from dsprep.dataset import detect_format, load_dataset
from dsprep.formats.yamlsub import parse_yaml, yaml_string
from dsprep.formats.yolo import (Writer, find_layout, format_yolo, label_path, normalized, parse_yolo,
                         yaml_names)
from dsprep.formats import yolo_obb

from helpers import gradient, run_cli

DATA = Path(__file__).parent / "data"


def pyyaml():
    """PyYAML, the reference the YAML subset is checked against (in the test extra)."""
    return pytest.importorskip("yaml")


# ---- label lines ------------------------------------------------------------------------------------------------

def test_parse_lines_blank_lines_and_crlf():
    cls, vals, skipped = parse_yolo("0 0.5 0.4 0.3 0.6\r\n\r\n1 0.3 0.7 0.4 0.2\r\n", "a.txt")
    assert cls.tolist() == [0, 1] and vals.tolist() == [[0.5, 0.4, 0.3, 0.6], [0.3, 0.7, 0.4, 0.2]]
    assert skipped == []
    cls, vals, _ = parse_yolo("", "a.txt")
    assert cls.shape == (0,) and vals.shape == (0, 4)


@pytest.mark.parametrize("line, obb, message", [
    ("0 0.5 0.5 0.1", False, r"a.txt:2: expected 5 fields \(class cx cy w h\), got 4"),
    ("0 0.5 0.5 0.1 0.1 0.9", False, r"a.txt:2: expected 5 fields .*got 6"),
    ("0 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2", False, r"got 9 \(a YOLO-OBB line: use --format yolo-obb\)"),
    ("0 0.5 0.5 0.1 0.1", True, r"expected 9 fields \(class x1 y1 x2 y2 x3 y3 x4 y4\), got 5 \(a YOLO box line"),
    ("car 0.5 0.5 0.1 0.1", False, r"a.txt:2: cannot parse the class index from 'car'"),
    ("1.5 0.5 0.5 0.1 0.1", False, r"a.txt:2: class index '1.5' is not a whole number"),
    ("-1 0.5 0.5 0.1 0.1", False, r"a.txt:2: class index '-1' is not a whole number >= 0"),
    ("3 0.5 0.5 0.1 0.1", False, r"a.txt:2: class index 3 is not in the class list \(0..2\)"),
    ("0 0.5 x 0.1 0.1", False, r"a.txt:2: cannot parse cy from 'x'"),
    ("0 0.5 1.2 0.1 0.1", False, r"a.txt:2: cy is 1.2, outside \[0, 1\]"),
    ("0 0.5 0.5 -0.01 0.1", False, r"a.txt:2: w is -0.01, outside \[0, 1\]"),
    ("0 0.1 0.1 0.2 0.1 0.2 nan 0.1 0.2", True, r"a.txt:2: y3 is nan, outside \[0, 1\]"),
    ("0 640 480 20 30", False, r"a.txt:2: cx is 640, outside \[0, 1\] \(YOLO coordinates are normalized"),
])
def test_bad_lines_name_file_and_line(line, obb, message):
    good = "0 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2" if obb else "0 0.5 0.5 0.2 0.2"
    text = f"{good}\n{line}\n"
    with pytest.raises(ParseError, match=message):
        parse_yolo(text, "a.txt", obb, n_classes=3)
    cls, _, skipped = parse_yolo(text, "a.txt", obb, n_classes=3, on_error="skip")
    assert len(cls) == 1 and [w for w, _ in skipped] == ["a.txt:2"]


def test_format_is_shortest_exact_text():
    text = format_yolo([0, 12], np.array([[0.1, 0.5, 1.0, 1e-7], [1 / 3, 0.0, 0.25, 2 / 3]]))
    assert text == "0 0.1 0.5 1 0.0000001\n12 0.3333333333333333 0 0.25 0.6666666666666666\n"
    cls, vals, _ = parse_yolo(text)
    assert vals.tolist() == [[0.1, 0.5, 1.0, 1e-7], [1 / 3, 0.0, 0.25, 2 / 3]]


# ---- Ultralytics' documented examples -----------------------------------------------------------------------------

def _one_image(root: Path, split: str, stem: str, w: int, h: int, label: str, names, obb=False):
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "images" / split / f"{stem}.jpg"), gradient(w, h))
    (root / "labels" / split / f"{stem}.txt").write_text(label)
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/{split}\nval: images/{split}\nnames:\n" +
                                    "".join(f"  {i}: {n}\n" for i, n in enumerate(names)))


def test_documented_detection_example(tmp_path):
    """docs.ultralytics.com/datasets/detect: '0 0.5 0.4 0.3 0.6 / 1 0.3 0.7 0.4 0.2' -- class 0 (person) centred at
    (50%, 40%), 30% x 60% of the image; class 1 (car) at (30%, 70%), 40% x 20%."""
    _one_image(tmp_path / "src", "train", "im", 200, 100, "0 0.5 0.4 0.3 0.6\n1 0.3 0.7 0.4 0.2\n", ["person", "car"])
    rec = load_dataset(tmp_path / "src").records[0]
    assert rec.names == ["person", "car"]
    np.testing.assert_allclose(rec.boxes, [[70, 10, 130, 70], [20, 60, 100, 80]], atol=1e-12)
    # what we write for those pixel boxes is the documented line, number for number
    out = ImageRecord("im.jpg", 200, 100, boxes=[[70, 10, 130, 70], [20, 60, 100, 80]], names=["person", "car"])
    text = Writer(["person", "car"]).record_files(out)[0]["labels/train/im.txt"].decode()
    rows = [[float(v) for v in line.split()] for line in text.splitlines()]
    np.testing.assert_allclose(rows, [[0, 0.5, 0.4, 0.3, 0.6], [1, 0.3, 0.7, 0.4, 0.2]], atol=1e-15)


def test_documented_obb_example(tmp_path):
    """docs.ultralytics.com/datasets/obb: '0 0.780811 0.743961 0.782371 0.74686 0.777691 0.752174 0.776131
    0.749758', the four corners normalized."""
    line = "0 0.780811 0.743961 0.782371 0.74686 0.777691 0.752174 0.776131 0.749758\n"
    _one_image(tmp_path / "src", "train", "P0001", 1024, 768, line, ["plane"])
    assert detect_format(tmp_path / "src") == "yolo-obb"
    rec = load_dataset(tmp_path / "src").records[0]
    corners = np.array([float(v) for v in line.split()[1:]]).reshape(4, 2) * [1024, 768]
    np.testing.assert_allclose(rec.polygons[0], corners, rtol=0, atol=1e-9)
    text = yolo_obb.Writer(["plane"]).record_files(rec)[0]["labels/train/P0001.txt"].decode()
    assert text.split()[0] == "0"
    np.testing.assert_allclose([float(v) for v in text.split()[1:]], [float(v) for v in line.split()[1:]],
                               rtol=0, atol=1e-15)


# ---- data.yaml ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["yolo_ultralytics", "yolo_roboflow", "yolo_obb_dota8"])
def test_yaml_subset_reads_what_pyyaml_reads(name):
    text = (DATA / name / "data.yaml").read_text()
    ours, ref = parse_yaml(text, "data.yaml"), pyyaml().safe_load(text)
    assert yaml_names(ours, "data.yaml") == [str(n) for n in (ref["names"].values() if isinstance(ref["names"], dict)
                                                              else ref["names"])]
    for key in ("path", "train", "val", "test"):
        assert ours.get(key) == ref.get(key)
    assert set(ours) == set(ref)


def test_yaml_subset_constructs():
    text = """\
# comment
path: "/data/my set"  # quoted, with a space
train: [images/train, 'images/extra # not a comment']
val:
  - images/val
names: {0: 'a: b', 1: "c\\"d", 2: no}
nested:
  deeper:
    key: value
script: |
  line one
  line: two
multi: [a,
  b, c]
"""
    doc = parse_yaml(text, "x.yaml")
    assert doc["path"] == "/data/my set" and doc["train"] == ["images/train", "images/extra # not a comment"]
    assert doc["val"] == ["images/val"] and doc["nested"] == {"deeper": {"key": "value"}}
    assert doc["script"] == "line one\nline: two\n" and doc["multi"] == ["a", "b", "c"]
    assert yaml_names(doc, "x.yaml") == ["a: b", 'c"d', "no"]  # 'no' stays a name (PyYAML would say False)
    ref = pyyaml().safe_load(text)
    assert ref["train"] == doc["train"] and ref["script"] == doc["script"] and ref["multi"] == doc["multi"]


@pytest.mark.parametrize("text, message", [
    ("names:\n  0: a\n  2: b\ntrain: x\n", r"x.yaml: names has indices \[0, 2\]; a 2-class data set needs 0..1"),
    ("names: [a, b, a]\ntrain: x\n", r"x.yaml: class name a listed more than once"),
    ("nc: 3\nnames: [a, b]\ntrain: x\n", r"x.yaml: nc is 3 but names lists 2 classes"),
    ("names: [a\ntrain: x\n", r"x.yaml:1: unclosed flow collection"),
    ("names: &anchor [a]\n", r"x.yaml:1: YAML anchors, aliases and tags are not supported"),
    ("train: x\n\tval: y\n", r"x.yaml:2: a tab in the indentation"),
])
def test_bad_yaml_names_file_and_line(text, message):
    with pytest.raises(ParseError, match=message):
        yaml_names(parse_yaml(text, "x.yaml"), "x.yaml")


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20).filter(lambda s: s.strip()))
def test_names_we_write_read_back_by_pyyaml_and_by_us(name):
    line = f"names:\n  0: {yaml_string(name)}\n"
    assert pyyaml().safe_load(line)["names"][0] == name
    assert yaml_names(parse_yaml(line, "x"), "x") == [name]


# ---- layouts ------------------------------------------------------------------------------------------------------

def test_ultralytics_layout():
    ds = load_dataset(DATA / "yolo_ultralytics")
    assert ds.format == "yolo" and ds.classes == ["person", "bicycle", "car", "traffic light"]
    assert [(r.stem, r.split, len(r)) for r in ds.records] == [
        ("000000000009", "train", 2), ("000000000025", "train", 2), ("000000000030", "train", 0),
        ("000000000034", "val", 1), ("000000000036", "val", 0)]
    assert ds.problems == []
    r = ds.records[0]
    assert (r.width, r.height) == (96, 64) and "normalized" not in r.attrs
    np.testing.assert_allclose(r.boxes, [[36, 16, 60, 48], [72, 10, 84, 22]], atol=1e-9)
    tall = ds.records[3]  # a portrait image: x by its width, y by its height
    np.testing.assert_allclose(tall.boxes, [[9.6, 43.2, 41.6, 72]], atol=1e-9)
    assert [len(r) for r in load_dataset(DATA / "yolo_ultralytics", split="val").records] == [1, 0]
    with pytest.raises(DatasetError, match="no split 'test'"):
        load_dataset(DATA / "yolo_ultralytics", split="test")


def test_roboflow_layout_paths_with_dotdot():
    layout = find_layout(DATA / "yolo_roboflow")
    assert [(s.name, [p.name for p in s.sources]) for s in layout.splits] == [("train", ["images"]),
                                                                             ("val", ["images"])]
    ds = load_dataset(DATA / "yolo_roboflow")
    assert ds.classes == ["head", "helmet", "person"] and [r.split for r in ds.records] == ["train", "train", "val"]
    assert [p.kind for p in ds.problems] == ["split_not_found"]  # test: ../test/images is not there


def test_cvat_darknet_layout():
    layout = find_layout(DATA / "yolo_darknet_cvat")
    assert layout.kind == "flat" and layout.names == ["car", "person"]
    assert [s.name for s in layout.splits] == ["train"]  # from obj.data's train = data/train.txt
    ds = load_dataset(DATA / "yolo_darknet_cvat")
    assert [len(r) for r in ds.records] == [2, 0] and ds.records[0].names == ["car", "person"]
    assert ds.records[0].image_path.endswith("obj_train_data/frame_000000.jpg")


def test_flat_classes_txt_layout(tmp_path):
    (tmp_path / "classes.txt").write_text("dog\ncat\n")
    cv2.imwrite(str(tmp_path / "a.png"), gradient(40, 20))
    (tmp_path / "a.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    cv2.imwrite(str(tmp_path / "b.png"), gradient(40, 20))
    assert detect_format(tmp_path) == "yolo"
    ds = load_dataset(tmp_path)
    assert [(r.stem, r.names) for r in ds.records] == [("a", ["cat"]), ("b", [])]
    assert ds.classes == ["dog", "cat"]


def test_images_and_labels_without_yaml_use_indices_in_numeric_order(tmp_path):
    for split, label in (("train", "10 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.2 0.2\n"), ("val", "3 0.5 0.5 0.1 0.1\n")):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "labels" / split).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "images" / split / "x.jpg"), gradient(30, 30))
        (tmp_path / "labels" / split / "x.txt").write_text(label)
    ds = load_dataset(tmp_path, split="val")
    assert ds.classes == [str(i) for i in range(11)]  # the other split's index 10 counts too; 2 < 10
    assert load_dataset(tmp_path).records[0].names == ["10", "2"]


def test_alias_split_read_once(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(DATA / "yolo_ultralytics", src)
    text = (src / "data.yaml").read_text().replace("val: images/val", "val: images/train")
    (src / "data.yaml").write_text(text)
    ds = load_dataset(src)
    assert [r.split for r in ds.records] == ["train"] * 3
    # labels/val/ is now named by no split: its two label files are counted, never silently left
    assert [p.kind for p in ds.problems] == ["split_alias", "labels_not_read"]
    assert ds.problems[1].detail.startswith("2 label files under")


def test_label_without_image_and_missing_listed_image(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(DATA / "yolo_ultralytics", src)
    (src / "images" / "val" / "000000000034.jpg").unlink()
    with pytest.raises(ParseError, match=r"labels/val/000000000034.txt: label file without an image"):
        load_dataset(src)
    ds = load_dataset(src, on_error="skip")
    assert [f for f, _ in ds.skipped] == [str(src / "labels" / "val" / "000000000034.txt")]
    res = run_cli("info", src, "--on-error", "skip")
    assert "000000000034.txt: label file without an image" in res.output
    res = run_cli("info", src, ok=False)
    assert res.exit_code == 1 and res.output.count("\n") == 1 and "label file without an image" in res.output
    # a split list naming an image that is not there
    dk = tmp_path / "dk"
    shutil.copytree(DATA / "yolo_darknet_cvat", dk)
    (dk / "obj_train_data" / "frame_000001.jpg").unlink()
    with pytest.raises(ParseError, match=r"frame_000001.jpg: listed in split 'train' but the image does not exist"):
        load_dataset(dk)


def test_bad_line_through_the_cli_names_file_and_line(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(DATA / "yolo_ultralytics", src)
    with open(src / "labels" / "train" / "000000000025.txt", "a") as f:
        f.write("3 0.5 1.5 0.1 0.1\n")
    res = run_cli("info", src, ok=False)
    assert res.exit_code == 1
    assert res.output.strip() == (f"error: {src}/labels/train/000000000025.txt:3: cy is 1.5, outside [0, 1] (YOLO "
                                  f"coordinates are normalized by the image size)")
    out = json.loads(run_cli("info", src, "--on-error", "skip", "--json").stdout)
    assert out["objects"] == 5 and out["skipped"][0]["file"].endswith("000000000025.txt:3")


def test_detect_tells_boxes_from_oriented_boxes():
    assert detect_format(DATA / "yolo_ultralytics") == "yolo"
    assert detect_format(DATA / "yolo_obb_dota8") == "yolo-obb"
    ds = load_dataset(DATA / "yolo_obb_dota8")
    assert ds.format == "yolo-obb" and ds.classes[:3] == ["plane", "ship", "storage tank"]
    rec = ds.records[1]  # P1053: a ship quad
    np.testing.assert_allclose(rec.polygons[0], [[20.5, 30.25], [60.75, 22.5], [66, 48], [25.5, 55.5]], atol=1e-4)
    with pytest.raises(ParseError, match=r"expected 5 fields .* got 9 \(a YOLO-OBB line"):
        load_dataset(DATA / "yolo_obb_dota8", fmt="yolo")


def test_segmentation_labels_are_yolo_seg_and_named_when_read_as_boxes(tmp_path):
    _one_image(tmp_path / "seg", "train", "a", 40, 40, "0 0.1 0.1 0.5 0.1 0.5 0.5 0.2 0.6 0.1 0.4\n", ["x"])
    assert detect_format(tmp_path / "seg") == "yolo-seg"
    np.testing.assert_allclose(load_dataset(tmp_path / "seg").records[0].boxes, [[4, 4, 20, 24]])
    with pytest.raises(ParseError, match=r"a.txt:1: expected 5 fields .*got 11 \(a YOLO-seg polygon line: use "
                                         r"--format yolo-seg\)"):
        load_dataset(tmp_path / "seg", fmt="yolo")


def test_label_path_is_ultralytics_rule():
    assert label_path("/d/images/train/a.b.jpg") == "/d/labels/train/a.b.txt"
    assert label_path("/images/x/images/train/a.jpg") == "/images/x/labels/train/a.txt"  # the last images/
    assert label_path("/d/obj_train_data/a.jpg") == "/d/obj_train_data/a.txt"


# ---- writing ------------------------------------------------------------------------------------------------------

def test_writer_clips_and_counts_and_follows_the_class_list():
    rec = ImageRecord("a.jpg", 100, 50, boxes=[[-10, 5, 20, 25], [50, 10, 60, 20]], names=["b", "a"])
    files, lossy = Writer(["a", "b"]).record_files(rec)
    assert lossy == {"clipped_box": 1}
    assert files["labels/train/a.txt"].decode() == "1 0.1 0.3 0.2 0.4\n0 0.55 0.3 0.1 0.2\n"
    quad = ImageRecord("q.jpg", 100, 100, boxes=[[0, 0, 10, 10], [0, 0, 20, 20]], names=["a", "a"],
                       polygons=[[[0, 0], [10, 0], [10, 10], [0, 10]], [[10, 0], [20, 10], [10, 20], [0, 10]]])
    assert Writer(["a"]).record_files(quad)[1] == {"polygon_to_box": 1}  # the rectangle loses nothing
    _, lossy = yolo_obb.Writer(["a"]).record_files(ImageRecord("o.jpg", 10, 10, boxes=[[5, 5, 12, 8]], names=["a"]))
    assert lossy == {"clipped_polygon": 1}
    assert rec.boxes.tolist() == [[-10, 5, 20, 25], [50, 10, 60, 20]]  # never modified


def test_data_yaml_written_is_read_by_pyyaml_and_ultralytics_rules(tmp_path):
    run_cli("convert", DATA / "coco_roboflow", "--to", "yolo", "--out", tmp_path / "out", "--classes",
            "helmet,head,workers")
    doc = pyyaml().safe_load((tmp_path / "out" / "data.yaml").read_text())
    assert doc["names"] == {0: "helmet", 1: "head", 2: "workers"} and doc["nc"] == 3
    assert doc["train"] == "images/train" and doc["val"] == "images/valid"
    # no path: Ultralytics' rule is then the YAML's own folder (path or yaml_file's parent), where the splits are
    assert "path" not in doc
    for key in ("train", "val"):
        assert (tmp_path / "out" / doc[key]).is_dir()
    first = (tmp_path / "out" / "labels" / "train" / "000001_jpg.rf.3f9c0e6a1b2d4e5f.txt").read_text()
    assert [line.split()[0] for line in first.splitlines()] == ["0", "1"]  # helmet, head: the pinned order
    # copied elsewhere and changed there, the copy reads as itself (never the original it came from)
    shutil.copytree(tmp_path / "out", tmp_path / "copy")
    (tmp_path / "copy" / "labels" / "train" / "000001_jpg.rf.3f9c0e6a1b2d4e5f.txt").write_text("2 0.5 0.5 0.1 0.1\n")
    copy = {r.stem: r.names for r in load_dataset(tmp_path / "copy").records}
    assert copy["000001_jpg.rf.3f9c0e6a1b2d4e5f"] == ["workers"]
    shutil.move(str(tmp_path / "out"), str(tmp_path / "moved"))
    assert len(load_dataset(tmp_path / "moved").records) == 4


def test_one_split_gets_a_val_entry(tmp_path):
    run_cli("convert", DATA / "labelme", "--to", "yolo", "--out", tmp_path / "out")
    text = (tmp_path / "out" / "data.yaml").read_text()
    doc = pyyaml().safe_load(text)
    assert doc["train"] == doc["val"] == "images/train" and "no validation split" in text
    ds = load_dataset(tmp_path / "out")
    # read once, as train; dsprep's own stand-in (the line says so) is not reported as a problem of the data set
    assert len(ds.records) == 2 and ds.problems == []


def test_unreadable_image_gives_no_wrong_numbers(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(DATA / "yolo_ultralytics", src)
    (src / "images" / "train" / "000000000009.jpg").write_bytes(b"not an image")
    ds = load_dataset(src)
    rec = ds.records[0]
    assert rec.width == 0 and np.isnan(rec.boxes).all()
    assert "image_unreadable" in {p.kind for p in ds.problems}
    res = run_cli("convert", src, "--to", "voc", "--out", tmp_path / "out", ok=False)
    assert res.exit_code == 1 and "the image size is unknown" in res.output


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)),
                max_size=6), st.integers(1, 5000), st.integers(1, 5000))
def test_normalized_round_trip_within_float_rounding(rows, w, h):
    """label numbers -> pixels -> label numbers: the same numbers, within the rounding of x * W / W."""
    from dsprep.formats.yolo import denormalize
    vals = np.array([[cx, cy, min(bw, 2 * cx, 2 * (1 - cx)), min(bh, 2 * cy, 2 * (1 - cy))]
                     for _, cx, cy, bw, bh in rows], np.float64).reshape(-1, 4)
    boxes, _ = denormalize(vals, w, h, obb=False)
    rec = ImageRecord("a.jpg", w, h, boxes=np.clip(boxes, 0, [w, h, w, h]), names=["a"] * len(vals))
    back, _ = normalized(rec, obb=False)
    np.testing.assert_allclose(back, vals, rtol=0, atol=4e-16 * max(w, h))


# ---- the edit protocol (dsprep review) ------------------------------------------------------------------------------

def _edited(rec, keep=None):
    keep = np.arange(len(rec)) if keep is None else np.asarray(keep, np.intp)
    out = rec.select(keep)
    out.attrs["source_index"] = keep.astype(np.int64)
    return out


@pytest.mark.parametrize("name", ["yolo_ultralytics", "yolo_roboflow", "yolo_obb_dota8", "yolo_darknet_cvat"])
def test_untouched_records_save_byte_for_byte_and_reload(name):
    from dsprep.dataset import format_spec, reload_record
    ds = load_dataset(DATA / name)
    mod = format_spec(ds.format).edit
    for rec in ds.records:
        path = mod.annotation_file(ds, rec)
        if path is None:
            assert not Path(rec.meta["label_path"]).is_file()
            continue
        original = Path(path).read_bytes()
        assert mod.save_record(original, _edited(rec), path) == original
        again, _ = reload_record(ds, rec)
        assert again == rec and again.image_path == rec.image_path and again.split == rec.split


def test_edits_touch_only_their_lines(tmp_path):
    from dsprep.dataset import format_spec, reload_record
    src = tmp_path / "src"
    shutil.copytree(DATA / "yolo_ultralytics", src)
    lab = src / "labels" / "train" / "000000000009.txt"
    lab.write_bytes(b"0 0.500000 0.500000 0.250000 0.500000\r\n\r\n2 0.812500 0.250000 0.125000 0.187500\r\n")
    ds = load_dataset(src)
    mod = format_spec("yolo").edit
    rec = ds.records[0]
    ed = _edited(rec)
    ed.names[1] = "bicycle"                       # a new class: only that line changes
    out = mod.save_record(lab.read_bytes(), ed, str(lab))
    assert out == b"0 0.500000 0.500000 0.250000 0.500000\r\n\r\n1 0.812500 0.250000 0.125000 0.187500\r\n"
    ed.boxes[1, 0] = 70                           # moved: the line is written again, at full precision
    out = mod.save_record(lab.read_bytes(), ed, str(lab))
    assert out.endswith(b"\r\n1 0.8020833333333334 0.25 0.14583333333333334 0.1875\r\n")
    ed = _edited(rec, [1])                        # object 0 deleted, one added (96 x 64 image)
    ed = ImageRecord(rec.image_path, rec.width, rec.height, boxes=np.vstack([ed.boxes, [[0, 0, 48, 32]]]),
                     names=ed.names + ["person"], meta=dict(rec.meta), attrs={"source_index": np.array([1, -1])})
    out = mod.save_record(lab.read_bytes(), ed, str(lab))
    assert out == b"\r\n2 0.812500 0.250000 0.125000 0.187500\r\n0 0.25 0.25 0.5 0.5\r\n"
    lab.write_bytes(out)
    again, _ = reload_record(ds, rec)
    np.testing.assert_allclose(again.boxes, [[72, 10, 84, 22], [0, 0, 48, 32]], atol=1e-12)
    with pytest.raises(Exception, match="class zebra is not in the data set's class list"):
        ed.names[1] = "zebra"
        mod.save_record(lab.read_bytes(), ed, str(lab))


def test_yolo_formats_are_editable():
    from dsprep.dataset import editable_formats
    assert {"yolo", "yolo-obb", "labelme"} <= set(editable_formats())


def test_a_copy_whose_yaml_points_at_the_original_says_so(tmp_path):
    """A data.yaml with an absolute path: (as Roboflow and older tools write) read from a copy: dsprep follows path:
    as Ultralytics does, and says that the folder beside the YAML is not the one read."""
    run_cli("convert", DATA / "coco_roboflow", "--to", "yolo", "--out", tmp_path / "orig")
    yaml = tmp_path / "orig" / "data.yaml"
    yaml.write_text(f"path: {tmp_path / 'orig'}\n" + yaml.read_text())
    shutil.copytree(tmp_path / "orig", tmp_path / "copy")
    ds = load_dataset(tmp_path / "copy")
    elsewhere = [p for p in ds.problems if p.kind == "yaml_path_elsewhere"]
    assert elsewhere and str(tmp_path / "orig" / "images") in elsewhere[0].detail
    assert not [p for p in load_dataset(tmp_path / "orig").problems if p.kind == "yaml_path_elsewhere"]


@pytest.mark.parametrize("target", ["yolo", "yolo-seg"])
def test_info_finds_no_problem_in_what_dsprep_wrote_without_a_val_split(shared, tmp_path, target):
    """The VOC sample has trainval and test lists only: the written data.yaml names the training images as 'val'
    (Ultralytics requires the entry) and says so; info does not report that stand-in as a split_alias, while a
    data.yaml made by hand that names one folder twice still is (test above)."""
    import json as _json
    run_cli("convert", shared / "voc_sample", "--to", target, "--out", tmp_path / "y", "-q")
    assert "no validation split in the source" in (tmp_path / "y" / "data.yaml").read_text()
    report = _json.loads(run_cli("info", tmp_path / "y", "--json", "--rare-below", "0").output)
    assert report["problems"] == []
