"""--map / --drop: the mapping on records and class lists, and on convert, tile, split and merge in VOC, COCO, YOLO."""
import json
from pathlib import Path

import numpy as np
import pytest

from dsprep.ops.classmap import ClassMap, apply_to_records, parse_drop, parse_map
from dsprep.core import ImageRecord
from dsprep.dataset import load_dataset

from helpers import run_cli

DATA = Path(__file__).parent / "data"


def record(names):
    n = len(names)
    boxes = np.arange(n * 4, dtype=np.float64).reshape(n, 4) + np.array([0, 0, 1, 1])
    return ImageRecord("x.jpg", 100, 100, boxes=boxes, names=names, difficult=np.arange(n) % 2,
                       attrs={"id": np.arange(n) + 10})


@pytest.mark.parametrize("text, want", [
    ("car:vehicle", {"car": "vehicle"}),
    ("car:vehicle, truck : vehicle", {"car": "vehicle", "truck": "vehicle"}),
    ("a:b,b:a", {"a": "b", "b": "a"}),
    ("ns:cat:animal", {"ns:cat": "animal"}),
    ("traffic light:light", {"traffic light": "light"}),
])
def test_parse_map(text, want):
    assert parse_map(text) == want


@pytest.mark.parametrize("text, problem", [
    ("car", "not OLD:NEW"),
    ("car:", "not OLD:NEW"),
    (":car", "not OLD:NEW"),
    ("car:a,car:b", "mapped twice"),
    ("car:a,,b:c", "not OLD:NEW"),
])
def test_parse_map_refuses(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_map(text)


def test_parse_map_file(tmp_path):
    f = tmp_path / "map.txt"
    f.write_text("# VOC to three classes\ncar: vehicle\n\nbus:vehicle\nperson:human\n", encoding="utf-8")
    assert parse_map(str(f)) == {"car": "vehicle", "bus": "vehicle", "person": "human"}
    f.write_text("car vehicle\n")
    with pytest.raises(ValueError, match=r"map.txt:1: 'car vehicle' is not OLD:NEW"):
        parse_map(str(f))


def test_parse_drop():
    assert parse_drop("dog, cat,dog") == ("dog", "cat")
    assert parse_drop(None) == ()
    with pytest.raises(ValueError, match="empty name"):
        parse_drop("dog,,cat")


def test_apply_renames_merges_drops_and_never_touches_the_input():
    rec = record(["car", "dog", "bus", "person", "dog"])
    before = (rec.boxes.copy(), list(rec.names), rec.difficult.copy())
    cmap = ClassMap({"car": "vehicle", "bus": "vehicle"}, ("dog",))
    out, counts = cmap.apply(rec)
    assert out.names == ["vehicle", "vehicle", "person"]
    assert counts == {"class_renamed": 2, "class_dropped": 2}
    np.testing.assert_array_equal(out.boxes, rec.boxes[[0, 2, 3]])
    np.testing.assert_array_equal(out.difficult, rec.difficult[[0, 2, 3]])
    np.testing.assert_array_equal(out.attrs["id"], [10, 12, 13])
    assert np.array_equal(rec.boxes, before[0]) and rec.names == before[1]
    assert np.array_equal(rec.difficult, before[2])


def test_swap_is_not_chained():
    out, counts = ClassMap({"a": "b", "b": "a"}).apply(record(["a", "b", "c"]))
    assert out.names == ["b", "a", "c"] and counts == {"class_renamed": 2}


@pytest.mark.parametrize("rename, drop, classes, want", [
    ({"car": "vehicle", "bus": "vehicle"}, (), ["bus", "car", "dog"], ["vehicle", "dog"]),
    ({"dog": "canine"}, ("bus",), ["bus", "car", "dog"], ["car", "canine"]),
    ({"car": "dog"}, (), ["bus", "car", "dog"], ["bus", "dog"]),
    ({}, ("car",), ["car"], []),
])
def test_class_list_keeps_its_order(rename, drop, classes, want):
    assert ClassMap(rename, drop).classes(classes) == want


def test_check_names_unknown_classes():
    with pytest.raises(ValueError, match="--map: no class 'zebra'"):
        ClassMap({"zebra": "horse"}).check(["car"])
    with pytest.raises(ValueError, match="--drop: no class 'zebra'"):
        ClassMap({}, ("zebra",)).check(["car"])
    with pytest.raises(ValueError, match="both mapped"):
        ClassMap({"car": "x"}, ("car",))


def test_coco_ids_follow_their_class():
    meta = {"category_ids": {"person": 1, "car": 3, "bus": 6, "dog": 18},
            "supercategories": {"person": "person", "car": "vehicle", "bus": "vehicle", "dog": "animal"}}
    out = ClassMap({"person": "human", "bus": "car"}, ("dog",)).meta(meta)
    assert out["category_ids"] == {"human": 1, "car": 3}
    assert out["supercategories"] == {"human": "person", "car": "vehicle"}
    assert meta["category_ids"]["person"] == 1  # the input's meta unchanged


def test_apply_to_records_sums():
    recs, counts = apply_to_records([record(["a", "b"]), record([]), record(["b"])], ClassMap({"b": "c"}, ("a",)))
    assert [r.names for r in recs] == [["c"], [], ["c"]] and counts == {"class_renamed": 2, "class_dropped": 1}


# ---- on the commands -------------------------------------------------------------------------------------------

def test_convert_voc_to_yolo_with_map(shared, tmp_path):
    src = load_dataset(shared / "voc_sample")
    names = [n for r in src.records for n in r.names]
    res = run_cli("convert", shared / "voc_sample", "--to", "yolo", "--out", tmp_path / "y", "--map",
                  "car:vehicle,bus:vehicle,person:human", "--drop", "chair", "--json")
    counts = json.loads(res.stdout)["counts"]
    assert counts["class_renamed"] == sum(names.count(c) for c in ("car", "bus", "person"))
    assert counts["class_dropped"] == names.count("chair") > 0
    assert "class_renamed" in res.stderr and "class_dropped" in res.stderr
    out = load_dataset(tmp_path / "y")
    # the class list keeps its order: 'bus' (first of the merged) takes the place of both
    want = [{"bus": "vehicle", "car": "vehicle", "person": "human"}.get(c, c) for c in src.classes if c != "chair"]
    assert out.classes == list(dict.fromkeys(want))
    got = sorted(n for r in out.records for n in r.names)
    assert got == sorted({"bus": "vehicle", "car": "vehicle", "person": "human"}.get(n, n) for n in names
                         if n != "chair")


def test_convert_coco_keeps_ids_of_renamed_classes(tmp_path):
    run_cli("convert", DATA / "coco2017_mini", "--to", "coco", "--out", tmp_path / "c", "--map", "person:human",
            "--drop", "bottle")
    doc = json.loads((tmp_path / "c" / "annotations" / "instances_val2017.json").read_text())
    cats = {c["name"]: c["id"] for c in doc["categories"]}
    assert cats == {"human": 1, "car": 3, "dog": 18}
    assert {a["category_id"] for a in doc["annotations"]} <= {1, 3, 18}


def test_convert_yolo_merge_two_classes(tmp_path):
    src = load_dataset(DATA / "yolo_ultralytics")
    run_cli("convert", DATA / "yolo_ultralytics", "--to", "yolo", "--out", tmp_path / "y", "--map",
            "car:vehicle,bicycle:vehicle")
    out = load_dataset(tmp_path / "y")
    assert out.classes == ["person", "vehicle", "traffic light"]
    assert sum(len(r) for r in out.records) == sum(len(r) for r in src.records)
    assert sum(r.names.count("vehicle") for r in out.records) == \
        sum(r.names.count("car") + r.names.count("bicycle") for r in src.records)


def test_map_from_a_file(tmp_path):
    f = tmp_path / "m.txt"
    f.write_text("car:auto\nperson:human\n")
    run_cli("convert", DATA / "coco_cvat", "--to", "voc", "--out", tmp_path / "v", "--map", f)
    assert set(load_dataset(tmp_path / "v").classes) <= {"auto", "human", "bicycle"}


@pytest.mark.parametrize("args, problem", [
    (["--map", "zebra:horse"], "no class 'zebra'"),
    (["--drop", "zebra"], "no class 'zebra'"),
    (["--map", "car:x", "--drop", "car"], "both mapped"),
    (["--map", "car"], "not OLD:NEW"),
])
def test_unknown_class_is_a_usage_error(tmp_path, args, problem):
    res = run_cli("convert", DATA / "coco_cvat", "--to", "yolo", "--out", tmp_path / "o", *args, ok=False)
    assert res.exit_code == 2 and problem in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


def test_tile_with_map(tmp_path):
    res = run_cli("tile", DATA / "coco_cvat", "--out", tmp_path / "t", "--size", "64", "--gap", "16", "--map",
                  "car:vehicle", "--drop", "person", "--json", "-q")
    counts = json.loads(res.stdout)["counts"]
    assert counts["class_renamed"] > 0 and counts["class_dropped"] > 0
    out = load_dataset(tmp_path / "t")
    names = {n for r in out.records for n in r.names}
    assert "vehicle" in names and not names & {"car", "person"}


@pytest.mark.parametrize("command, out", [("voc-to-h5", "d.h5"), ("voc-to-pickle", "d.pkl")])
def test_packing_with_map(shared, tmp_path, command, out):
    src = load_dataset(shared / "voc_sample")
    names = [n for r in src.records for n in r.names]
    res = run_cli(command, shared / "voc_sample", tmp_path / out, "--size", "64", "--map", "car:vehicle,bus:vehicle",
                  "--drop", "chair", "--json", "-q")
    counts = json.loads(res.stdout)["counts"]
    assert counts["class_renamed"] == names.count("car") + names.count("bus")
    assert counts["class_dropped"] == names.count("chair")
    packed = load_dataset(tmp_path / out)
    assert "vehicle" in packed.classes and not {"car", "bus", "chair"} & set(packed.classes)
    assert sorted(n for r in packed.records for n in r.names) == \
        sorted({"car": "vehicle", "bus": "vehicle"}.get(n, n) for n in names if n != "chair")


def test_dedup_out_with_map(tmp_path):
    run_cli("dedup", DATA / "coco_cvat", "--out", tmp_path / "d", "--map", "car:vehicle", "--drop", "bicycle", "-q")
    out = load_dataset(tmp_path / "d")
    names = {n for r in out.records for n in r.names}
    assert "vehicle" in out.classes and "vehicle" in names and not {"car", "bicycle"} & (names | set(out.classes))
    res = run_cli("dedup", DATA / "coco_cvat", "--map", "zebra:horse", ok=False)
    assert res.exit_code == 2 and "zebra" in res.output
