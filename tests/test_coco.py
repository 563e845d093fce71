"""The COCO instances reader."""
import json

import numpy as np
import pytest

from dsprep.coco import detect, parse_coco
from dsprep.core import ErrorPolicy, ParseError
from dsprep.dataset import detect_format, load_dataset

from helpers import gradient

DOC = {
    "info": {}, "licenses": [],
    "images": [{"id": 42, "file_name": "b.jpg", "width": 64, "height": 48},
               {"id": 7, "file_name": "a.jpg", "width": 32, "height": 16},
               {"id": 9, "file_name": "empty.jpg", "width": 10, "height": 10}],
    "annotations": [
        {"id": 1, "image_id": 42, "category_id": 3, "bbox": [1.5, 2, 10, 20], "area": 150.5, "iscrowd": 0},
        {"id": 2, "image_id": 7, "category_id": 1, "bbox": [0, 0, 32, 16], "area": 512, "iscrowd": 1},
        {"id": 3, "image_id": 42, "category_id": 1, "bbox": [5, 5, 1, 1]},
        {"id": 4, "image_id": 99, "category_id": 1, "bbox": [5, 5, 1, 1]},
        {"id": 5, "image_id": 42, "category_id": 77, "bbox": [5, 5, 1, 1]}],
    "categories": [{"id": 3, "name": "zebra"}, {"id": 1, "name": "apple"}],
}


def test_parse_coco_records():
    cf = parse_coco(json.dumps(DOC).encode(), "gt.json")
    assert cf.categories == {"zebra": 3, "apple": 1}  # declared order, not sorted
    b, a, empty = cf.records
    assert (b.meta["image_id"], b.stem, b.width, b.height, b.image_path) == (42, "b", 64, 48, "b.jpg")
    assert b.names == ["zebra", "apple"]  # file order within the image
    assert b.boxes.tolist() == [[1.5, 2, 11.5, 22], [5, 5, 6, 6]]  # [x, y, w, h] -> x0, y0, x1, y1, no shift
    assert b.attrs["area"].tolist() == [150.5, 1.0]  # the file's area; w * h when absent
    assert b.attrs["id"].tolist() == [1, 3] and b.attrs["category_id"].tolist() == [3, 1]
    assert a.attrs["iscrowd"].tolist() == [True] and len(empty) == 0
    kinds = sorted(p.kind for p in cf.problems)
    assert kinds == ["annotation_without_image", "unknown_category"]
    assert "annotations[3] names image_id 99" in " ".join(p.detail for p in cf.problems)
    assert b.select([1]).attrs["id"].tolist() == [3]  # attrs stay aligned with the objects


@pytest.mark.parametrize("change,message", [
    (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), r"gt.json: annotations\[0\]: bbox must be 4 numbers"),
    (lambda d: d["annotations"][1].pop("image_id"), r"gt.json: annotations\[1\]: no 'image_id'"),
    (lambda d: d["annotations"][2].update(bbox=[1, 2, "x", 4]), r"annotations\[2\]: bbox must be a finite number"),
    (lambda d: d["categories"].append({"id": 3, "name": "again"}), r"categories\[2\]: category id 3 is used twice"),
    (lambda d: d["categories"].append({"id": 8, "name": "apple"}), r"category name 'apple' is used twice"),
    (lambda d: d["images"].append({"id": 7, "file_name": "c.jpg"}), r"images\[3\]: image id 7 is used twice"),
    (lambda d: d.pop("categories"), r"gt.json: not a COCO instances file"),
])
def test_malformed_documents_name_the_entry(change, message):
    doc = json.loads(json.dumps(DOC))
    change(doc)
    with pytest.raises(ParseError, match=message):
        parse_coco(json.dumps(doc).encode(), "gt.json")


def test_malformed_json_names_the_line():
    with pytest.raises(ParseError, match=r"gt.json:3: malformed JSON"):
        parse_coco(b'{"images": [],\n"annotations": [],\n"categories": [}', "gt.json")


def test_bad_annotation_skipped_under_skip_policy():
    doc = json.loads(json.dumps(DOC))
    doc["annotations"][0]["bbox"] = None
    policy = ErrorPolicy("skip")
    cf = parse_coco(json.dumps(doc).encode(), "gt.json", policy)
    assert cf.records[0].names == ["apple"]
    assert policy.skipped == [("gt.json#annotations[0]",
                               "gt.json: annotations[0]: bbox must be 4 numbers [x, y, w, h], got None")]


def test_detect_and_load(tmp_path):
    import cv2
    (tmp_path / "annotations").mkdir()
    (tmp_path / "val").mkdir()
    gt = tmp_path / "annotations" / "instances_val.json"
    gt.write_text(json.dumps(DOC, indent=1))
    for name, (w, h) in (("a.jpg", (32, 16)), ("b.jpg", (64, 48))):
        cv2.imwrite(str(tmp_path / "val" / name), gradient(w, h))
    (tmp_path / "results.json").write_text('[{"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}]')
    (tmp_path / "other.json").write_text('{"images": 1}')
    assert detect(gt) and not detect(tmp_path / "results.json") and not detect(tmp_path / "other.json")
    assert detect_format(gt) == "coco"
    ds = load_dataset(gt)
    assert ds.format == "coco" and ds.classes == ["zebra", "apple"]
    assert ds.meta["category_ids"] == {"zebra": 3, "apple": 1}
    assert [r.image_path for r in ds.records] == [str(tmp_path / "val" / n) for n in ("b.jpg", "a.jpg", "empty.jpg")]
    assert {p.kind for p in ds.problems} == {"annotation_without_image", "unknown_category"}
    with pytest.raises(Exception, match="a COCO file holds one split"):
        load_dataset(gt, split="train")


def test_info_reads_coco(tmp_path):
    from helpers import run_cli
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(DOC))
    out = json.loads(run_cli("info", gt, "--json").output)
    assert out["images"] == 3 and out["objects"] == 3 and out["classes"] == {"zebra": 1, "apple": 2}


def test_coco_scale_arrays_are_typed():
    doc = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 10, "height": 10} for i in range(50)],
           "annotations": [{"id": k + 1, "image_id": k % 50, "category_id": 1, "bbox": [1, 1, 2, 2], "area": 4,
                            "iscrowd": 0} for k in range(500)],
           "categories": [{"id": 1, "name": "x"}]}
    cf = parse_coco(json.dumps(doc).encode(), "g")
    r = cf.records[3]
    assert len(r) == 10 and r.boxes.dtype == np.float64 and r.attrs["id"].dtype == np.int64
    assert r.attrs["id"].tolist() == list(range(4, 501, 50))
