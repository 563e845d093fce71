"""Damaged files of every format: one line naming the file (and the annotation) and what is wrong, exit code 1,
never a traceback, never silently another reading; with --on-error skip the run goes on and lists them."""
import json
import shutil
from pathlib import Path

import pytest

from helpers import run_cli

DATA = Path(__file__).parent / "data"


def _copy(name, tmp_path) -> Path:
    dst = tmp_path / name
    shutil.copytree(DATA / name, dst)
    return dst


def _edit_json(path: Path, change):
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def _fails(*args, says):
    res = run_cli(*args, ok=False)
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert lines[-1].startswith("error: ") and all(s in lines[-1] for s in says), res.output
    return lines[-1]


def test_coco_coordinates_beyond_any_image_are_refused(tmp_path):
    root = _copy("coco_cvat", tmp_path)
    _edit_json(root / "annotations" / "instances_default.json",
               lambda d: d["annotations"][0].update(bbox=[1e308, 2, 5, 5]))
    _fails("info", root, says=["instances_default.json:", "annotations[0]", "beyond any image"])


def test_labelme_points_beyond_any_image_are_refused(tmp_path):
    root = _copy("labelme", tmp_path)
    _edit_json(root / "IMG_0041.json", lambda d: d["shapes"][0].update(points=[[1e300, 2], [3, 4]]))
    _fails("info", root, says=["IMG_0041.json:", "shapes[0]", "beyond any image"])


def test_a_damaged_labelme_file_is_an_error_not_another_kind_of_json(tmp_path):
    root = _copy("labelme", tmp_path)
    (root / "IMG_0041.json").write_text('{"shapes": [ {"label": "cat", ')  # cut off mid-file
    _fails("info", root, says=["IMG_0041.json:1", "malformed JSON"])
    res = run_cli("info", root, "--on-error", "skip")
    assert "images: 1" in res.output and "IMG_0041.json" in res.output


def test_a_truncated_coco_file_says_so(tmp_path):
    root = _copy("coco_cvat", tmp_path)
    path = root / "annotations" / "instances_default.json"
    path.write_bytes(path.read_bytes()[:200])  # the keys after 'images' are gone: still this COCO file, damaged
    _fails("info", root, says=["instances_default.json:", "malformed JSON"])


def test_a_broken_data_yaml_is_named(tmp_path):
    root = _copy("yolo_ultralytics", tmp_path)
    (root / "data.yaml").write_text("names: [a, b\ntrain: images/train\n")
    _fails("info", root, says=["data.yaml:1", "unclosed"])


@pytest.mark.parametrize("segmentation, says", [
    ([[1, 2, 3]], "at least 3 x, y pairs"),
    ([[1e300, 0, 5, 5, 0, 5]], "finite numbers within any image"),
    ({"counts": [1, 2], "size": "10x10"}, "[height, width]"),
])
def test_a_bad_segmentation_is_named_where_it_is_used(tmp_path, segmentation, says):
    root = _copy("coco_cvat", tmp_path)
    path = root / "annotations" / "instances_default.json"
    _edit_json(path, lambda d: d["annotations"][0].update(segmentation=segmentation, iscrowd=0))
    ann_id = json.loads(path.read_text())["annotations"][0]["id"]
    target = "labelme" if isinstance(segmentation, list) else "coco"
    args = ("convert", root, "--to", target, "--out", tmp_path / "out") if target == "labelme" else \
        ("crop", root, "--out", tmp_path / "out")
    _fails(*args, says=["instances_default.json", f"annotation id {ann_id}", "unreadable segmentation", says])
    assert not (tmp_path / "out").exists()
    res = run_cli(*args[:-1], tmp_path / "out2", "--on-error", "skip")
    assert "unreadable segmentation" in res.output
