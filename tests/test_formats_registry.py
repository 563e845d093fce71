"""The format registry: every format declares what it is (FormatSpec), detection never guesses between two
formats, and a new format is one module plus one registry line -- nothing else in dsprep names formats."""
import dataclasses
import inspect
import sys
import textwrap

import numpy as np
import pytest
from helpers import run_cli, write_voc_tree

from dsprep.core import DatasetError, FormatWriter
from dsprep.dataset import load_dataset
from dsprep.formats import FORMATS, detect_format, editable_formats, format_spec, writable_formats
from dsprep.formats.spec import EditProtocol, FormatSpec, Holds


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_format_declares_itself(name):
    spec = format_spec(name)
    assert isinstance(spec, FormatSpec) and spec.name == name and spec.layout
    assert isinstance(spec.holds, Holds)
    declared = dataclasses.asdict(spec.holds)
    assert set(declared) == {"boxes", "quads", "polygons", "masks", "difficult", "truncated", "splits", "image_size"}
    assert all(isinstance(v, bool) for v in declared.values())
    assert declared["masks"] == (spec.object_masks is not None)  # the capability and the function agree
    assert list(inspect.signature(spec.load).parameters)[:3] in (["path", "split", "ctx"], ["root", "split", "ctx"])
    assert callable(spec.detect)
    assert spec.writer is None or issubclass(spec.writer, FormatWriter)
    if spec.edit is not None:
        assert isinstance(spec.edit, EditProtocol)
        assert callable(spec.edit.annotation_file) and callable(spec.edit.load_record)
        assert callable(spec.edit.save_record)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"


def test_registry_lists_follow_the_specs():
    assert writable_formats() == [n for n in FORMATS if n != "h5"]
    # oriented-box formats (synth writes each object's rotated rectangle); COCO, YOLO-seg and labelme hold free
    # polygons
    assert [n for n in FORMATS if format_spec(n).holds.quads] == ["h5", "dota", "yolo-obb"]
    assert [n for n in FORMATS if format_spec(n).holds.polygons] == ["coco", "yolo-seg", "labelme"]
    assert editable_formats() == ["dota", "yolo", "yolo-obb", "labelme", "voc"]


def test_two_formats_detecting_one_folder_is_an_error_naming_both(tmp_path):
    root = write_voc_tree(tmp_path / "both", {"a": (60, 40, [("cat", (10, 5, 40, 30))])})
    (root / "labelTxt").mkdir()
    (root / "images").mkdir()
    (root / "labelTxt" / "a.txt").write_text("10 5 40 5 40 30 10 30 cat 0\n")
    with pytest.raises(DatasetError) as err:
        detect_format(root)
    assert "dota" in str(err.value) and "voc" in str(err.value) and "--format" in str(err.value)
    res = run_cli("info", root, ok=False)
    assert res.exit_code != 0 and "--format" in res.output and "Traceback" not in res.output
    assert load_dataset(root, fmt="voc").records[0].names == ["cat"]


TOY = '''
"""A toy format: one boxes.csv (image,x0,y0,x1,y1,class) beside the images."""
from pathlib import Path

import numpy as np

from dsprep.core import Dataset, FormatWriter, ImageRecord, decide_classes
from dsprep.formats.common import number_text
from dsprep.formats.spec import FormatSpec, Holds

NAME = "toy"


def detect(path):
    return Path(path).is_dir() and (Path(path) / "boxes.csv").is_file()


def load(path, split, ctx):
    rows = {}
    for line in ctx.progress((Path(path) / "boxes.csv").read_text().splitlines()):
        image, *xyxy, name = line.split(",")
        rows.setdefault(image, []).append(([float(v) for v in xyxy], name))
    ds = Dataset(Path(path), NAME)
    for image, objs in rows.items():
        ds.records.append(ImageRecord(str(Path(path) / image), 0, 0, boxes=np.array([o[0] for o in objs]),
                                      names=[o[1] for o in objs], meta={"stem": Path(image).stem}))
    ds.classes = decide_classes(ds.records)
    return ds


class Writer(FormatWriter):
    NAME = NAME

    def image_path(self, rec):
        return Path(rec.image_path).name

    def record_files(self, rec):
        return {}, {}

    def finish(self, records):
        lines = [",".join([Path(r.image_path).name] + [number_text(v) for v in b] + [n])
                 for r in records for b, n in zip(r.boxes.tolist(), r.names)]
        return {"boxes.csv": "".join(line + "\\n" for line in lines).encode()}


FORMAT = FormatSpec(NAME, "toy: boxes.csv", detect, load, writer=Writer, holds=Holds(boxes=True))
'''


def test_a_new_format_is_one_module_and_one_registry_line(tmp_path, monkeypatch):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "toy_format.py").write_text(textwrap.dedent(TOY))
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    monkeypatch.setitem(FORMATS, "toy", "toy_format")          # the one registry line
    try:
        assert "toy" in writable_formats()
        src = write_voc_tree(tmp_path / "voc", {"a": (60, 40, [("cat", (10, 5, 40, 30)), ("dog", (1, 2, 3.5, 4))])})
        run_cli("convert", src, "--to", "toy", "--out", tmp_path / "toy", "-q")   # written through the registry
        assert (tmp_path / "toy" / "boxes.csv").read_text() == "a.jpg,9,4,40,30,cat\na.jpg,0,1,3.5,4,dog\n"  # VOC is 1-based
        assert detect_format(tmp_path / "toy") == "toy"
        ds = load_dataset(tmp_path / "toy")                         # read, image headers and all
        assert ds.format == "toy" and ds.classes == ["cat", "dog"] and ds.records[0].width == 60
        np.testing.assert_array_equal(ds.records[0].boxes, [[9, 4, 40, 30], [0, 1, 3.5, 4]])
        assert "images: 1   objects: 2" in run_cli("info", tmp_path / "toy").output
    finally:
        sys.modules.pop("toy_format", None)
