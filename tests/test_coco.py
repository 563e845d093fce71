"""COCO instances: the reader (one file, split layouts of CVAT / Roboflow / Label Studio / COCO 2017), the writer,
and what pycocotools makes of the files we write."""
import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dsprep.formats.coco import Writer, detect, find_files, object_masks, parse_coco
from dsprep.core import ErrorPolicy, ParseError
from dsprep.dataset import detect_format, load_dataset

from helpers import gradient, pycocotools_eval, run_cli

DATA = Path(__file__).parent / "data"

DOC = {
    "info": {}, "licenses": [],
    "images": [{"id": 42, "file_name": "b.jpg", "width": 64, "height": 48},
               {"id": 7, "file_name": "a.jpg", "width": 32, "height": 16},
               {"id": 9, "file_name": "empty.jpg", "width": 10, "height": 10}],
    "annotations": [
        {"id": 1, "image_id": 42, "category_id": 3, "bbox": [1.5, 2, 10, 20], "area": 150.5, "iscrowd": 0},
        {"id": 2, "image_id": 7, "category_id": 1, "bbox": [0, 0, 32, 16], "area": 512, "iscrowd": 1},
        {"id": 3, "image_id": 42, "category_id": 1, "bbox": [5, 5, 1, 1]}],
    "categories": [{"id": 3, "name": "zebra"}, {"id": 1, "name": "apple"}],
}
BAD_REFS = [{"id": 4, "image_id": 99, "category_id": 1, "bbox": [5, 5, 1, 1]},
            {"id": 5, "image_id": 42, "category_id": 77, "bbox": [5, 5, 1, 1]}]


def pycoco(path):
    coco = pytest.importorskip("pycocotools.coco")
    with contextlib.redirect_stdout(io.StringIO()):
        return coco.COCO(str(path))


# ---- parsing --------------------------------------------------------------------------------------------------

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
    assert cf.problems == []
    assert b.select([1]).attrs["id"].tolist() == [3]  # attrs stay aligned with the objects


def test_unknown_image_or_category_is_an_error_naming_file_and_line():
    doc = json.loads(json.dumps(DOC))
    doc["annotations"] += BAD_REFS
    data = json.dumps(doc, indent=1).encode()
    lines = data.decode().split("\n")
    line_of = {i: next(n for n, t in enumerate(lines) if t.strip() == f'"id": {i},') for i in (4, 5)}  # its "{"
    with pytest.raises(ParseError, match=rf"gt.json:{line_of[4]}: annotations\[3\] \(id 4\) names image_id 99, "
                                         r"which 'images' does not list"):
        parse_coco(data, "gt.json")
    policy = ErrorPolicy("skip")
    cf = parse_coco(data, "gt.json", policy)
    assert [r.attrs["id"].tolist() for r in cf.records] == [[1, 3], [2], []]
    assert [w for w, _ in policy.skipped] == ["gt.json#object3", "gt.json#object4"]
    assert policy.skipped[1][1] == (f"gt.json:{line_of[5]}: annotations[4] (id 5) names category_id 77, which "
                                    f"'categories' does not list")


@pytest.mark.parametrize("change,message", [
    (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), r"gt.json:\d+: annotations\[0\]: bbox must be 4 numbers"),
    (lambda d: d["annotations"][1].pop("image_id"), r"gt.json:\d+: annotations\[1\]: no 'image_id'"),
    (lambda d: d["annotations"][2].update(bbox=[1, 2, "x", 4]), r"annotations\[2\]: bbox must be a finite number"),
    (lambda d: d["annotations"][2].update(iscrowd=7), r"annotations\[2\]: iscrowd must be 0 or 1"),
    (lambda d: d["categories"].append({"id": 3, "name": "again"}), r"gt.json:\d+: categories\[2\]: category id 3 is "
                                                                    r"used twice"),
    (lambda d: d["categories"].append({"id": 8, "name": "apple"}), r"category name 'apple' is used twice"),
    (lambda d: d["images"].append({"id": 7, "file_name": "c.jpg"}), r"gt.json:\d+: images\[3\]: image id 7 is "
                                                                     r"used twice"),
    (lambda d: d.pop("categories"), r"gt.json: not a COCO instances file"),
])
def test_malformed_documents_name_the_entry(change, message):
    doc = json.loads(json.dumps(DOC))
    change(doc)
    with pytest.raises(ParseError, match=message):
        parse_coco(json.dumps(doc, indent=2).encode(), "gt.json")


def test_error_lines_are_the_entries_lines():
    doc = json.loads(json.dumps(DOC))
    doc["annotations"][2]["bbox"] = None
    text = json.dumps(doc, indent=2)
    with pytest.raises(ParseError) as e:
        parse_coco(text.encode(), "gt.json")
    line = int(str(e.value).split(":")[1])
    assert text.split("\n")[line - 1].strip() == "{" and '"id": 3' in text.split("\n")[line]


def test_malformed_json_names_the_line():
    with pytest.raises(ParseError, match=r"gt.json:3: malformed JSON"):
        parse_coco(b'{"images": [],\n"annotations": [],\n"categories": [}', "gt.json")


def test_bad_annotation_skipped_under_skip_policy():
    doc = json.loads(json.dumps(DOC))
    doc["annotations"][0]["bbox"] = None
    policy = ErrorPolicy("skip")
    cf = parse_coco(json.dumps(doc).encode(), "gt.json", policy)
    assert cf.records[0].names == ["apple"]
    assert policy.skipped == [("gt.json#object0",
                               "gt.json:1: annotations[0]: bbox must be 4 numbers [x, y, w, h], got None")]


def test_coco_scale_arrays_are_typed():
    doc = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 10, "height": 10} for i in range(50)],
           "annotations": [{"id": k + 1, "image_id": k % 50, "category_id": 1, "bbox": [1, 1, 2, 2], "area": 4,
                            "iscrowd": 0} for k in range(500)],
           "categories": [{"id": 1, "name": "x"}]}
    cf = parse_coco(json.dumps(doc).encode(), "g")
    r = cf.records[3]
    assert len(r) == 10 and r.boxes.dtype == np.float64 and r.attrs["id"].dtype == np.int64
    assert r.attrs["id"].tolist() == list(range(4, 501, 50))


def test_grouping_matches_a_plain_loop():
    """The vectorized grouping against the obvious per-annotation loop, on shuffled ids and images."""
    rng = np.random.default_rng(5)
    images = [{"id": int(i), "file_name": f"{i}.jpg", "width": 50, "height": 50}
              for i in rng.permutation(1000)[:40]]
    anns = [{"id": int(k * 7 + 3), "image_id": images[int(rng.integers(40))]["id"],
             "category_id": int(rng.choice([4, 9, 2])), "bbox": [float(v) for v in rng.random(4) * 20]}
            for k in range(600)]
    doc = {"images": images, "annotations": anns,
           "categories": [{"id": 9, "name": "c"}, {"id": 2, "name": "a"}, {"id": 4, "name": "b"}]}
    cf = parse_coco(json.dumps(doc).encode(), "g")
    names = {9: "c", 2: "a", 4: "b"}
    for img, rec in zip(images, cf.records):
        mine = [a for a in anns if a["image_id"] == img["id"]]
        assert rec.attrs["id"].tolist() == [a["id"] for a in mine]
        assert rec.names == [names[a["category_id"]] for a in mine]
        np.testing.assert_array_equal(rec.boxes, [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                                                   a["bbox"][1] + a["bbox"][3]] for a in mine] or np.zeros((0, 4)))


# ---- layouts ----------------------------------------------------------------------------------------------------

def test_detect_and_load_one_file(tmp_path):
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
    assert [r.split for r in ds.records] == ["val"] * 3
    assert {p.kind for p in ds.problems} == {"annotation_without_image"}  # empty.jpg is not on disk
    assert load_dataset(gt, split="val").records[0].stem == "b"
    with pytest.raises(Exception, match="no split 'train'"):
        load_dataset(gt, split="train")


def test_info_reads_coco(tmp_path):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(DOC))
    out = json.loads(run_cli("info", gt, "--json").stdout)
    assert out["images"] == 3 and out["objects"] == 3 and out["classes"] == {"zebra": 1, "apple": 2}


def test_cvat_export():
    ds = load_dataset(DATA / "coco_cvat")
    assert [f.name for f in find_files(DATA / "coco_cvat")] == ["instances_default.json"]
    assert ds.classes == ["car", "person", "bicycle"] and ds.meta["category_ids"] == {"car": 1, "person": 2,
                                                                                    "bicycle": 3}
    assert ds.problems == [] and [r.split for r in ds.records] == ["default"] * 3
    f0, f1, f2 = ds.records
    assert (f0.width, f0.height) == (96, 64) and f0.image_path.endswith("images/default/frame_000000.jpg")
    assert f0.attrs["coco_extra"] == [{"attributes": {"occluded": False, "rotation": 0.0}},
                                      {"attributes": {"occluded": True}}]
    assert f0.attrs["segmentation"][0] == [] and len(f0.attrs["segmentation"][1][0]) == 12
    assert f1.attrs["iscrowd"].tolist() == [True, False] and "counts" in f1.attrs["segmentation"][0]
    assert f0.meta["coco_image"] == {"id": 1, "width": 96, "height": 64, "file_name": "frame_000000.jpg",
                                     "license": 0, "flickr_url": "", "coco_url": "", "date_captured": 0}
    assert len(f2) == 0


def test_roboflow_export_splits_with_ids_from_zero():
    ds = load_dataset(DATA / "coco_roboflow")
    assert ds.classes == ["workers", "head", "helmet"]  # the data set's name category 0 is kept, in order
    assert ds.meta["category_ids"] == {"workers": 0, "head": 1, "helmet": 2}
    assert ds.meta["supercategories"] == {"workers": "none", "head": "workers", "helmet": "workers"}
    assert [(r.split, r.meta["image_id"]) for r in ds.records] == [("train", 0), ("train", 1), ("valid", 0),
                                                                  ("valid", 1)]
    assert [len(r) for r in load_dataset(DATA / "coco_roboflow", split="valid").records] == [2, 0]
    # the class list is the same whatever split is read
    assert load_dataset(DATA / "coco_roboflow", split="valid").classes == ds.classes


def test_label_studio_export_file_names_with_folder():
    ds = load_dataset(DATA / "coco_labelstudio")
    assert ds.problems == [] and [r.split for r in ds.records] == [None, None]
    assert ds.records[0].image_path == str(DATA / "coco_labelstudio" / "images" / "d5c1e3b0-street.jpg")
    assert ds.records[0].stem == "d5c1e3b0-street" and ds.meta["category_ids"] == {"Car": 0, "Pedestrian": 1}
    assert ds.records[0].attrs["coco_extra"] == [{"ignore": 0}, {"ignore": 0}]


def test_coco2017_layout_quads_and_gapped_ids():
    ds = load_dataset(DATA / "coco2017_mini")
    assert [r.split for r in ds.records] == ["val2017", "val2017"]
    assert ds.meta["category_ids"] == {"person": 1, "car": 3, "dog": 18, "bottle": 44}
    a, b = ds.records
    assert a.polygons is None  # the car has two rings: no quadrilaterals for this image
    assert a.attrs["id"].tolist() == [183020, 1713655] and b.attrs["id"].tolist() == [900100037777, 82445]


def test_quads_when_every_object_is_one_4_point_ring():
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 50, "height": 50}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 9, 9],
                            "segmentation": [[1, 5, 5, 1, 10, 5, 5, 10]]}],
           "categories": [{"id": 1, "name": "x"}]}
    rec = parse_coco(json.dumps(doc).encode()).records[0]
    np.testing.assert_array_equal(rec.polygons, [[[1, 5], [5, 1], [10, 5], [5, 10]]])


# ---- masks ------------------------------------------------------------------------------------------------------

def test_object_masks_match_pycocotools():
    mask_api = pytest.importorskip("pycocotools.mask")
    ds = load_dataset(DATA / "coco2017_mini")
    gt = pycoco(DATA / "coco2017_mini" / "annotations" / "instances_val2017.json")
    from dsprep.geometry import pixel_bounds
    for rec in ds.records:
        masks = object_masks(rec)
        bounds = pixel_bounds(rec.boxes, rec.width, rec.height)
        for k, m in enumerate(masks):
            x0, y0, x1, y1 = bounds[k]
            assert m.shape == (y1 - y0, x1 - x0) and m.dtype == bool
            ref = gt.annToMask(gt.anns[int(rec.attrs["id"][k])]).astype(bool)[y0:y1, x0:x1]
            if rec.attrs["iscrowd"][k]:
                assert np.array_equal(m, ref)  # RLE: decoded exactly
            else:  # polygons: both rasterize the same shape (rules differ only on boundary pixels)
                assert (m & ref).sum() / (m | ref).sum() > 0.85
    rle = mask_api.encode(np.asfortranarray((gradient(40, 30)[:, :, 0] > 100).astype(np.uint8)))
    from dsprep.formats.shapes import rle_decode
    assert np.array_equal(rle_decode({"size": rle["size"], "counts": rle["counts"].decode()}),
                          mask_api.decode(rle).astype(bool))


def test_rle_codec_against_pycocotools():
    mask_api = pytest.importorskip("pycocotools.mask")
    from dsprep.formats.shapes import decode_counts_string, encode_counts_string, rle_decode, rle_encode
    rng = np.random.default_rng(0)
    for t in range(100):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        m = rng.random((h, w)) < rng.random()
        ref = mask_api.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode()
        ours = rle_encode(m)
        assert encode_counts_string(ours["counts"]) == ref
        assert decode_counts_string(ref).tolist() == ours["counts"]
        assert np.array_equal(rle_decode({"size": [h, w], "counts": ref}), m)


# ---- writing ----------------------------------------------------------------------------------------------------

def _written(out):
    return {p.name: json.loads(p.read_text()) for p in sorted((out / "annotations").glob("*.json"))}


def test_coco_to_coco_keeps_everything(tmp_path):
    for name in ("coco_cvat", "coco2017_mini", "coco_labelstudio"):
        src = find_files(DATA / name)[0]
        run_cli("convert", DATA / name, "--to", "coco", "--out", tmp_path / name)
        (out,) = _written(tmp_path / name).values()
        ref = json.loads(src.read_text())
        key = lambda a: a["id"]  # noqa: E731
        assert sorted(out["annotations"], key=key) == sorted(ref["annotations"], key=key), name
        assert out["categories"] == [{"supercategory": "", **c} for c in ref["categories"]] or \
            out["categories"] == ref["categories"]
        assert [dict(i, file_name=Path(i["file_name"]).name) for i in ref["images"]] == \
            [{k: i[k] for k in ref["images"][n]} for n, i in enumerate(out["images"])]
        assert out.get("info") == ref.get("info")


def test_ids_unique_across_splits_and_same_names_not_merged(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(DATA / "coco_roboflow", src)
    # one file name in both splits (different images): both survive
    valid = json.loads((src / "valid" / "_annotations.coco.json").read_text())
    train_name = json.loads((src / "train" / "_annotations.coco.json").read_text())["images"][0]["file_name"]
    old = valid["images"][0]["file_name"]
    (src / "valid" / old).rename(src / "valid" / train_name)
    valid["images"][0]["file_name"] = train_name
    (src / "valid" / "_annotations.coco.json").write_text(json.dumps(valid))
    res = run_cli("convert", src, "--to", "coco", "--out", tmp_path / "out")
    assert "2 image_id_renumbered" in res.output and "2 annotation_id_renumbered" in res.output
    docs = _written(tmp_path / "out")
    assert sorted(docs) == ["instances_train.json", "instances_valid.json"]
    ids = [i["id"] for d in docs.values() for i in d["images"]]
    assert len(set(ids)) == 4 and sorted(ids[:2]) == [0, 1]  # the first split keeps its ids
    ann_ids = [a["id"] for d in docs.values() for a in d["annotations"]]
    assert len(set(ann_ids)) == len(ann_ids) == 5
    assert (tmp_path / "out" / "images" / "train" / train_name).is_file()
    assert (tmp_path / "out" / "images" / "valid" / train_name).is_file()
    back = load_dataset(tmp_path / "out")
    assert [len(r) for r in back.records] == [2, 1, 2, 0] and back.meta["category_ids"]["workers"] == 0
    # and a flat target (VOC) renames the second one rather than overwrite it
    res = run_cli("convert", src, "--to", "voc", "--out", tmp_path / "voc")
    assert "1 renamed_duplicate_name" in res.output
    assert len(list((tmp_path / "voc" / "Annotations").glob("*.xml"))) == 4


def test_category_ids_survive_coco_voc_coco_with_the_class_list_kept(tmp_path):
    run_cli("convert", DATA / "coco_cvat", "--to", "voc", "--out", tmp_path / "voc")
    # VOC lists classes sorted; pinning the COCO order gives the COCO ids back (1-based, as CVAT needs)
    run_cli("convert", tmp_path / "voc", "--to", "coco", "--out", tmp_path / "coco", "--classes", "car,person,bicycle")
    (doc,) = _written(tmp_path / "coco").values()
    assert [(c["id"], c["name"]) for c in doc["categories"]] == [(1, "car"), (2, "person"), (3, "bicycle")]
    # without --classes too: the VOC output's labels.txt keeps the COCO order and ids (name id)
    run_cli("convert", tmp_path / "voc", "--to", "coco", "--out", tmp_path / "coco2")
    (doc,) = _written(tmp_path / "coco2").values()
    assert [(c["id"], c["name"]) for c in doc["categories"]] == [(1, "car"), (2, "person"), (3, "bicycle")]
    assert min(a["id"] for a in doc["annotations"]) >= 1 and min(i["id"] for i in doc["images"]) >= 1


@pytest.mark.parametrize("source", ["coco_cvat", "coco_roboflow", "coco2017_mini", "coco_labelstudio",
                                    "yolo_ultralytics", "yolo_obb_dota8", "labelme", "yolo_darknet_cvat"])
def test_pycocotools_loads_what_we_write_and_gives_our_boxes(tmp_path, source):
    mask_api = pytest.importorskip("pycocotools.mask")
    run_cli("convert", DATA / source, "--to", "coco", "--out", tmp_path / "out")
    ours = load_dataset(tmp_path / "out")
    files = sorted((tmp_path / "out" / "annotations").glob("*.json"))
    assert files
    by_split = {}
    for f in files:
        gt = pycoco(f)
        split = f.stem[len("instances_"):]
        by_split[split] = gt
        for iid, img in gt.imgs.items():
            assert (tmp_path / "out" / "images" / split / img["file_name"]).is_file()
            for ann in gt.loadAnns(gt.getAnnIds(imgIds=[iid], iscrowd=None)):
                if not ann["segmentation"]:  # a box without a shape: [] as CVAT, Roboflow, Label Studio write
                    continue
                m = gt.annToMask(ann)  # every polygon and RLE mask we write is usable by pycocotools
                assert m.shape == (img["height"], img["width"])
                if ann["iscrowd"]:
                    assert m.sum() == ann["area"]
    for rec in ours.records:
        gt = by_split[rec.split]
        anns = gt.loadAnns(gt.getAnnIds(imgIds=[rec.meta["image_id"]], iscrowd=None))
        boxes = np.array([a["bbox"] for a in anns], np.float64).reshape(-1, 4)
        np.testing.assert_array_equal(np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], 1), rec.boxes)
        assert [gt.cats[a["category_id"]]["name"] for a in anns] == rec.names
    assert mask_api is not None


def test_cocoeval_scores_written_ground_truth_against_itself(tmp_path):
    pytest.importorskip("pycocotools.cocoeval")
    run_cli("convert", DATA / "labelme", "--to", "coco", "--out", tmp_path / "out")
    gt = pycoco(tmp_path / "out" / "annotations" / "instances_default.json")
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
            for a in gt.dataset["annotations"]]
    E = pycocotools_eval(gt, dets)
    assert E.stats[0] == pytest.approx(1.0)


def test_writer_never_uses_category_id_zero_for_new_classes():
    w = Writer(["b", "a", "c"], {"dataset_meta": {"category_ids": {"a": 7}}})
    assert [(c["id"], c["name"]) for c in w.categories()] == [(8, "b"), (7, "a"), (9, "c")]
    w = Writer(["x", "y"])
    assert [c["id"] for c in w.categories()] == [1, 2]
