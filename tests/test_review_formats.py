"""The edit protocol of the format modules (dataset.py): annotation_file, load_record, save_record.

save_record must keep every byte it was not asked to change, write what it was asked to, and read back as asked.
"""
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsprep.core import DsprepError, ImageRecord
from dsprep.dataset import editable_formats, format_module, load_dataset, reload_record
from dsprep.dota import parse_dota, update_dota
from dsprep.voc import parse_voc, update_voc

from helpers import voc_xml


def edited(rec, keep=None):
    """A copy of ``rec`` holding the objects ``keep`` (default all), each knowing which loaded object it is."""
    keep = np.arange(len(rec)) if keep is None else np.asarray(keep, np.intp)
    out = rec.select(keep)
    out.attrs["source_index"] = keep.astype(np.int64)
    return out


def with_new(rec, names, boxes, polygons=None):
    """``rec`` plus new objects (source_index -1)."""
    n = len(rec)
    polys = None
    if rec.polygons is not None:
        polys = np.concatenate([rec.polygons, np.asarray(polygons, np.float64).reshape(-1, 4, 2)])
    out = ImageRecord(rec.image_path, rec.width, rec.height, boxes=np.vstack([rec.boxes, np.reshape(boxes, (-1, 4))]),
                      names=rec.names + list(names), difficult=np.r_[rec.difficult, np.zeros(len(names), np.uint8)],
                      truncated=np.r_[rec.truncated, np.zeros(len(names), bool)], polygons=polys)
    out.attrs["source_index"] = np.r_[rec.attrs.get("source_index", np.arange(n)), -np.ones(len(names), np.int64)]
    return out


def test_both_formats_implement_the_protocol():
    assert editable_formats() == ["dota", "yolo", "yolo-obb", "labelme", "voc"]
    for name in editable_formats():
        mod = format_module(name)
        assert callable(mod.annotation_file) and callable(mod.load_record) and callable(mod.save_record)


@pytest.mark.parametrize("folder", ["voc_sample", "voc_edge_cases/datumaro", "dota_example", "dota_demo_extra"])
def test_untouched_records_save_byte_for_byte_and_reload_as_loaded(shared, folder):
    ds = load_dataset(shared / folder, on_error="skip")
    mod = format_module(ds.format)
    assert ds.records
    for rec in ds.records:
        path = mod.annotation_file(ds, rec)
        if path is None:  # an image a split list names without an annotation file: no file to save into
            assert rec.meta.get("no_annotation") and len(rec) == 0
            continue
        original = open(path, "rb").read()
        assert mod.save_record(original, edited(rec), path) == original
        again, _ = reload_record(ds, rec)
        assert again == rec and again.image_path == rec.image_path and again.split == rec.split


# ---- VOC ---------------------------------------------------------------------------------------------------------

SAMPLE = "voc_sample/Annotations/000001.xml"  # dog (48 240 195 371), person (8 12 352 498): tabs, unknown tags


def test_voc_class_change_rewrites_only_the_name_text(shared):
    original = (shared / SAMPLE).read_bytes()
    rec, _ = parse_voc(original)
    rec = edited(rec)
    rec.names[0] = "cat"
    out = update_voc(original, rec)
    assert out == original.replace(b"<name>dog</name>", b"<name>cat</name>")


def test_voc_moved_box_is_written_one_based(shared):
    original = (shared / SAMPLE).read_bytes()
    rec, _ = parse_voc(original)
    before = rec.boxes.copy()
    ed = edited(rec)
    ed.boxes[1] = [10, 20, 300.5, 400]
    out = update_voc(original, ed)
    np.testing.assert_array_equal(rec.boxes, before)  # the input is not modified
    assert b"<xmin>11</xmin>\n\t\t\t<ymin>21</ymin>\n\t\t\t<xmax>300.5</xmax>\n\t\t\t<ymax>400</ymax>" in out
    back, _ = parse_voc(out)
    np.testing.assert_array_equal(back.boxes, [[47, 239, 195, 371], [10, 20, 300.5, 400]])
    head = original[:original.index(b"<xmin>8</xmin>")]
    assert out.startswith(head)  # everything before the changed numbers is as it was


def test_voc_delete_and_add_keep_the_documents_indentation(shared):
    original = (shared / SAMPLE).read_bytes()
    rec, _ = parse_voc(original)
    out = update_voc(original, with_new(edited(rec, [1]), ["bird & co"], [[0, 1, 30, 40.5]]))
    assert b"<name>dog</name>" not in out and b"<owner>" in out and b"<flickrid>341012865</flickrid>" in out
    assert (b"\t</object>\n\t<object>\n\t\t<name>bird &amp; co</name>\n\t\t<pose>Unspecified</pose>\n"
            b"\t\t<truncated>0</truncated>\n\t\t<difficult>0</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>1</xmin>\n"
            b"\t\t\t<ymin>2</ymin>\n\t\t\t<xmax>30</xmax>\n\t\t\t<ymax>40.5</ymax>\n\t\t</bndbox>\n\t</object>\n"
            b"</annotation>") in out
    # deleting the first object removes it and its line, nothing else
    start = original.index(b"\n\t<object>")
    end = original.index(b"</object>") + len(b"</object>")
    assert update_voc(original, edited(rec, [1])) == original[:start] + original[end:]


def test_voc_unknown_tags_parts_comments_and_attributes_are_kept():
    doc = (b'<?xml version="1.0"?>\n<annotation verified="yes">\n  <!-- by hand -->\n  <filename>a.jpg</filename>\n'
           b'  <size><width>100</width><height>80</height></size>\n  <object>\n    <name>person</name>\n'
           b'    <occluded>1</occluded>\n    <bndbox><xmin>1</xmin><ymin>1</ymin><xmax>50</xmax><ymax>60</ymax>'
           b'</bndbox>\n    <part><name>head</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>9</xmax><ymax>9</ymax>'
           b'</bndbox></part>\n    <attributes><attribute a=">">x</attribute></attributes>\n  </object>\n'
           b'  <object><name>car</name><bndbox><xmin>60</xmin><ymin>1</ymin><xmax>99</xmax><ymax>20</ymax></bndbox>'
           b'</object>\n</annotation>\n')
    rec, _ = parse_voc(doc)
    ed = edited(rec)
    ed.names[0], ed.difficult[0] = "rider", 1
    out = update_voc(doc, ed)
    # the name changes, difficult is added after the last child, the part's own name and box are not touched
    assert out == doc.replace(b"<name>person</name>", b"<name>rider</name>").replace(
        b"</attributes>\n  </object>", b"</attributes>\n    <difficult>1</difficult>\n  </object>")


def test_voc_clipped_box_stays_as_written_until_it_is_moved():
    doc = voc_xml("a.jpg", 100, 80, [("a", (1, 1, 150, 70)), ("b", (10, 10, 20, 20))])
    from dsprep.voc import clip_boxes
    loaded, problems = clip_boxes(parse_voc(doc)[0], "a.xml")  # what the data set reader gives
    assert [p.kind for p in problems] == ["clipped_box"]
    ed = edited(loaded)
    ed.names[1] = "c"
    out = update_voc(doc, ed)
    assert b"<xmax>150</xmax>" in out  # untouched: the file's own number, not the clipped one
    ed.boxes[0, 0] = 5
    out = update_voc(doc, ed)
    assert b"<xmin>6</xmin><ymin>1</ymin><xmax>100</xmax>" in out  # moved: written as shown


@pytest.mark.parametrize("encoding, bom", [("ISO-8859-1", b""), ("utf-8", b"\xef\xbb\xbf"),
                                           ("utf-16-le", b"\xff\xfe"), ("windows-1252", b"")])
def test_voc_keeps_encoding_bom_and_crlf(encoding, bom):
    decl = "" if encoding.startswith("utf-16") else f'<?xml version="1.0" encoding="{encoding}"?>\r\n'
    text = (f"{decl}<annotation>\r\n  <filename>é.jpg</filename>\r\n  <size><width>100</width><height>80</height>"
            f"</size>\r\n  <object>\r\n    <name>chaise</name>\r\n    <bndbox><xmin>1</xmin><ymin>1</ymin>"
            f"<xmax>9</xmax><ymax>9</ymax></bndbox>\r\n  </object>\r\n</annotation>\r\n")
    doc = bom + text.encode(encoding)
    rec, _ = parse_voc(doc)
    out = update_voc(doc, with_new(edited(rec), ["café 汽车"], [[10, 10, 20, 20]]))
    assert out.startswith(bom)
    body = out[len(bom):].decode(encoding)
    assert body.startswith(text[:-len("</annotation>\r\n")]) and body.endswith("  </object>\r\n</annotation>\r\n")
    assert "\r\n    <name>café" in body and "\n" not in body.replace("\r\n", "")
    back, _ = parse_voc(out)
    assert back.names == ["chaise", "café 汽车"]


def test_voc_one_line_document_gets_one_line_objects():
    doc = voc_xml("a.jpg", 100, 80, [])
    out = update_voc(doc, with_new(ImageRecord("a.jpg", 100, 80), ["x"], [[0, 0, 100, 80]]))
    assert out == doc.replace(b"</annotation>", b"<object><name>x</name><pose>Unspecified</pose><truncated>0"
                                                b"</truncated><difficult>0</difficult><bndbox><xmin>1</xmin><ymin>1"
                                                b"</ymin><xmax>100</xmax><ymax>80</ymax></bndbox></object>"
                                                b"</annotation>")


def test_voc_self_closing_flags_are_filled_in(shared):
    original = (shared / "voc_sample/Annotations/2011_000003.xml").read_bytes()  # labelme: <difficult/>
    rec, _ = parse_voc(original)
    ed = edited(rec)
    ed.difficult[1] = 1
    out = update_voc(original, ed)
    first = original.index(b"<difficult/>") + 1
    assert out == original[:first] + original[first:].replace(b"<difficult/>", b"<difficult>1</difficult>", 1)


@pytest.mark.parametrize("change, message", [
    (lambda r: r.attrs.__setitem__("source_index", np.array([0, 0])), "at most once"),
    (lambda r: r.attrs.__setitem__("source_index", np.array([0, 5])), "at most once"),
    (lambda r: r.names.__setitem__(0, " dog"), "class name ' dog'"),
    (lambda r: r.names.__setitem__(0, ""), "class name ''"),
])
def test_voc_refuses_impossible_edits(shared, change, message):
    original = (shared / SAMPLE).read_bytes()
    ed = edited(parse_voc(original)[0])
    change(ed)
    with pytest.raises(DsprepError, match=message):
        update_voc(original, ed)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_voc_random_edits_read_back_as_edited(shared, data):  # shared: a read-only path
    original = (shared / "voc_sample/Annotations/000004.xml").read_bytes()
    rec, _ = parse_voc(original)
    keep = sorted(data.draw(st.sets(st.integers(0, len(rec) - 1))))
    ed = edited(rec, keep)
    for k in range(len(ed)):
        if data.draw(st.booleans()):
            ed.names[k] = data.draw(st.sampled_from(["car", "person", "vélo <&>"]))
        if data.draw(st.booleans()):
            x, y = data.draw(st.integers(0, 300)), data.draw(st.integers(0, 300))
            ed.boxes[k] = [x, y, x + data.draw(st.integers(1, 50)), y + data.draw(st.floats(0.5, 50))]
        ed.difficult[k] = data.draw(st.integers(0, 1))
        ed.truncated[k] = data.draw(st.booleans())
    n_new = data.draw(st.integers(0, 2))
    ed = with_new(ed, ["new"] * n_new, [[1, 2, 3, 4]] * n_new)
    back, _ = parse_voc(update_voc(original, ed))
    assert back.names == ed.names
    np.testing.assert_array_equal(back.boxes, ed.boxes)
    assert back.difficult.tolist() == ed.difficult.tolist() and back.truncated.tolist() == ed.truncated.tolist()


# ---- DOTA --------------------------------------------------------------------------------------------------------

def test_dota_edits_touch_only_their_lines(shared):
    original = (shared / "dota_example/labelTxt/P1888.txt").read_bytes()  # header lines, CRLF
    rec, _, _ = parse_dota(original.decode())
    n = len(rec)
    ed = edited(rec, [0, 1, 2] + list(range(4, n)))
    ed.names[0] = "car"
    ed.polygons[1, 0] = [1.5, 2]
    ed.difficult[2] = 1
    out = update_dota(original, with_new(ed, ["ship"], [[1, 1, 5, 5]], [[[1, 1], [5, 1], [5, 5], [1, 5]]]))
    lines, new_lines = original.split(b"\r\n"), out.split(b"\r\n")
    assert new_lines[:2] == [b"imagesource:GoogleEarth", b"gsd:0.266170468393"]
    assert new_lines[2] == b"674 375 683 375 684 394 675 395 car 0"
    assert new_lines[3] == b"1.5 2 694 351 695 371 684 371 small-vehicle 0"
    assert new_lines[4] == lines[4].replace(b"vehicle 0", b"vehicle 1")
    assert new_lines[5:-2] == lines[6:-1]  # object 3 deleted, the others as they were
    assert new_lines[-2:] == [b"1 1 5 1 5 5 1 5 ship 0", b""]


def test_dota_keeps_skipped_lines_bom_and_nine_field_lines():
    text = "\ufeffgsd:0.5\nthis line is broken\n0 0 10 0 10 10 0 10 plane\n20 20 30 20 30 30 20 30 ship 0"
    original = text.encode("utf-8")
    rec, _, skipped = parse_dota(text[1:], on_error="skip")
    assert len(rec) == 2 and len(skipped) == 1
    ed = edited(rec)
    ed.names[0] = "jet"
    out = update_dota(original, with_new(ed, ["car"], [[0, 0, 2, 2]], [[[0, 0], [2, 0], [2, 2], [0, 2]]]))
    assert out.decode("utf-8") == ("\ufeffgsd:0.5\nthis line is broken\n0 0 10 0 10 10 0 10 jet\n"
                                   "20 20 30 20 30 30 20 30 ship 0\n0 0 2 0 2 2 0 2 car 0\n")
    ed.difficult[0] = 2
    assert b"0 0 10 0 10 10 0 10 jet 2\n" in update_dota(original, ed)


def test_dota_without_polygons_writes_box_corners():
    rec = ImageRecord("", 0, 0, boxes=[[0, 0, 4, 3]], names=["car"])
    assert update_dota(b"", rec) == b"0 0 4 0 4 3 0 3 car 0\n"


@pytest.mark.parametrize("name", ["small vehicle", "", " car"])
def test_dota_refuses_names_it_cannot_write(name):
    rec = ImageRecord("", 0, 0, boxes=[[0, 0, 4, 3]], names=[name])
    with pytest.raises(DsprepError, match="one word"):
        update_dota(b"", rec)


def test_saved_files_read_back_through_load_dataset(shared, tmp_path):
    """The whole path a review save takes, minus HTTP: load, edit, save_record, write, load again."""
    for folder, fix in (("voc_sample", "dog"), ("dota_example", "ship")):
        root = tmp_path / folder
        shutil.copytree(shared / folder, root)
        for p in root.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        ds = load_dataset(root)
        mod = format_module(ds.format)
        rec = next(r for r in ds.records if fix in r.names)
        k = rec.names.index(fix)
        ed = edited(rec)
        ed.names[k] = "fixed"
        path = mod.annotation_file(ds, rec)
        with open(path, "rb") as f:
            original = f.read()
        with open(path, "wb") as f:
            f.write(mod.save_record(original, ed, path))
        again = load_dataset(root)
        back = next(r for r in again.records if r.stem == rec.stem)
        assert back.names == ed.names
        assert sum(r.names.count("fixed") for r in again.records) == 1
