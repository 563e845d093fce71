"""``dsprep info``: the box problems (duplicate_object, class_conflict, tiny_box, rare_class, size_outlier), the
per-class box statistics, and the charts of --plots, on VOC, COCO and YOLO data sets."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import run_cli, write_voc_tree

from dsprep.boxstats import gather, tiny_problems
from dsprep.dataset import load_dataset

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]
CHARTS = ["objects_per_class.png", "box_width_height.png", "aspect_ratios.png", "objects_per_image.png",
          "box_centres.png"]


def flawed_items():
    """25 'car' boxes of about 40 x 30 px, one 'car' of 300 x 220 px (far from the rest), one 'dog' box twice, one
    box both 'cat' and 'dog', one box 2 px wide (VOC pixels are 1-based and inclusive)."""
    rng = np.random.default_rng(0)
    items = {}
    for i in range(25):
        w, h = 40 * np.exp(rng.normal(0, 0.1)), 30 * np.exp(rng.normal(0, 0.1))
        items[f"c{i:02d}"] = (400, 300, [("car", (10, 10, round(10 + w), round(10 + h)))])
    items["huge"] = (400, 300, [("car", (20, 20, 320, 240))])
    items["twice"] = (400, 300, [("dog", (50, 60, 150, 200)), ("dog", (50, 60, 150, 200))])
    items["conflict"] = (400, 300, [("cat", (30, 40, 130, 140)), ("dog", (30, 40, 130, 140))])
    items["thin"] = (400, 300, [("cat", (100, 100, 101, 180))])  # VOC 1-based: 2 px wide
    return items


@pytest.fixture(params=["voc", "coco", "yolo"])
def flawed(request, tmp_path):
    root = write_voc_tree(tmp_path / "voc", flawed_items())
    if request.param != "voc":
        run_cli("convert", root, "--to", request.param, "--out", tmp_path / request.param, "-q")
        root = tmp_path / request.param
    return root


def test_every_box_problem_is_found(flawed):
    doc = json.loads(run_cli("info", flawed, "--json").stdout)
    by_kind = {}
    for p in doc["problems"]:
        by_kind.setdefault(p["kind"], []).append(p)
    assert len(by_kind["duplicate_object"]) == 1 and "'dog'" in by_kind["duplicate_object"][0]["detail"]
    assert "twice" in by_kind["duplicate_object"][0]["file"]
    assert len(by_kind["class_conflict"]) == 1 and "conflict" in by_kind["class_conflict"][0]["file"]
    assert "'cat'" in by_kind["class_conflict"][0]["detail"] and "'dog'" in by_kind["class_conflict"][0]["detail"]
    # per-image annotation files (VOC, YOLO) are named; a COCO JSON is named with the image after it
    assert [Path(p["file"].split(": ")[-1]).stem for p in by_kind["tiny_box"]] == ["thin"]
    assert [Path(p["file"].split(": ")[-1]).stem for p in by_kind["size_outlier"]] == ["huge"]
    # car has 26 objects; cat 2 and dog 3: rare under the default 20
    assert sorted(p["detail"].split("'")[1] for p in by_kind["rare_class"]) == ["cat", "dog"]
    assert doc["problem_counts"]["rare_class"] == 2


def test_rare_below_option(flawed):
    doc = json.loads(run_cli("info", flawed, "--json", "--rare-below", "3").stdout)
    assert [p["detail"].split("'")[1] for p in doc["problems"] if p["kind"] == "rare_class"] == ["cat"]
    doc = json.loads(run_cli("info", flawed, "--json", "--rare-below", "0").stdout)
    assert "rare_class" not in doc["problem_counts"]


def test_class_statistics(flawed):
    doc = json.loads(run_cli("info", flawed, "--json").stdout)
    ds = load_dataset(flawed)
    wh = np.concatenate([r.boxes[:, 2:] - r.boxes[:, :2] for r in ds.records])
    names = [n for r in ds.records for n in r.names]
    car = wh[[n == "car" for n in names]]
    stats = doc["class_boxes"]["car"]
    assert stats["count"] == 26
    assert stats["width"]["median"] == pytest.approx(np.median(car[:, 0]), abs=0.01)
    assert stats["height"]["p75"] == pytest.approx(np.percentile(car[:, 1], 75), abs=0.01)
    assert stats["area"]["median"] == pytest.approx(np.median(car[:, 0] * car[:, 1]), abs=0.5)


def test_text_report_lists_the_new_kinds(flawed):
    out = run_cli("info", flawed).stdout
    for kind in ("duplicate_object: 1", "class_conflict: 1", "tiny_box: 1", "rare_class: 2", "size_outlier: 1"):
        assert kind in out


def test_tiny_is_under_three_pixels_either_way():
    from dsprep.core import ImageRecord
    rec = ImageRecord("a.jpg", 50, 50, boxes=[[0, 0, 3, 3], [0, 0, 2.9, 10], [0, 0, 10, 2.5], [5, 5, 8, 20]],
                      names=["a"] * 4)
    obj = gather([rec], ["a"])
    assert [p.detail.split(" box ")[1].split(" is")[0] for p in tiny_problems(obj, [rec])] == ["0,0,2.9,10",
                                                                                               "0,0,10,2.5"]


@pytest.mark.parametrize("root", ["voc", "coco2017_mini", "yolo_roboflow", "coco_roboflow"])
def test_plots_on_every_format(shared, tmp_path, root):
    src = shared / "voc_sample" if root == "voc" else DATA / root
    res = run_cli("info", src, "--plots", tmp_path / "charts", "--json")
    doc = json.loads(res.stdout)
    assert sorted(Path(p).name for p in doc["plots"]) == sorted(CHARTS)
    for name in CHARTS:
        img = cv2.imread(str(tmp_path / "charts" / name))
        assert img is not None and img.shape[0] >= 200 and img.shape[1] >= 400
        # a chart, not a blank page: dark ink and colour on white
        assert (img < 100).any() and img.std() > 10
    # the same data set draws the same bytes
    run_cli("info", src, "--plots", tmp_path / "again", "-q")
    for name in CHARTS:
        assert (tmp_path / "charts" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


def test_plots_folder_rules(shared, tmp_path):
    src = shared / "voc_sample"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("mine")
    res = run_cli("info", src, "--plots", tmp_path / "full", ok=False)
    assert res.exit_code == 2 and "error:" in res.output
    run_cli("info", src, "--plots", tmp_path / "full", "--overwrite")
    assert (tmp_path / "full" / "x.txt").read_text() == "mine" and (tmp_path / "full" / CHARTS[0]).is_file()


def test_plots_inside_the_data_set_is_refused(tmp_path):
    root = write_voc_tree(tmp_path / "v", {"a": (40, 30, [("x", (1, 1, 20, 20))])})
    res = run_cli("info", root, "--plots", root / "charts", ok=False)
    assert res.exit_code == 2 and not (root / "charts").exists()


def test_missing_matplotlib_is_one_line_naming_the_extra(shared, tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from dsprep.program import run; sys.argv = ['dsprep'] + sys.argv[1:]; run()")
    res = subprocess.run([sys.executable, "-c", code, "info", str(shared / "voc_sample"), "--plots",
                          str(tmp_path / "c")], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.strip() == "error: --plots needs matplotlib: pip install 'dsprep[plots]'"
    assert not (tmp_path / "c").exists()
