"""Nothing dropped without its name and count; no output dsprep itself would call broken.

Flags kept where the target can hold them and counted where it cannot; missing images named; the VOC writer's
numbers; symlinked images; class lists and ids through round trips; tile's remnants and difficult 2; and `dsprep
info` on the output of every format pair (and of tile) reporting no problem."""
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from dsprep.core import ImageRecord
from dsprep.dataset import load_dataset, writable_formats
from dsprep.voc import format_voc, parse_voc

from helpers import gradient, run_cli, voc_xml, write_voc_tree

TARGETS = ["voc", "dota", "coco", "yolo", "yolo-obb", "labelme"]
FLAGS = "<truncated>1</truncated><difficult>1</difficult>"


def flagged_voc(root: Path) -> Path:
    """Six objects: 3 difficult, 2 truncated (one both), in train and val lists."""
    return write_voc_tree(root, {
        "a": (80, 60, [("cat", (5, 6, 30, 40), FLAGS), ("dog", (40, 10, 70, 50), "<difficult>1</difficult>"),
                       ("cat", (2, 2, 20, 20))]),
        "b": (80, 60, [("dog", (10, 10, 50, 50), "<difficult>1</difficult>"),
                       ("cat", (30, 5, 79, 59), "<truncated>1</truncated>"), ("dog", (1, 1, 9, 9))])},
        splits={"train": ["a"], "val": ["b"]})


def flags(ds):
    recs = sorted(ds.records, key=lambda r: r.stem)
    return ([int(d) for r in recs for d in r.difficult], [bool(t) for r in recs for t in r.truncated])


@pytest.mark.parametrize("target,kept", [("voc", {"difficult", "truncated"}), ("coco", {"difficult", "truncated"}),
                                         ("labelme", {"difficult", "truncated"}), ("dota", {"difficult"}),
                                         ("yolo", set()), ("yolo-obb", set())])
def test_difficult_and_truncated_kept_or_counted(tmp_path, target, kept):
    src = flagged_voc(tmp_path / "voc")
    diff, trunc = flags(load_dataset(src))
    assert sum(diff) == 3 and sum(trunc) == 2
    res = run_cli("convert", src, "--to", target, "--out", tmp_path / "out", "--json")
    counts = json.loads(res.stdout)["counts"]
    back_diff, back_trunc = flags(load_dataset(tmp_path / "out"))
    name = target.upper()
    if "difficult" in kept:
        assert back_diff == diff and "difficult_not_kept" not in counts
    else:
        assert counts["difficult_not_kept"] == 3
        assert f"difficult_not_kept: 3 (difficult flags not kept: {name} has no field for them)" in res.stderr
    if "truncated" in kept:
        assert back_trunc == trunc and "truncated_not_kept" not in counts
    else:
        assert counts["truncated_not_kept"] == 2
        assert f"truncated_not_kept: 2 (truncated flags not kept: {name} has no field for them)" in res.stderr


def test_coco_keeps_flags_in_attributes_as_cvat_does_and_pycocotools_reads_it(tmp_path):
    run_cli("convert", flagged_voc(tmp_path / "voc"), "--to", "coco", "--out", tmp_path / "coco")
    path = tmp_path / "coco" / "annotations" / "instances_train.json"
    anns = json.loads(path.read_text())["annotations"]
    assert [a.get("attributes") for a in anns] == [{"difficult": True, "truncated": True}, {"difficult": True},
                                                   None]
    assert all(a["iscrowd"] == 0 for a in anns)  # difficult is not crowd
    from pycocotools.coco import COCO
    coco = COCO(str(path))
    assert len(coco.getAnnIds()) == 3


def test_cvat_attributes_are_read_as_flags(tmp_path):
    """CVAT's COCO 1.0 export writes {"occluded": false, "rotation": 0.0} plus the task's own attributes."""
    root = tmp_path / "cvat"
    (root / "images").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "x.jpg"), gradient(50, 40))
    doc = {"licenses": [{"name": "", "id": 0, "url": ""}], "info": {"contributor": "", "version": ""},
           "categories": [{"id": 1, "name": "car", "supercategory": ""}],
           "images": [{"id": 1, "width": 50, "height": 40, "file_name": "x.jpg", "license": 0}],
           "annotations": [
               {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [], "area": 100.0,
                "bbox": [1.0, 2.0, 10.0, 10.0], "iscrowd": 0,
                "attributes": {"occluded": False, "rotation": 0.0, "difficult": True, "truncated": False}},
               {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [], "area": 100.0,
                "bbox": [20.0, 2.0, 10.0, 10.0], "iscrowd": 0,
                "attributes": {"occluded": True, "rotation": 0.0, "truncated": "true"}}]}
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_default.json").write_text(json.dumps(doc))
    ds = load_dataset(root)
    assert flags(ds) == ([1, 0], [False, True])
    run_cli("convert", root, "--to", "coco", "--out", tmp_path / "again")
    again = json.loads((tmp_path / "again" / "annotations" / "instances_default.json").read_text())
    assert [a["attributes"] for a in again["annotations"]] == [a["attributes"] for a in doc["annotations"]]


def test_labelme_image_flags_counted(tmp_path):
    root = tmp_path / "lm"
    root.mkdir()
    cv2.imwrite(str(root / "a.jpg"), gradient(40, 30))
    (root / "a.json").write_text(json.dumps({
        "version": "5.4.1", "flags": {"blurry": True, "night": False, "indoor": True},
        "shapes": [{"label": "cat", "points": [[1, 2], [20, 25]], "group_id": None, "description": "",
                    "shape_type": "rectangle", "flags": {}, "mask": None}],
        "imagePath": "a.jpg", "imageData": None, "imageHeight": 30, "imageWidth": 40}))
    res = run_cli("convert", root, "--to", "yolo", "--out", tmp_path / "y", "--json")
    assert json.loads(res.stdout)["counts"]["image_flags_not_kept"] == 2
    assert "image_flags_not_kept: 2" in res.stderr
    res = run_cli("convert", root, "--to", "labelme", "--out", tmp_path / "l", "--json")
    assert "image_flags_not_kept" not in json.loads(res.stdout)["counts"]
    assert json.loads((tmp_path / "l" / "a.json").read_text())["flags"] == {"blurry": True, "night": False,
                                                                            "indoor": True}


def test_dota_difficult_2_becomes_voc_truncated(tmp_path):
    root = tmp_path / "dota"
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    cv2.imwrite(str(root / "images" / "P1.png"), gradient(100, 80))
    (root / "labelTxt" / "P1.txt").write_text("10 10 40 10 40 30 10 30 plane 2\n50 50 90 50 90 70 50 70 ship 0\n")
    run_cli("convert", root, "--to", "voc", "--out", tmp_path / "voc")
    text = (tmp_path / "voc" / "Annotations" / "P1.xml").read_text()
    assert "<difficult>2</difficult>" not in text
    rec = load_dataset(tmp_path / "voc").records[0]
    assert rec.difficult.tolist() == [1, 0] and rec.truncated.tolist() == [True, False]


def test_convert_with_missing_images_names_each(tmp_path):
    src = flagged_voc(tmp_path / "voc")
    (src / "JPEGImages" / "b.jpg").unlink()
    res = run_cli("convert", src, "--to", "yolo", "--out", tmp_path / "y", ok=False)
    assert res.exit_code == 1 and "b.jpg: image not found" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "y").exists()
    res = run_cli("convert", src, "--to", "yolo", "--out", tmp_path / "y", "--on-error", "skip", "--json")
    doc = json.loads(res.stdout)
    assert doc["counts"]["images"] == 1
    assert [s["input"] for s in doc["skipped"]] == [str(src / "JPEGImages" / "b.jpg")]
    assert "image not found" in doc["skipped"][0]["reason"]
    assert sorted(p.name for p in (tmp_path / "y" / "labels").rglob("*.txt")) == ["a.txt"]


def test_voc_writer_writes_the_shortest_round_tripping_number():
    rec = ImageRecord("x.jpg", 100, 100, boxes=[[1.9999999999999998, 0.1, 50.25, 60.0]], names=["cat"])
    text = format_voc(rec).decode()
    assert "<xmin>2.99999999999999978</xmin>" in text and "<ymin>1.10000000000000001</ymin>" in text
    assert "<xmax>50.25</xmax>" in text and "<ymax>60</ymax>" in text
    back = parse_voc(format_voc(rec))[0]
    assert back.boxes.tolist() == rec.boxes.tolist()
    assert max(len(t) for t in ("2.99999999999999978", "1.10000000000000001")) < 24


def test_one_pixel_coco_box_is_a_valid_one_pixel_voc_box(tmp_path):
    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "x.jpg"), gradient(30, 20))
    doc = {"images": [{"id": 1, "width": 30, "height": 20, "file_name": "x.jpg"}],
           "categories": [{"id": 1, "name": "dot"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 5, 1, 1], "area": 1,
                            "iscrowd": 0, "segmentation": []}]}
    (root / "annotations.json").write_text(json.dumps(doc))
    run_cli("convert", root / "annotations.json", "--to", "voc", "--out", tmp_path / "voc")
    text = (tmp_path / "voc" / "Annotations" / "x.xml").read_text()
    assert "<xmin>5</xmin>" in text and "<xmax>5</xmax>" in text and "<ymin>6</ymin>" in text
    assert _problems(tmp_path / "voc") == []
    assert load_dataset(tmp_path / "voc").records[0].boxes.tolist() == [[4, 5, 5, 6]]


def test_relative_symlinked_images_are_placed_as_their_targets(tmp_path):
    src = flagged_voc(tmp_path / "voc")
    store = tmp_path / "store"
    store.mkdir()
    for p in (src / "JPEGImages").iterdir():  # the images live elsewhere; the data set links them relatively
        shutil.move(str(p), store / p.name)
        os.symlink(os.path.relpath(store / p.name, p.parent), p)
    for target in ("yolo", "coco", "voc"):
        run_cli("convert", src, "--to", target, "--out", tmp_path / f"out_{target}")
        images = [p for p in (tmp_path / f"out_{target}").rglob("*.jpg")]
        assert len(images) == 2
        for p in images:
            assert not p.is_symlink() and p.read_bytes() == (store / p.name).read_bytes()


def test_yolo_voc_yolo_keeps_class_order(tmp_path):
    root = tmp_path / "yolo"
    for d in ("images/train", "labels/train"):
        (root / d).mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "train" / "a.jpg"), gradient(40, 40))
    (root / "labels" / "train" / "a.txt").write_text("2 0.5 0.5 0.2 0.2\n0 0.3 0.3 0.1 0.1\n")
    (root / "data.yaml").write_text("train: images/train\nval: images/train\nnames: [zebra, apple, mango]\n")
    run_cli("convert", root, "--to", "voc", "--out", tmp_path / "voc")
    assert (tmp_path / "voc" / "labels.txt").read_text() == "zebra\napple\nmango\n"
    assert load_dataset(tmp_path / "voc").classes == ["zebra", "apple", "mango"]
    run_cli("convert", tmp_path / "voc", "--to", "yolo", "--out", tmp_path / "yolo2")
    assert (tmp_path / "yolo2" / "labels" / "train" / "a.txt").read_text() == \
        (root / "labels" / "train" / "a.txt").read_text()
    assert load_dataset(tmp_path / "yolo2").classes == ["zebra", "apple", "mango"]


def test_coco_voc_coco_keeps_category_ids(tmp_path):
    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "x.jpg"), gradient(60, 40))
    cats = [{"id": 18, "name": "dog", "supercategory": "animal"}, {"id": 3, "name": "car", "supercategory": ""},
            {"id": 90, "name": "toothbrush", "supercategory": ""}]
    doc = {"images": [{"id": 7, "width": 60, "height": 40, "file_name": "x.jpg"}], "categories": cats,
           "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [1, 2, 10, 10], "area": 100,
                            "iscrowd": 0, "segmentation": []},
                           {"id": 2, "image_id": 7, "category_id": 18, "bbox": [20, 2, 10, 10], "area": 100,
                            "iscrowd": 0, "segmentation": []}]}
    (root / "ann.json").write_text(json.dumps(doc))
    run_cli("convert", root / "ann.json", "--to", "voc", "--out", tmp_path / "voc")
    assert (tmp_path / "voc" / "labels.txt").read_text() == "dog 18\ncar 3\ntoothbrush 90\n"
    run_cli("convert", tmp_path / "voc", "--to", "coco", "--out", tmp_path / "coco2")
    files = list((tmp_path / "coco2" / "annotations").glob("*.json"))
    again = json.loads(files[0].read_text())
    assert [(c["id"], c["name"]) for c in again["categories"]] == [(18, "dog"), (3, "car"), (90, "toothbrush")]
    assert sorted(a["category_id"] for a in again["annotations"]) == [3, 18]


def test_tile_on_voc_drops_remnants_and_marks_cut_objects_truncated(tmp_path):
    # b's cat reaches 1.5 px into the second column of tiles (x origins 0, 100 at size 100, gap 0): cut as the
    # devkit cuts (truncated coordinates), that remnant is under a pixel wide; the dog is mostly cut away by the
    # border (difficult 2 in DOTA's terms)
    src = write_voc_tree(tmp_path / "voc", {"b": (200, 100, [("cat", (10, 10, 101.5, 50)),
                                                             ("dog", (95, 60, 190, 90), "<difficult>1</difficult>"),
                                                             ("cow", (20, 60, 104, 90))])},
                         splits={"train": ["b"]})
    res = run_cli("tile", src, "--out", tmp_path / "t", "--size", "100", "--gap", "0", "--json", "-q")
    counts = json.loads(res.stdout)["counts"]
    text = "".join(p.read_text() for p in (tmp_path / "t" / "Annotations").iterdir())
    assert "<difficult>2</difficult>" not in text
    ds = load_dataset(tmp_path / "t")
    assert all(((r.boxes[:, 2:] - r.boxes[:, :2]) >= 1).all() for r in ds.records)
    assert counts["remnant_dropped"] >= 1 and "remnant_dropped" in res.stderr
    left = next(r for r in ds.records if r.stem.endswith("__0___0"))
    dog = left.names.index("dog")  # 5 of 95 px kept: cut, mostly away: truncated, its own difficult flag kept
    assert left.truncated[dog] and left.difficult[dog] == 1
    assert _problems(tmp_path / "t") == []
    assert (tmp_path / "t" / "ImageSets" / "Main" / "train.txt").is_file()


# ---- every format pair: dsprep's outputs read back without a problem ------------------------------------------

@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """A clean VOC data set (splits, flags, a border-touching box, a float box), and it converted to every format."""
    base = tmp_path_factory.mktemp("pairs")
    voc = flagged_voc(base / "voc")
    (voc / "Annotations" / "c.xml").write_bytes(voc_xml("c.jpg", 70, 50, [("dog", (1.5, 2.25, 70, 50)),
                                                                          ("cat", (3, 3, 3, 9))]))
    cv2.imwrite(str(voc / "JPEGImages" / "c.jpg"), gradient(70, 50))
    (voc / "ImageSets" / "Main" / "val.txt").write_text("b\nc\n")
    out = {"voc": voc}
    for target in TARGETS:
        if target != "voc":
            run_cli("convert", voc, "--to", target, "--out", base / f"from_voc_{target}")
            out[target] = base / f"from_voc_{target}"
    return base, out


def _problems(path):
    """What info finds wrong, less its judgements of the boxes as a whole (dsprep.boxstats: rare classes in these
    few images, the deliberate 1-px boxes as tiny_box): those are no losses of a conversion."""
    from dsprep.boxstats import KINDS
    return [p for p in json.loads(run_cli("info", path, "--json").stdout)["problems"] if p["kind"] not in KINDS]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("source", TARGETS)
def test_every_format_pair_reads_back_without_a_problem(sources, tmp_path, source, target):
    base, src = sources
    assert _problems(src[source]) == []
    res = run_cli("convert", src[source], "--to", target, "--out", tmp_path / "out", "--json")
    assert _problems(tmp_path / "out") == []
    out = load_dataset(tmp_path / "out")
    assert len(out.records) == 3 and json.loads(res.stdout)["counts"]["images"] == 3
    assert {r.stem: r.split for r in out.records} == {"a": "train", "b": "val", "c": "val"}


@pytest.mark.parametrize("source", TARGETS)
def test_tile_output_reads_back_without_a_problem(sources, tmp_path, source):
    base, src = sources
    run_cli("tile", src[source], "--out", tmp_path / "t", "--size", "32", "--gap", "8", "-q")
    assert _problems(tmp_path / "t") == []
    assert {r.split for r in load_dataset(tmp_path / "t").records} == {"train", "val"}
