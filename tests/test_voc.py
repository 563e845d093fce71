import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsprep.core import DatasetError, ImageRecord, ParseError
from dsprep.dataset import load_dataset
from dsprep.info import summarize
from dsprep.images import image_size
from dsprep.voc import format_voc, parse_voc, read_voc

from helpers import gradient, voc_xml, write_voc_tree


def test_parse_converts_one_based_inclusive_to_zero_based():
    rec, problems = parse_voc(voc_xml("x.jpg", 500, 375, [("dog", (48, 240, 195, 371))]))
    assert rec.width == 500 and rec.height == 375 and rec.depth == 3
    assert rec.names == ["dog"]
    np.testing.assert_array_equal(rec.boxes, [[47, 239, 195, 371]])
    assert rec.difficult.tolist() == [0] and rec.truncated.tolist() == [False]
    assert problems == []


@pytest.mark.parametrize("flags, difficult, truncated", [
    ("", 0, False),
    ("<difficult/><truncated/>", 0, False),
    ("<difficult>1</difficult><truncated>1</truncated>", 1, True),
    ("<difficult>0</difficult><truncated>1.0</truncated>", 0, True),
    ("<pose>Left</pose><difficult> 1 </difficult>", 1, False),
])
def test_flags(flags, difficult, truncated):
    rec, _ = parse_voc(voc_xml(objects=[("cat", (1, 1, 5, 5), flags)]))
    assert rec.difficult.tolist() == [difficult] and rec.truncated.tolist() == [truncated]


def test_float_coordinates_parts_and_utf8_names():
    part = "<part><name>head</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>3</xmax><ymax>3</ymax></bndbox></part>"
    data = voc_xml(objects=[("汽车", (273.5, 10.25, 300.75, 40), part)])
    rec, _ = parse_voc(data)
    assert rec.names == ["汽车"]  # the <part> is not an object
    np.testing.assert_array_equal(rec.boxes, [[272.5, 9.25, 300.75, 40]])


def test_missing_size_and_no_objects():
    rec, problems = parse_voc(voc_xml(size=False))
    assert (rec.width, rec.height, len(rec)) == (0, 0, 0)


def test_degenerate_box_reported():
    _, problems = parse_voc(voc_xml(objects=[("a", (10, 10, 9, 20)), ("b", (5, 30, 9, 20)), ("one", (7, 7, 7, 7))]))
    assert [p.detail.split(" ")[2] for p in problems] == ["(a):", "(b):"]  # xmin == xmax is one pixel (1-based)


@pytest.mark.parametrize("data, message", [
    (b"<annotation><object>", "malformed XML"),
    (b"<foo/>", "expected <annotation>"),
    (voc_xml(objects=[("a", ("1x", 2, 3, 4))]), "cannot parse xmin from '1x'"),
    (voc_xml(objects=[("a", ("nan", 2, 3, 4))]), "xmin is nan"),
    (b"<annotation><object><name>a</name></object></annotation>", "has no <bndbox>"),
    (b"<annotation><object><bndbox/></object></annotation>", "has no <name>"),
    (voc_xml(objects=[("a", (1, 2, 3, 4), "<difficult>maybe</difficult>")]), "<difficult>"),
])
def test_bad_xml_errors_name_the_file(data, message):
    with pytest.raises(ParseError) as e:
        parse_voc(data, "some/file.xml")
    assert str(e.value).startswith("some/file.xml: ") and message in str(e.value)


def test_entity_attacks_are_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xxe = (f'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file://{secret}">]>'
           f'<annotation><filename>&x;</filename></annotation>').encode()
    laughs = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">'
              b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;">]><annotation><filename>&lol3;</filename></annotation>')
    for data in (xxe, laughs):
        with pytest.raises(ParseError, match="DOCTYPE"):
            parse_voc(data, "evil.xml")
        path = tmp_path / "evil.xml"
        path.write_bytes(data)
        with pytest.raises(ParseError, match="evil.xml: XML with a DOCTYPE") as e:
            read_voc(path)
        assert "TOP-SECRET" not in str(e.value)


def test_format_is_standard_voc_and_does_not_mutate():
    rec = ImageRecord("img.jpg", 64, 48, boxes=[[0, 0, 64, 48], [1.5, 2, 10, 20.25]], names=["a", "b<&>"],
                      difficult=[1, 0], truncated=[False, True])
    before = rec.boxes.copy()
    data = format_voc(rec)
    np.testing.assert_array_equal(rec.boxes, before)
    # The shape torchvision's VOCDetection.parse_voc_xml and the devkit expect.
    root = ET.fromstring(data)
    objs = root.findall("object")
    assert root.findtext("filename") == "img.jpg" and root.findtext("size/width") == "64"
    assert [o.findtext("name") for o in objs] == ["a", "b<&>"]
    assert [o.findtext("bndbox/xmin") for o in objs] == ["1", "2.5"]
    assert objs[0].findtext("bndbox/xmax") == "64" and objs[0].findtext("difficult") == "1"
    again, _ = parse_voc(data)
    assert again == rec


coord = st.floats(min_value=0, max_value=5000, allow_nan=False, allow_infinity=False, width=32)
names = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00"), min_size=1,
                max_size=12).map(str.strip).filter(bool)


@st.composite
def records(draw):
    n = draw(st.integers(0, 6))
    boxes = []
    for _ in range(n):
        x0, x1 = sorted([draw(coord), draw(coord)])
        y0, y1 = sorted([draw(coord), draw(coord)])
        boxes.append([x0, y0, x1, y1])
    return ImageRecord(draw(st.sampled_from(["a.jpg", "img 1.png", "汽车.jpg"])), draw(st.integers(1, 9000)),
                       draw(st.integers(1, 9000)), draw(st.sampled_from([1, 3, 4])), boxes=boxes,
                       names=[draw(names) for _ in range(n)],
                       difficult=[draw(st.integers(0, 1)) for _ in range(n)],
                       truncated=[draw(st.booleans()) for _ in range(n)])


@settings(max_examples=200, deadline=None)
@given(records())
def test_write_read_round_trip(rec):
    again, _ = parse_voc(format_voc(rec))
    assert again == rec


def test_read_voc_file(tmp_path):
    p = tmp_path / "x.xml"
    p.write_bytes(voc_xml("other.png", objects=[("a", (1, 1, 2, 2))]))
    rec, _ = read_voc(p)
    assert rec.stem == "x" and rec.meta["filename"] == "other.png"
    with pytest.raises(ParseError, match="cannot read"):
        read_voc(tmp_path / "missing.xml")


# ---- data sets --------------------------------------------------------------------------------------------------

def test_standard_layout_and_splits(tmp_path):
    root = write_voc_tree(tmp_path / "VOC", {"a": (40, 30, [("cat", (1, 1, 10, 10))]),
                                             "b": (40, 30, [("dog", (5, 5, 20, 20)), ("cat", (2, 2, 4, 4))]),
                                             "c": (40, 30, [])},
                          splits={"train": ["a", "c"], "val": ["b"]})
    ds = load_dataset(root)
    assert [r.stem for r in ds.records] == ["a", "b", "c"] and ds.classes == ["cat", "dog"]
    train = load_dataset(root, split="train")
    assert [r.stem for r in train.records] == ["a", "c"] and all(r.split == "train" for r in train.records)
    with pytest.raises(DatasetError, match="no split 'test' \\(available: train, val\\)"):
        load_dataset(root, split="test")


def test_vocdevkit_and_flat_layouts(tmp_path):
    dev = tmp_path / "VOCdevkit"
    write_voc_tree(dev / "VOC2007", {"000001": (20, 20, [("a", (1, 1, 5, 5))])}, splits={"train": ["000001"]})
    write_voc_tree(dev / "VOC2012", {"2008_000001": (20, 20, [("b", (1, 1, 5, 5))])},
                   splits={"train": ["2008_000001"]})
    assert [r.stem for r in load_dataset(dev, split="train").records] == ["000001", "2008_000001"]
    flat = write_voc_tree(tmp_path / "flat", {"p": (20, 20, [("a", (1, 1, 5, 5))]), "q": (20, 20, [])},
                          ann="xmls", img="imgs", sets="txts", splits={"train": ["q"]})
    ds = load_dataset(flat, split="train")
    assert [r.stem for r in ds.records] == ["q"] and ds.records[0].image_path.endswith("imgs/q.jpg")


def test_missing_size_read_from_image_header(tmp_path):
    root = tmp_path / "d"
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    for stem, ext in (("j", ".jpg"), ("p", ".png")):
        (root / "Annotations" / f"{stem}.xml").write_bytes(voc_xml(f"{stem}{ext}", size=False,
                                                                   objects=[("a", (1, 1, 200, 5))]))
        cv2.imwrite(str(root / "JPEGImages" / f"{stem}{ext}"), gradient(37, 23))
    ds = load_dataset(root)
    assert [(r.width, r.height) for r in ds.records] == [(37, 23), (37, 23)]
    kinds = [p.kind for p in ds.problems]
    assert kinds.count("size_from_image") == 2 and kinds.count("clipped_box") == 2
    assert ds.records[0].boxes[0, 2] == 37  # clipped to the width read from the header


@pytest.mark.parametrize("channels, ext", [(1, ".png"), (3, ".png"), (4, ".png"), (3, ".jpg"), (1, ".jpg"),
                                           (3, ".bmp")])
def test_image_size_from_header(tmp_path, channels, ext):
    p = tmp_path / f"x{ext}"
    cv2.imwrite(str(p), gradient(53, 17, channels) if channels != 4 else np.dstack([gradient(53, 17)] * 2)[:, :, :4])
    assert image_size(p)[:2] == (53, 17)


def test_problems_found(tmp_path):
    root = write_voc_tree(tmp_path / "d", {"a": (40, 30, [("cat", (0, 1, 50, 10)), ("cat", (9, 9, 8, 12))])})
    (root / "JPEGImages" / "orphan.jpg").write_bytes((root / "JPEGImages" / "a.jpg").read_bytes())
    (root / "Annotations" / "noimg.xml").write_bytes(voc_xml("noimg.jpg", 10, 10))
    s = summarize(load_dataset(root))
    # the degenerate box is also under 3 px wide (tiny_box), and two cats make a rare class
    assert s["problem_counts"] == {"annotation_without_image": 1, "clipped_box": 1, "degenerate_box": 1,
                                   "image_without_annotation": 1, "rare_class": 1, "tiny_box": 1}


def test_empty_and_missing_dataset(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no data set found.*VOC: Annotations/"):
        load_dataset(tmp_path / "empty")


def test_on_error_skip_collects_bad_files(tmp_path):
    root = write_voc_tree(tmp_path / "d", {"a": (40, 30, [("cat", (1, 1, 5, 5))])})
    (root / "Annotations" / "bad.xml").write_bytes(b"<annotation><object>")
    with pytest.raises(ParseError, match="bad.xml: malformed XML"):
        load_dataset(root)
    ds = load_dataset(root, on_error="skip")
    assert len(ds.records) == 1 and len(ds.skipped) == 1 and ds.skipped[0][0].endswith("bad.xml")


# ---- the real data ----------------------------------------------------------------------------------------------

def test_real_voc_sample(shared):
    ds = load_dataset(shared / "voc_sample")
    s = summarize(ds, rare_below=0)  # 13 images: every class is rare (dsprep info's default of 20)
    assert s["images"] == 13 and s["objects"] == 37 and s["difficult"] == 2
    assert s["classes"] == {"person": 10, "car": 8, "chair": 6, "aeroplane": 5, "train": 3, "bus": 2, "dog": 1,
                            "sofa": 1, "tvmonitor": 1}
    assert sum(int(r.truncated.sum()) for r in ds.records) == 8
    assert s["problems"] == []  # border-touching boxes (xmax == width) are inside in VOC's 1-based convention
    by_stem = {r.stem: r for r in ds.records}
    assert len(by_stem["2007_000027"]) == 1  # 4 <part>s are not objects
    np.testing.assert_allclose(by_stem["2011_000003"].boxes[0], [190, 106.36900369003689, 313, 329.36900369003695])
    # labelme puts <height> before <width>
    assert (by_stem["2011_000003"].width, by_stem["2011_000003"].height) == (500, 338)
    # every record round-trips through our writer
    for r in ds.records:
        back = parse_voc(format_voc(r))[0]
        back.split = r.split  # the split comes from ImageSets/Main, not from the XML
        assert back == r
    assert [r.stem for r in load_dataset(shared / "voc_sample", split="trainval").records][-1] == "2011_000025"


def test_real_edge_cases(shared):
    edge = shared / "voc_edge_cases"
    ds2 = load_dataset(edge / "datumaro" / "voc_dataset2", split="trainval")
    s = summarize(ds2)
    assert s["images"] == 5 and s["problem_counts"]["size_unknown"] == 5
    empty = [r for r in ds2.records if r.stem == "@"]
    assert len(empty) == 1 and len(empty[0]) == 0
    ds1 = load_dataset(edge / "datumaro" / "voc_dataset1")
    # Datumaro lists 2007_000002 in test.txt without an XML: an image without objects (VOC allows it)
    assert ds1.problems == []
    assert {r.stem: (r.split, len(r)) for r in ds1.records} == {"2007_000001": ("train", 2), "2007_000002": ("test", 0)}
    assert load_dataset(edge / "datumaro" / "voc_dataset1", split="train").records[0].names == ["cat", "person"]
    rob = load_dataset(edge / "datumaro" / "roboflow_voc", split="val")
    assert [r.stem for r in rob.records] == ["val_001"]
    mm = load_dataset(edge / "mmdetection_filename_mismatch")
    assert {p.kind for p in mm.problems} == {"filename_mismatch", "annotation_without_image"}
    assert mm.records[0].names == ["train"]
