"""dsprep merge: the union of data sets in VOC, COCO and YOLO, classes joined by name, names kept apart."""
import json
from pathlib import Path

import numpy as np
import pytest

from dsprep.ops.combine import combine, join_classes, join_meta
from dsprep.core import Dataset, ImageRecord
from dsprep.dataset import load_dataset

from helpers import run_cli, write_voc_tree

DATA = Path(__file__).parent / "data"


def ds_of(names_by_stem, classes, split=None, meta=None):
    recs = [ImageRecord(f"/d/{stem}.jpg", 10, 10, boxes=[[0, 0, 1, 1]] * len(names), names=names, split=split)
            for stem, names in names_by_stem.items()]
    return Dataset(Path("/d"), "voc", recs, classes=classes, meta=meta or {})


def test_join_classes_by_name_in_order():
    a = ds_of({"x": ["car"]}, ["car", "person"])
    b = ds_of({"y": ["dog"]}, ["dog", "car", "cat"])
    assert join_classes([a, b]) == ["car", "person", "dog", "cat"]


def test_join_meta_keeps_ids_unless_taken():
    a = ds_of({}, ["person", "car"], meta={"category_ids": {"person": 1, "car": 3}})
    b = ds_of({}, ["dog", "car", "bus"], meta={"category_ids": {"dog": 1, "car": 7, "bus": 6}})
    assert join_meta([a, b])["category_ids"] == {"person": 1, "car": 3, "bus": 6}


def test_combine_renames_later_inputs_only_across_inputs():
    a = ds_of({"img": ["car"], "other": []}, ["car"])
    b = ds_of({"img": ["dog"], "img_2": ["dog"]}, ["dog"])
    c = ds_of({"img": ["cat"]}, ["cat"])
    joined = combine([a, b, c], key=lambda r: f"JPEGImages/{r.stem}.jpg")
    stems = [r.stem for r in joined.records]
    # b's img becomes img_2, which b itself already uses: img_2_2; c's img becomes img_3
    assert stems == ["img", "other", "img_2_2", "img_2", "img_3"]
    assert joined.origin == [0, 0, 1, 1, 2]
    assert [(k, s) for k, _, s in joined.renamed] == [(1, "img_2_2"), (2, "img_3")]
    assert [r.stem for r in b.records] == ["img", "img_2"]  # inputs unchanged


def test_combine_same_name_in_another_split_is_no_clash_where_splits_are_folders():
    a = ds_of({"img": ["car"]}, ["car"], split="train")
    b = ds_of({"img": ["car"]}, ["car"], split="val")
    joined = combine([a, b], key=lambda r: f"images/{r.split}/{r.stem}.jpg")
    assert joined.renamed == [] and [r.split for r in joined.records] == ["train", "val"]


@pytest.fixture
def voc_small(tmp_path):
    """A VOC tree sharing an image name and split (000001 in test) with voc_sample, with a class of its own."""
    return write_voc_tree(tmp_path / "voc_small", {
        "000001": (64, 48, [("person", (2, 3, 30, 40)), ("kangaroo", (31, 4, 60, 44))]),
        "extra": (64, 48, [("car", (1, 1, 20, 20))])}, splits={"test": ["000001"], "val": ["extra"]})


@pytest.mark.parametrize("target", ["voc", "coco", "yolo"])
def test_merge_voc_coco_yolo(shared, voc_small, tmp_path, target):
    inputs = [shared / "voc_sample", DATA / "coco2017_mini", DATA / "yolo_ultralytics", voc_small]
    srcs = [load_dataset(p) for p in inputs]
    res = run_cli("merge", *inputs, "--to", target, "--out", tmp_path / "m", "--json", "-q")
    doc = json.loads(res.stdout)
    out = load_dataset(tmp_path / "m")
    assert out.format == target
    assert len(out.records) == sum(len(s.records) for s in srcs) == doc["counts"]["images"]
    # classes joined by name: one 'person', one 'car'; the first input's order first
    assert out.classes[:len(srcs[0].classes)] == srcs[0].classes or target == "voc"
    assert sorted(out.classes) == sorted({c for s in srcs for c in s.classes})
    crowd = sum(int(np.sum(r.attrs.get("iscrowd", []))) for s in srcs for r in s.records)
    kept = sum(len(r) for s in srcs for r in s.records) - (0 if target == "coco" else crowd)
    assert sum(len(r) for r in out.records) == kept
    # 000001 is in voc_sample and voc_small: the second kept apart as 000001_4, reported
    assert doc["counts"]["renamed_across_inputs"] == 1
    assert doc["renamed"] == [{"input": str(voc_small), "image": str(voc_small / "JPEGImages" / "000001.jpg"),
                               "as": "000001_4"}]
    by_stem = {r.stem: r for r in out.records}
    assert sorted(by_stem["000001_4"].names) == ["kangaroo", "person"]
    assert sorted(by_stem["000001"].names) == sorted(next(r for r in srcs[0].records if r.stem == "000001").names)
    assert "000001_4" in res.stderr


def test_same_named_splits_joined(shared, tmp_path):
    # yolo_ultralytics has train and val; the second input: voc_sample split into train, val and test as COCO
    run_cli("split", shared / "voc_sample", "--to", "coco", "--ratios", "train=0.6,val=0.2,test=0.2",
            "--out", tmp_path / "c", "-q")
    run_cli("merge", DATA / "yolo_ultralytics", tmp_path / "c", "--out", tmp_path / "m", "-q")
    out = load_dataset(tmp_path / "m")
    assert out.format == "yolo"
    splits = {}
    for r in out.records:
        splits.setdefault(r.split, set()).add(r.stem)
    want = {}
    for src in (load_dataset(DATA / "yolo_ultralytics"), load_dataset(tmp_path / "c")):
        for r in src.records:
            want.setdefault(r.split, set()).add(r.stem)
    assert splits == want and set(splits) == {"train", "val", "test"}
    assert len(splits["train"]) > 3 and len(splits["val"]) > 2


def test_coco_inputs_keep_category_ids(tmp_path):
    run_cli("merge", DATA / "coco2017_mini", DATA / "coco_cvat", "--out", tmp_path / "m", "-q")
    docs = {p.name: json.loads(p.read_text()) for p in (tmp_path / "m" / "annotations").iterdir()}
    assert sorted(docs) == ["instances_default.json", "instances_val2017.json"]
    cats = {c["name"]: c["id"] for c in docs["instances_val2017.json"]["categories"]}
    # coco2017_mini's ids kept; cvat's bicycle (id 3 there) clashes with car's 3 and gets a new one
    assert {k: cats[k] for k in ("person", "car", "dog", "bottle")} == {"person": 1, "car": 3, "dog": 18, "bottle": 44}
    assert cats["bicycle"] not in (1, 3, 18, 44)
    image_ids = [i["id"] for d in docs.values() for i in d["images"]]
    assert len(image_ids) == len(set(image_ids))


def test_merge_with_map_and_drop(shared, voc_small, tmp_path):
    res = run_cli("merge", shared / "voc_sample", voc_small, "--to", "coco", "--out", tmp_path / "m", "--map",
                  "kangaroo:animal,dog:animal", "--drop", "chair", "--json", "-q")
    counts = json.loads(res.stdout)["counts"]
    names = [n for p in (shared / "voc_sample", voc_small) for r in load_dataset(p).records for n in r.names]
    assert counts["class_renamed"] == names.count("kangaroo") + names.count("dog")
    assert counts["class_dropped"] == names.count("chair")
    out = load_dataset(tmp_path / "m")
    assert "animal" in out.classes and not {"kangaroo", "dog", "chair"} & set(out.classes)


@pytest.mark.parametrize("args, problem", [
    (["--map", "zebra:horse"], "no class 'zebra'"),
    (["--drop", "zebra"], "no class 'zebra'"),
])
def test_map_naming_a_class_no_input_has(voc_small, tmp_path, args, problem):
    res = run_cli("merge", DATA / "coco_cvat", voc_small, "--out", tmp_path / "m", *args, ok=False)
    assert res.exit_code == 2 and problem in res.output
    assert not (tmp_path / "m").exists()


def test_a_class_of_either_input_may_be_mapped(voc_small, tmp_path):
    run_cli("merge", DATA / "coco_cvat", voc_small, "--out", tmp_path / "m", "--map", "kangaroo:roo", "-q")
    assert "roo" in load_dataset(tmp_path / "m").classes


def test_needs_two_inputs_and_an_outside_output(voc_small, tmp_path):
    res = run_cli("merge", voc_small, "--out", tmp_path / "m", ok=False)
    assert res.exit_code == 2 and "two" in res.output
    res = run_cli("merge", DATA / "coco_cvat", voc_small, "--out", voc_small / "m", ok=False)
    assert res.exit_code == 2 and "input" in res.output


def test_merge_then_split(shared, voc_small, tmp_path):
    run_cli("merge", shared / "voc_sample", voc_small, DATA / "yolo_ultralytics", "--to", "yolo",
            "--out", tmp_path / "m", "-q")
    run_cli("split", tmp_path / "m", "--out", tmp_path / "s", "--ratios", "train=0.75,val=0.25", "-q")
    out = load_dataset(tmp_path / "s")
    assert {r.split for r in out.records} == {"train", "val"}
    assert len(out.records) == len(load_dataset(tmp_path / "m").records)
