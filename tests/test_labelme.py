"""labelme JSON: shapes to objects, grouped parts, errors with lines, lossless labelme -> labelme, masks."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dsprep.core import ImageRecord, ParseError
from dsprep.dataset import detect_format, load_dataset
from dsprep.formats.labelme import format_labelme, object_masks, parse_labelme

from helpers import run_cli

DATA = Path(__file__).parent / "data"


def doc(shapes, w=100, h=80, **extra):
    return json.dumps({"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": "a.jpg", "imageData": None,
                       "imageHeight": h, "imageWidth": w, **extra}, indent=2).encode()


def shape(label, points, kind="polygon", **kw):
    return {"label": label, "points": points, "group_id": None, "description": "", "shape_type": kind,
            "flags": {}, **kw}


def test_shapes_to_objects():
    rec, problems = parse_labelme(doc([
        shape("car", [[30, 40], [10, 20]], "rectangle"),            # corners in any order
        shape("person", [[1, 1], [9, 2], [5, 9]], flags={"difficult": True}),
        shape("ball", [[50, 50], [53, 54]], "circle"),
        shape("eye", [[4, 4]], "point"),
    ]), "a.json")
    assert rec.names == ["car", "person", "ball"] and (rec.width, rec.height) == (100, 80)
    np.testing.assert_allclose(rec.boxes[:2], [[10, 20, 30, 40], [1, 1, 9, 9]])
    np.testing.assert_allclose(rec.boxes[2], [45, 45, 55, 55], atol=1e-9)  # radius 5
    assert rec.difficult.tolist() == [0, 1, 0]
    assert rec.attrs["segmentation"][0] is None and rec.attrs["segmentation"][1] == [[1, 1, 9, 2, 5, 9]]
    assert [p.kind for p in problems] == ["not_an_object"]
    assert rec.polygons is None


def test_group_id_parts_are_one_object():
    rec, _ = parse_labelme(doc([
        shape("person", [[0, 0], [10, 0], [10, 10], [0, 10]], group_id=3),
        shape("person", [[20, 20], [30, 20], [30, 30]], group_id=3),
        shape("dog", [[0, 0], [5, 5]], "rectangle", group_id=3),     # same group id, other label: its own object
    ]))
    assert rec.names == ["person", "dog"]
    assert rec.boxes[0].tolist() == [0, 0, 30, 30] and len(rec.attrs["segmentation"][0]) == 2
    assert len(rec.attrs["labelme"][0]) == 2


def test_all_quads_become_polygons(tmp_path):
    rec, _ = parse_labelme(doc([shape("a", [[0, 5], [5, 0], [10, 5], [5, 10]]),
                                shape("b", [[20, 20], [30, 20], [30, 30], [20, 30]])]))
    assert rec.polygons.shape == (2, 4, 2)
    # a data set has quads everywhere or nowhere
    for name, shapes in (("q", [shape("a", [[0, 5], [5, 0], [10, 5], [5, 10]])]), ("e", [])):
        (tmp_path / f"{name}.json").write_bytes(doc(shapes))
    ds = load_dataset(tmp_path)
    assert [r.polygons.shape for r in ds.records] == [(0, 4, 2), (1, 4, 2)]
    (tmp_path / "r.json").write_bytes(doc([shape("c", [[0, 0], [4, 4]], "rectangle")]))
    assert [r.polygons for r in load_dataset(tmp_path).records] == [None, None, None]


@pytest.mark.parametrize("bad, message", [
    (shape("car", [[1, 2]], "rectangle"), r"a.json:\d+: shapes\[1\] \(car\): a rectangle needs 2 corner points"),
    (shape("car", [[1, 2], [3, 4]]), r"shapes\[1\] \(car\): a polygon needs 3 points or more, got 2"),
    (shape("car", [[1, "x"], [3, 4], [5, 6]]), r"shapes\[1\] \(car\): points must be a list of \[x, y\] number"),
    (shape("", [[1, 2], [3, 4]], "rectangle"), r"shapes\[1\] \(\): no label"),
    (shape("car", [[1, 2], [3, 4]], "cuboid"), r"shapes\[1\] \(car\): unknown shape_type 'cuboid'"),
])
def test_bad_shapes_name_file_and_line(bad, message):
    data = doc([shape("ok", [[0, 0], [1, 1]], "rectangle"), bad])
    with pytest.raises(ParseError, match=message) as e:
        parse_labelme(data, "a.json")
    line = int(str(e.value).split(":")[1])
    lines = data.decode().split("\n")
    assert lines[line - 1].strip() == "{" and '"label"' in lines[line]  # the line where shapes[1] starts


def test_fixture_folder():
    assert detect_format(DATA / "labelme") == "labelme"
    ds = load_dataset(DATA / "labelme")
    assert [r.stem for r in ds.records] == ["IMG_0041", "IMG_0042"]
    assert ds.classes == ["ball", "cat", "dog", "person"]
    a, b = ds.records
    assert a.names == ["dog", "cat", "ball"] and b.names == ["person", "dog"]
    assert b.boxes[0].tolist() == [20, 10, 34, 58]  # two polygons of group 1
    assert b.boxes[1].tolist() == [60, 20, 90, 40]
    assert a.image_path == str(DATA / "labelme" / "IMG_0041.jpg")


def test_labelme_to_labelme_is_byte_identical(tmp_path):
    run_cli("convert", DATA / "labelme", "--to", "labelme", "--out", tmp_path / "out")
    for src in sorted((DATA / "labelme").glob("*.json")):
        assert (tmp_path / "out" / src.name).read_bytes() == src.read_bytes()
        image = f"{src.stem}.jpg"
        assert (tmp_path / "out" / image).read_bytes() == (DATA / "labelme" / image).read_bytes()


def test_windows_image_path_and_missing_image(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "ann").mkdir()
    shutil.copy(DATA / "labelme" / "IMG_0041.jpg", tmp_path / "raw" / "IMG_0041.jpg")
    d = json.loads((DATA / "labelme" / "IMG_0041.json").read_text())
    d["imagePath"] = "..\\raw\\IMG_0041.jpg"
    (tmp_path / "ann" / "IMG_0041.json").write_text(json.dumps(d))
    d["imagePath"] = "gone.jpg"
    d["imageData"] = "aGVsbG8="
    (tmp_path / "ann" / "IMG_0099.json").write_text(json.dumps(d))
    ds = load_dataset(tmp_path / "ann", images_outside=True)  # ../raw lies outside ann/: asked for by name
    assert ds.records[0].image_path == str(tmp_path / "raw" / "IMG_0041.jpg")
    missing = [p for p in ds.problems if p.kind == "annotation_without_image"]
    assert len(missing) == 1 and "only embedded as imageData" in missing[0].detail


def test_from_other_formats(tmp_path):
    rec = ImageRecord("x.jpg", 50, 40, boxes=[[1, 2, 11, 12], [0, 0, 5, 5]], names=["a", "b"], difficult=[1, 0],
                      attrs={"segmentation": [None, [[0, 0, 5, 0, 5, 5], [1, 1, 2, 1, 2, 2]]]})
    data, lossy = format_labelme(rec)
    d = json.loads(data)
    assert lossy == {} and d["imagePath"] == "x.jpg" and (d["imageWidth"], d["imageHeight"]) == (50, 40)
    assert [(s["label"], s["shape_type"], s["group_id"], s["flags"]) for s in d["shapes"]] == [
        ("a", "rectangle", None, {"difficult": True}), ("b", "polygon", 1, {}), ("b", "polygon", 1, {})]
    back, _ = parse_labelme(data)
    np.testing.assert_array_equal(back.boxes, [[1, 2, 11, 12], [0, 0, 5, 5]])
    assert back.difficult.tolist() == [1, 0]
    rle = ImageRecord("x.jpg", 4, 4, boxes=[[0, 0, 2, 2]], names=["a"],
                      attrs={"segmentation": [{"size": [4, 4], "counts": [0, 2, 2, 2, 10]}]})
    data, lossy = format_labelme(rle)  # an RLE mask: its outline (a 2 x 2 square), nothing lost
    assert lossy == {}
    assert [(s["shape_type"], s["points"]) for s in json.loads(data)["shapes"]] == [
        ("polygon", [[0, 0], [0, 2], [2, 2], [2, 0]])]


def test_object_masks_are_the_polygons_pixels():
    from dsprep.geometry import pixel_bounds
    ds = load_dataset(DATA / "labelme")
    rec = ds.records[0]
    masks = object_masks(rec)
    bounds = pixel_bounds(rec.boxes, rec.width, rec.height)
    assert masks[0] is None  # a rectangle has no silhouette beyond its box
    for k in (1, 2):
        x0, y0, x1, y1 = bounds[k]
        assert masks[k].shape == (y1 - y0, x1 - x0)
    # the cat polygon: each pixel is in when its centre is (checked against shapely, point by point)
    from shapely import contains_xy
    from shapely.geometry import Polygon
    x0, y0, x1, y1 = bounds[1]
    ys, xs = np.mgrid[y0:y1, x0:x1]
    poly = Polygon(np.array(rec.attrs["segmentation"][1][0]).reshape(-1, 2))
    inside = contains_xy(poly, xs + 0.5, ys + 0.5)
    edge = np.array([[poly.boundary.distance(__import__("shapely").Point(x + 0.5, y + 0.5)) < 1e-9
                      for x in range(x0, x1)] for y in range(y0, y1)])
    assert np.array_equal(masks[1] | edge, inside | edge)
    # centre (24, 54), rim (28, 54): a disc of radius 4
    assert masks[2].sum() == pytest.approx(np.pi * 16, abs=4)


# ---- the edit protocol (dsprep review) ------------------------------------------------------------------------------

def _edited(rec, keep=None):
    keep = np.arange(len(rec)) if keep is None else np.asarray(keep, np.intp)
    out = rec.select(keep)
    out.attrs["source_index"] = keep.astype(np.int64)
    return out


def test_untouched_save_byte_for_byte_and_reload():
    from dsprep.dataset import reload_record
    from dsprep.formats.labelme import annotation_file, save_record
    ds = load_dataset(DATA / "labelme")
    for rec in ds.records:
        path = annotation_file(ds, rec)
        original = Path(path).read_bytes()
        assert save_record(original, _edited(rec), path) == original
        again, _ = reload_record(ds, rec)
        assert again == rec


def test_edits_keep_everything_else(tmp_path):
    from dsprep.formats.labelme import read_labelme, save_record
    shutil.copytree(DATA / "labelme", tmp_path / "lm")
    path = tmp_path / "lm" / "IMG_0042.json"
    original = path.read_bytes()
    rec, _ = read_labelme(path)
    ed = _edited(rec, [1])                       # the two-part person deleted
    ed.names[0] = "wolf"                         # the dog renamed
    ed.boxes[0] = [50, 10, 80, 30]               # and moved: the rectangle takes the new corners
    out = save_record(original, ed, str(path))
    d0, d1 = json.loads(original), json.loads(out)
    assert [s["label"] for s in d1["shapes"]] == ["wolf"]
    assert d1["shapes"][0]["points"] == [[50.0, 10.0], [80.0, 30.0]]
    assert d1["shapes"][0]["description"] == "sitting"
    assert {k: v for k, v in d1.items() if k != "shapes"} == {k: v for k, v in d0.items() if k != "shapes"}
    head = original[:original.index(b'"shapes"')]
    assert out.startswith(head) and out.endswith(original[original.index(b'"imagePath"') - 4:])
    # a polygon object moved as a box: its points follow the box
    rec, _ = read_labelme(tmp_path / "lm" / "IMG_0041.json")
    ed = _edited(rec)
    ed.boxes[1] = rec.boxes[1] + [10, 5, 10, 5]
    ed.difficult[1] = 0
    d = json.loads(save_record((tmp_path / "lm" / "IMG_0041.json").read_bytes(), ed, "x.json"))
    cat = d["shapes"][1]
    assert cat["flags"] == {"difficult": False}
    before = json.loads((DATA / "labelme" / "IMG_0041.json").read_bytes())["shapes"][1]["points"]
    np.testing.assert_allclose(cat["points"], np.array(before) + [10, 5])
    assert d["shapes"][3]["shape_type"] == "point"  # not an object: stays
