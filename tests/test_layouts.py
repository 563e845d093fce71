"""Real export layouts that used to read as nothing: each fixture is laid out as the named tool writes it
(tests/data/make_fixtures.py), and must read with its objects, its images and its splits, or say what it left."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dsprep.dataset import detect_format, load_dataset
from dsprep.images import read_record_image

from helpers import run_cli

DATA = Path(__file__).parent / "data"


def kinds(ds):
    return [p.kind for p in ds.problems]


def by_stem(ds):
    return {Path(r.image_path).stem: r for r in ds.records}


# ---- YOLO: images/ + labels/ with a class file at the root ---------------------------------------------------------

def test_label_studio_yolo_export_is_detected_and_read():
    root = DATA / "yolo_labelstudio"
    assert detect_format(root) == "yolo"
    for fmt in (None, "yolo"):
        ds = load_dataset(root, fmt=fmt)
        assert ds.classes == ["Car", "Pedestrian", "Traffic Light"]  # classes.txt order, not sorted
        assert kinds(ds) == []
        recs = by_stem(ds)
        assert sorted(recs) == ["1a2b3c4d-crossing", "9f8e7d6c-lights"]
        crossing = recs["1a2b3c4d-crossing"]
        assert crossing.names == ["Pedestrian", "Car"]
        # Label Studio's percentages of the 120x80 image: x 10..25 %, y 12.5..62.5 %; x 55..95 %, y 40..70 %
        np.testing.assert_allclose(crossing.boxes, [[12, 10, 30, 50], [66, 32, 114, 56]], atol=1e-9)
        assert all(Path(r.image_path).parent.name == "images" for r in ds.records)
    summary = run_cli("info", root, "--json").stdout
    assert json.loads(summary)["objects"] == 3


def test_labels_no_image_leads_to_are_counted_never_silence(tmp_path):
    # the same export with its images moved to the root: the class file makes it a flat YOLO folder whose images
    # have no label beside them; the labels/ folder is never read and must be said, with its count
    root = tmp_path / "ls"
    shutil.copytree(DATA / "yolo_labelstudio", root)
    for p in (root / "images").iterdir():
        p.rename(root / p.name)
    (root / "images").rmdir()
    ds = load_dataset(root, fmt="yolo")
    assert sum(len(r) for r in ds.records) == 0
    assert kinds(ds) == ["labels_not_read"]
    assert ds.problems[0].detail.startswith(f"2 label files under {root} never read")
    out = run_cli("info", root, "--format", "yolo").output
    assert "labels_not_read" in out and "problems: none" not in out


def test_cvat_yolo_list_leaving_an_image_out_counts_its_label(tmp_path):
    root = tmp_path / "cvat"
    shutil.copytree(DATA / "yolo_darknet_cvat", root)
    (root / "train.txt").write_text("data/obj_train_data/frame_000001.jpg\n")
    ds = load_dataset(root)
    assert len(ds.records) == 1
    assert kinds(ds) == ["labels_not_read"]
    assert ds.problems[0].file.endswith("frame_000000.txt") and ds.problems[0].detail.startswith("1 label file ")


def test_datumaro_yolo_export_reads_both_subsets_without_rounding_problems():
    ds = load_dataset(DATA / "yolo_datumaro")
    assert detect_format(DATA / "yolo_datumaro") == "yolo"
    assert ds.classes == ["bus", "car"]
    assert sorted((Path(r.image_path).name, r.split) for r in ds.records) == [("0001.jpg", "train"),
                                                                            ("0002.jpg", "val")]
    assert kinds(ds) == []  # 6 decimals reach 1e-5 px past the edge: rounding, not clipped_box
    edge = by_stem(ds)["0001"]
    assert edge.boxes[0, 2] == 97.0  # 0.706186 + 0.587629 / 2 = 1.0000005: clipped to the image, exactly
    np.testing.assert_allclose(edge.boxes, [[40, 20, 97, 61], [0, 0, 30, 25]], atol=1e-4)


@pytest.mark.parametrize("cx, flagged", [("0.706186", False), ("0.706190", False), ("0.716186", True)])
def test_only_overshoots_beyond_rounding_are_clipped_box(tmp_path, cx, flagged):
    # the box reaches (cx + 0.2938145) * 97 px: 4.9e-5 and 4.4e-4 px past the edge are rounding; 0.97 px is not
    root = tmp_path / "d"
    shutil.copytree(DATA / "yolo_datumaro", root)
    lab = root / "obj_train_data" / "0001.txt"
    lines = lab.read_text().splitlines()
    fields = lines[0].split()
    fields[1] = cx
    lab.write_text(" ".join(fields) + "\n" + lines[1] + "\n")
    over = (float(cx) + float(fields[3]) / 2 - 1) * 97
    assert 0 < over < 1e-3 or (flagged and over > 0.9)
    ds = load_dataset(root)
    assert ("clipped_box" in kinds(ds)) == flagged
    assert by_stem(ds)["0001"].boxes[0, 2] == 97.0


def test_datumaro_loose_yolo_reads_subsets_and_leaves_its_readme():
    root = DATA / "yolo_datumaro_loose"
    assert detect_format(root) == "yolo"
    ds = load_dataset(root)
    assert ds.classes == ["bus", "car"]
    assert sorted(r.split for r in ds.records) == ["train", "valid"]
    assert sum(len(r) for r in ds.records) == 3 and kinds(ds) == []
    assert [r.names for r in ds.records if r.split == "valid"] == [["bus", "car"]]
    assert len(load_dataset(root, split="valid").records) == 1


# ---- COCO task files that are not instances_* ---------------------------------------------------------------------

@pytest.mark.parametrize("task, classes", [("instances", ["person", "bear"]), ("person_keypoints", ["person"]),
                                           ("stuff", ["floor-other", "sky-other"])])
def test_every_coco2017_task_file_with_boxes_finds_its_images(task, classes):
    f = DATA / "coco2017_tasks" / "annotations" / f"{task}_val2017.json"
    ds = load_dataset(f)
    assert ds.classes == classes and kinds(ds) == []
    assert {r.split for r in ds.records} == {"val2017"}
    assert all(Path(r.image_path).is_file() and Path(r.image_path).parent.name == "val2017" for r in ds.records)
    for rec in ds.records:
        assert read_record_image(rec).shape == (60, 80, 3)


def test_coco2017_folder_reads_instances_and_names_the_other_task_files():
    ds = load_dataset(DATA / "coco2017_tasks")
    assert ds.classes == ["person", "bear"]
    assert kinds(ds) == ["coco_files_not_read"]
    assert "person_keypoints_val2017.json, stuff_val2017.json" in ds.problems[0].detail
    assert "captions" not in ds.problems[0].detail  # no boxes there


@pytest.mark.parametrize("task", ["person_keypoints", "stuff"])
def test_coco2017_folder_with_one_other_task_reads_it(tmp_path, task):
    root = tmp_path / "coco"
    shutil.copytree(DATA / "coco2017_tasks", root)
    for p in (root / "annotations").glob("*.json"):
        if not p.name.startswith(task):
            p.unlink()
    ds = load_dataset(root)
    assert kinds(ds) == [] and {r.split for r in ds.records} == {"val2017"}
    assert all(Path(r.image_path).is_file() for r in ds.records)
    assert sum(len(r) for r in ds.records) == {"person_keypoints": 1, "stuff": 2}[task]


@pytest.mark.parametrize("where", [".", "train", "train/_annotations.coco.json"])
def test_roboflow_coco_finds_its_images_beside_the_json(where):
    ds = load_dataset(DATA / "coco_roboflow" / where)
    assert ds.records and kinds(ds) == []
    assert all(Path(r.image_path).is_file() for r in ds.records)
    if where == ".":
        assert {r.split for r in ds.records} == {"train", "valid"}


# ---- Roboflow's oriented-box export: data.yaml + <split>/labelTxt/ (DOTA lines) + <split>/images/ ----------------

def test_roboflow_obb_export_reads_its_objects():
    root = DATA / "dota_roboflow_obb"
    assert detect_format(root) == "dota"
    ds = load_dataset(root)
    assert ds.classes == ["plane", "ship", "storage-tank"]  # data.yaml's order
    assert kinds(ds) == []
    recs = by_stem(ds)
    assert {s: r.split for s, r in recs.items()} == {"P0001_png.rf.4c1d2e3f": "train",
                                                     "P0002_png.rf.7a8b9c0d": "train",
                                                     "P0003_png.rf.0e1f2a3b": "valid"}
    first = recs["P0001_png.rf.4c1d2e3f"]
    assert first.names == ["ship", "plane"]
    np.testing.assert_array_equal(first.polygons[0], [[20, 30], [60, 22], [66, 48], [25, 56]])
    assert recs["P0002_png.rf.7a8b9c0d"].difficult.tolist() == [1]
    valid = load_dataset(root, split="valid")
    assert [r.split for r in valid.records] == ["valid"] and valid.classes == ds.classes
    assert json.loads(run_cli("info", root, "--json").stdout)["objects"] == 4


def test_roboflow_obb_export_converts_with_its_splits(tmp_path):
    run_cli("convert", DATA / "dota_roboflow_obb", "--to", "yolo-obb", "--out", tmp_path / "o")
    back = load_dataset(tmp_path / "o")
    assert sorted(r.split for r in back.records) == ["train", "train", "val"]  # (data.yaml's key for valid/)
    assert sum(len(r) for r in back.records) == 4


# ---- labelme: imagePath naming the JSON itself ---------------------------------------------------------------------

def test_labelme_tutorial_json_naming_itself_uses_the_image_beside_it():
    ds = load_dataset(DATA / "labelme_embedded")
    rec, = ds.records
    assert rec.image_path.endswith("apc2016_obj3.jpg")
    assert kinds(ds) == []
    assert read_record_image(rec).shape == (64, 96, 3)
